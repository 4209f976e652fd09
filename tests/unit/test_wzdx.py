"""WZDx 4.2 WorkZoneFeeds from roadworks: every feed built here is checked against the official
JSON Schema (../shared/reference/wzdx-4.2/, resolved offline), awkward data included."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from referencing.exceptions import Unresolvable

from feeds.feed_geometry import geometry_parts
from feeds.publication import CC_BY_4, CC_ZERO, Publication
from feeds.roadworks import Roadwork
from feeds.wzdx import OPEN_END, feed_update_date, wzdx_feed
from tests.support.wzdx_schema import WZDX_DIRECTORY, assert_valid_wzdx, wzdx_errors

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STREET = {
    "type": "LineString",
    "coordinates": [[3.7201, 51.0501], [3.7212, 51.0507], [3.7225, 51.0511]],
}  # noqa: E501
# A zone drawn around 700 m of an east-west street, and one around 1.1 km of a north-south one.
EAST_WEST = [[[3.70, 51.05], [3.71, 51.05], [3.71, 51.0501], [3.70, 51.0501], [3.70, 51.05]]]
NORTH_SOUTH = [[[3.72, 51.06], [3.7201, 51.06], [3.7201, 51.07], [3.72, 51.07], [3.72, 51.06]]]
GIPOD = "https://private-api.gipod.beta-vlaanderen.be/api/v1/mobility-hindrances/10810464"


def roadwork(**changes: Any) -> Roadwork:
    """A roadwork on a street, with `changes`."""
    base = Roadwork(
        id="urn:ngsi-ld:CityWork:gent-1",
        name="Kortrijksesteenweg",
        geometry=STREET,
        start=START,
        end=START + timedelta(days=14),
        description="Riolering: rijstrook richting centrum afgesloten",
        state="planned",
        closure="partial",
        lanes_closed=1,
        dispositions=({"disposition": "laneReduction"},),
        modified_at=NOW,
    )
    return replace(base, **changes)


AWKWARD = {
    "plain": roadwork(),
    "no end date": roadwork(end=None),
    "no description": roadwork(description=""),
    "no name": roadwork(name="urn:ngsi-ld:CityWork:gent-1"),
    "point": roadwork(geometry={"type": "Point", "coordinates": [3.72, 51.05]}),
    "polygon": roadwork(geometry={"type": "Polygon", "coordinates": EAST_WEST}),
    "multipolygon": roadwork(
        geometry={"type": "MultiPolygon", "coordinates": [EAST_WEST, NORTH_SOUTH]}
    ),
    "multilinestring": roadwork(
        geometry={
            "type": "MultiLineString",
            "coordinates": [STREET["coordinates"], [[3.75, 51.02], [3.76, 51.03]]],
        }
    ),
    "degenerate line": roadwork(
        geometry={"type": "LineString", "coordinates": [[3.72, 51.05], [3.72, 51.05]]}
    ),
    "full closure": roadwork(closure="full", lanes_closed=None),
    "closure by disposition": roadwork(dispositions=({"disposition": "roadClosed"},)),
    "alternating lights": roadwork(dispositions=({"disposition": "alternatingLights"},)),
    "nothing closed": roadwork(closure="none", lanes_closed=None, dispositions=()),
    "in progress, from GIPOD": roadwork(state="open", source=GIPOD, work_nature=("tarring",)),
    "naive times": roadwork(start=datetime(2026, 3, 2, 7), end=None, modified_at=None),
    "unmodified": roadwork(modified_at=None, last_reported=None),
}


@pytest.mark.parametrize("name", AWKWARD)
def test_every_feed_is_valid_wzdx(name: str) -> None:
    feed = wzdx_feed([AWKWARD[name]], Publication(), NOW)
    assert_valid_wzdx(feed)
    assert feed["features"], name


@pytest.mark.parametrize(
    "publication",
    [
        Publication(),
        Publication("Stad Gent", CC_ZERO, "open.data@stad.gent"),
        Publication("X", CC_BY_4),
    ],  # noqa: E501
)
def test_feed_of_all_together_and_of_none_is_valid(publication: Publication) -> None:
    assert_valid_wzdx(wzdx_feed(AWKWARD.values(), publication, NOW))
    empty = wzdx_feed([], publication, NOW)
    assert_valid_wzdx(empty)
    assert empty["features"] == []
    assert empty["feed_info"]["data_sources"][0]["organization_name"] == publication.publisher


@pytest.mark.parametrize(
    ("changes", "impact"),
    [
        ({}, "some-lanes-closed"),
        ({"closure": "full"}, "all-lanes-closed"),
        ({"dispositions": ({"disposition": "roadClosed"},)}, "all-lanes-closed"),
        ({"dispositions": ({"disposition": "alternatingLights"},)}, "alternating-one-way"),
        ({"closure": "none", "lanes_closed": None, "dispositions": ()}, "all-lanes-open"),
        ({"closure": "partial", "lanes_closed": None, "dispositions": ()}, "some-lanes-closed"),
    ],
)
def test_vehicle_impact(changes: dict[str, Any], impact: str) -> None:
    feed = wzdx_feed([roadwork(**changes)], Publication(), NOW)
    assert_valid_wzdx(feed)
    assert feed["features"][0]["properties"]["vehicle_impact"] == impact


def test_open_ended_roadwork_gets_an_unverified_estimated_end() -> None:
    feed = wzdx_feed([roadwork(end=None)], Publication(), NOW)
    properties = feed["features"][0]["properties"]
    assert properties["end_date"] == (START + OPEN_END).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert properties["is_end_date_verified"] is False
    # Started long ago: the estimate runs from the feed's date, so it is never in the past.
    old = wzdx_feed([roadwork(end=None, start=NOW - timedelta(days=900))], Publication(), NOW)
    assert old["features"][0]["properties"]["end_date"] == "2027-03-01T12:00:00Z"


@pytest.mark.parametrize(("state", "verified"), [("planned", False), ("open", True)])
def test_start_is_verified_only_for_work_in_progress(state: str, verified: bool) -> None:
    feed = wzdx_feed([roadwork(state=state)], Publication(), NOW)
    assert feed["features"][0]["properties"]["is_start_date_verified"] is verified


@pytest.mark.parametrize("state", ["cancelled", "closed"])
def test_cancelled_and_finished_roadworks_are_left_out(state: str) -> None:
    feed = wzdx_feed([roadwork(state=state), roadwork(id="urn:x:2")], Publication(), NOW)
    assert_valid_wzdx(feed)
    assert [f["id"] for f in feed["features"]] == ["urn:x:2"]


def test_core_details_name_road_direction_and_description() -> None:
    core = wzdx_feed([roadwork()], Publication(), NOW)["features"][0]["properties"]["core_details"]
    assert core["road_names"] == ["Kortrijksesteenweg"]
    assert core["direction"] == "unknown"
    assert core["description"].startswith("Riolering")
    unnamed = wzdx_feed([AWKWARD["no name"], AWKWARD["no description"]], Publication(), NOW)
    assert unnamed["features"][0]["properties"]["core_details"]["road_names"] == ["unknown"]
    assert "description" not in unnamed["features"][1]["properties"]["core_details"]


def test_multipolygon_gives_one_linked_road_event_per_zone() -> None:
    feed = wzdx_feed([AWKWARD["multipolygon"]], Publication(), NOW)
    ids = [feature["id"] for feature in feed["features"]]
    assert ids == ["urn:ngsi-ld:CityWork:gent-1#1", "urn:ngsi-ld:CityWork:gent-1#2"]
    related = feed["features"][0]["properties"]["core_details"]["related_road_events"]
    assert related == [{"type": "related-work-zone", "id": ids[1]}]
    assert {f["geometry"]["type"] for f in feed["features"]} == {"MultiPoint"}


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        # The long axis of a zone around an east-west street runs east-west, mid-zone ...
        ({"type": "Polygon", "coordinates": EAST_WEST}, [((3.70, 51.05005), (3.71, 51.05005))]),
        # ... and of a north-south one north-south (longitudes scaled: 0.0001° E < 0.01° N).
        ({"type": "Polygon", "coordinates": NORTH_SOUTH}, [((3.72005, 51.07), (3.72005, 51.06))]),
        ({"type": "Point", "coordinates": [3.72, 51.05]}, [((3.72, 51.05), (3.72, 51.05))]),
        (
            {"type": "MultiPoint", "coordinates": [[3.7, 51.0], [3.8, 51.1]]},
            [((3.7, 51.0), (3.7, 51.0)), ((3.8, 51.1), (3.8, 51.1))],
        ),  # noqa: E501
        (
            {"type": "LineString", "coordinates": [[3.7, 51.0], [3.7, 51.0], [3.8, 51.1]]},
            [((3.7, 51.0), (3.8, 51.1))],
        ),  # noqa: E501
        (
            {
                "type": "MultiLineString",
                "coordinates": [[[3.7, 51.0], [3.8, 51.1]], [[3.8, 51.1], [3.9, 51.1]]],
            },
            [((3.7, 51.0), (3.8, 51.1), (3.9, 51.1))],
        ),  # noqa: E501
        ({"type": "Polygon", "coordinates": []}, []),
        ({"type": "Nonsense"}, []),
        ({}, []),
    ],
)
def test_geometry_parts(geometry: dict[str, Any], expected: list[tuple]) -> None:
    parts = geometry_parts(geometry)
    assert [set(part.positions) for part in parts] == [set(e) for e in expected]
    for part, positions in zip(parts, expected, strict=True):
        if len(positions) > 2:
            assert part.positions == positions


def test_roadwork_without_usable_geometry_is_left_out() -> None:
    feed = wzdx_feed(
        [roadwork(geometry={"type": "Polygon", "coordinates": []})], Publication(), NOW
    )
    assert_valid_wzdx(feed)
    assert feed["features"] == []


def test_data_sources_per_origin_and_licence_only_when_cc0() -> None:
    roadworks = [roadwork(), roadwork(id="urn:x:gipod", source=GIPOD)]
    feed = wzdx_feed(roadworks, Publication("Stad Gent", CC_BY_4), NOW)
    sources = {
        s["organization_name"]: s["data_source_id"] for s in feed["feed_info"]["data_sources"]
    }  # noqa: E501
    assert sources.keys() == {"Stad Gent", "GIPOD (private-api.gipod.beta-vlaanderen.be)"}
    by_id = {f["id"]: f["properties"]["core_details"]["data_source_id"] for f in feed["features"]}
    assert by_id["urn:x:gipod"] == sources["GIPOD (private-api.gipod.beta-vlaanderen.be)"]
    assert "license" not in feed["feed_info"]
    assert (
        wzdx_feed(roadworks, Publication(license=CC_ZERO), NOW)["feed_info"]["license"] == CC_ZERO
    )


def test_update_date_is_the_newest_change() -> None:
    newer = roadwork(id="urn:x:2", modified_at=NOW + timedelta(hours=1))
    assert feed_update_date([roadwork(), newer], NOW - timedelta(days=1)) == NOW + timedelta(
        hours=1
    )
    assert feed_update_date([roadwork(modified_at=None)], NOW) == NOW


@pytest.mark.parametrize("example", sorted(p.name for p in WZDX_DIRECTORY.glob("*.geojson")))
def test_the_validator_accepts_the_published_examples(example: str) -> None:
    assert wzdx_errors(json.loads((WZDX_DIRECTORY / example).read_text())) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (("features", 0, "geometry", "type"), "Polygon", "not valid under any"),
        (("features", 0, "properties", "start_date"), "2026-03-02 07:00", "not valid under any"),
        (("feed_info", "version"), "4", "does not match"),
        (("feed_info", "license"), CC_BY_4, "is not one of"),
    ],
)
def test_the_validator_rejects_broken_feeds(path: tuple, value: Any, complaint: str) -> None:
    feed = wzdx_feed([roadwork()], Publication(), NOW)
    target = feed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(complaint in error for error in wzdx_errors(feed))


def test_the_validator_never_fetches_a_reference() -> None:
    feed = wzdx_feed([roadwork()], Publication(), NOW)
    feed["features"][0]["geometry"] = {"$ref": "x"}  # data, not schema: still no fetch
    assert wzdx_errors(feed)
    from tests.support.wzdx_schema import wzdx_validator

    resolver = wzdx_validator()._resolver  # noqa: SLF001 - the registry behind the validator
    with pytest.raises(Unresolvable, match="geojson.org/schema/Point.json"):
        resolver.lookup("https://geojson.org/schema/Point.json")
