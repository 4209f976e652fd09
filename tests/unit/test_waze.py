"""Waze CIFS closure feeds: shape of every incident per the CIFS specification."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feeds.roadworks import Roadwork
from feeds.waze import waze_feed

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
STREET = {"type": "LineString", "coordinates": [[3.720123, 51.050111], [3.7212, 51.0507]]}
ZONE = [[[3.70, 51.05], [3.71, 51.05], [3.71, 51.0501], [3.70, 51.0501], [3.70, 51.05]]]
#: CIFS: yyyy-MM-dd'T'HH:mm:ss+HH:mm.
CIFS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
REQUIRED = {"id", "type", "polyline", "street", "starttime"}
ALLOWED = REQUIRED | {"subtype", "endtime", "description", "direction", "updatetime"}
SUBTYPES = {"ROAD_CLOSED_HAZARD", "ROAD_CLOSED_CONSTRUCTION", "ROAD_CLOSED_EVENT"}


def closure(**changes: Any) -> Roadwork:
    """A full closure of a street, with `changes`."""
    base = Roadwork(
        id="urn:ngsi-ld:CityWork:gent-7",
        name="Veldstraat",
        geometry=STREET,
        start=START,
        end=START + timedelta(days=3),
        description="Volledig afgesloten voor heraanleg",
        closure="full",
        modified_at=START - timedelta(days=1),
    )
    return replace(base, **changes)


def assert_cifs(feed: dict[str, Any]) -> None:
    """Every incident has the CIFS shape."""
    assert set(feed) == {"incidents"}
    ids = [incident["id"] for incident in feed["incidents"]]
    assert len(ids) == len(set(ids)), "ids must be unique in the feed"
    for incident in feed["incidents"]:
        assert REQUIRED <= incident.keys() <= ALLOWED, incident
        assert incident["type"] == "ROAD_CLOSED"
        assert incident["subtype"] in SUBTYPES
        assert incident["direction"] in {"BOTH_DIRECTIONS", "ONE_DIRECTION"}
        numbers = [float(n) for n in incident["polyline"].split(" ")]
        assert numbers and len(numbers) % 2 == 0
        for latitude, longitude in zip(numbers[::2], numbers[1::2], strict=True):
            assert 49.0 < latitude < 52.0 and 2.0 < longitude < 7.0  # lat first, Belgium
        for key in ("starttime", "endtime", "updatetime"):
            if key in incident:
                assert CIFS_TIME.match(incident[key]), incident[key]
        assert incident["street"]


@pytest.mark.parametrize(
    "roadwork",
    [
        closure(),
        closure(end=None),
        closure(description=""),
        closure(name="urn:ngsi-ld:CityWork:gent-7"),
        closure(geometry={"type": "Point", "coordinates": [3.72, 51.05]}),
        closure(geometry={"type": "MultiPolygon", "coordinates": [ZONE, ZONE]}),
        closure(closure="partial", dispositions=({"disposition": "roadClosed"},)),
        closure(start=datetime(2026, 3, 2, 7), modified_at=None),
    ],
    ids=[
        "plain",
        "no end",
        "no description",
        "no name",
        "point",
        "multipolygon",
        "disposition",
        "naive",
    ],  # noqa: E501
)
def test_closures_have_the_cifs_shape(roadwork: Roadwork) -> None:
    feed = waze_feed([roadwork])
    assert_cifs(feed)
    assert feed["incidents"]


def test_a_closure_incident() -> None:
    (incident,) = waze_feed([closure()])["incidents"]
    assert incident == {
        "id": "urn:ngsi-ld:CityWork:gent-7",
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_CONSTRUCTION",
        "polyline": "51.050111 3.720123 51.0507 3.7212",
        "street": "Veldstraat",
        "starttime": "2026-03-02T07:00:00+00:00",
        "endtime": "2026-03-05T07:00:00+00:00",
        "description": "Volledig afgesloten voor heraanleg",
        "direction": "BOTH_DIRECTIONS",
        "updatetime": "2026-03-01T07:00:00+00:00",
    }


@pytest.mark.parametrize(
    "roadwork",
    [
        closure(closure="partial"),
        closure(closure="none"),
        closure(state="cancelled"),
        closure(state="closed"),
        closure(geometry={"type": "Polygon", "coordinates": []}),
    ],
    ids=["partial", "none", "cancelled", "finished", "no geometry"],
)
def test_only_current_closures_are_in_the_feed(roadwork: Roadwork) -> None:
    assert waze_feed([roadwork]) == {"incidents": []}


def test_open_ended_closure_has_no_endtime_and_a_point_one_pair() -> None:
    point = closure(end=None, geometry={"type": "Point", "coordinates": [3.72, 51.05]})
    (incident,) = waze_feed([point])["incidents"]
    assert "endtime" not in incident
    assert incident["polyline"] == "51.05 3.72"


def test_multipolygon_gives_one_incident_per_zone() -> None:
    feed = waze_feed([closure(geometry={"type": "MultiPolygon", "coordinates": [ZONE, ZONE]})])
    assert [i["id"] for i in feed["incidents"]] == [
        "urn:ngsi-ld:CityWork:gent-7#1",
        "urn:ngsi-ld:CityWork:gent-7#2",
    ]


@pytest.mark.parametrize(
    ("natures", "subtype"),
    [
        (("roadWorks",), "ROAD_CLOSED_CONSTRUCTION"),
        (("event",), "ROAD_CLOSED_EVENT"),
        (("hazard",), "ROAD_CLOSED_HAZARD"),
    ],
)
def test_subtype_follows_the_work_nature(natures: tuple[str, ...], subtype: str) -> None:
    (incident,) = waze_feed([closure(work_nature=natures)])["incidents"]
    assert incident["subtype"] == subtype
