"""GIPOD mobility-hindrance members → roadworks and roadwork Alerts (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import shapely.geometry

from feeds.gipod import (
    GipodError,
    geometry_from_wkt,
    parse_graph,
    parse_members,
    relations,
    work_state,
)
from feeds.gipod_consequences import consequences_of
from feeds.roadwork_alerts import roadwork_alert
from feeds.roadworks import roadwork_entity
from tests.support.gipod import HINDRANCE, MEMBER, member_text, page_text, reference_text

#: Flanders, generously: west of the Dutch border at Maastricht, south of the Netherlands.
FLANDERS_LONGITUDE = (2.5, 5.95)
FLANDERS_LATITUDE = (50.68, 51.51)
SQUARE_31370 = (
    "POLYGON ((150000 170000, 150100 170000, 150100 170100, 150000 170100, 150000 170000))"
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _positions(geometry: dict) -> list[list[float]]:
    if geometry["type"] == "Polygon":
        return [position for ring in geometry["coordinates"] for position in ring]
    return [p for polygon in geometry["coordinates"] for ring in polygon for p in ring]


def test_the_real_member_becomes_a_roadwork_in_flanders() -> None:
    versions, problems = parse_members(reference_text(), "nquads")
    assert problems == []
    [version] = versions
    roadwork = version.roadwork
    assert version.member == str(MEMBER)
    assert version.hindrance == HINDRANCE
    assert version.number == "10810464"
    assert version.generated_at == _utc("2022-05-20T09:58:15.867Z")
    assert version.status_label == "In opmaak"
    assert roadwork.id == "urn:ngsi-ld:CityWork:gipod:10810464"
    assert roadwork.start == _utc("2022-05-27T07:00:00Z")
    assert roadwork.end == _utc("2022-05-27T17:00:00Z")
    assert roadwork.state == "planned"
    assert roadwork.description == "dubbele omschríjvińĝ"
    assert roadwork.source == HINDRANCE and roadwork.version == str(MEMBER)
    assert roadwork.last_reported == version.generated_at
    # "Beperkte doorgang voor voetgangers": pedestrians only, the road stays open.
    assert roadwork.closure == "none"
    assert [d["disposition"] for d in roadwork.dispositions] == ["sidewalkReduction"]
    assert roadwork.geometry["type"] == "Polygon"
    positions = _positions(roadwork.geometry)
    assert len(positions) > 400
    for longitude, latitude in positions:
        assert FLANDERS_LONGITUDE[0] < longitude < FLANDERS_LONGITUDE[1]
        assert FLANDERS_LATITUDE[0] < latitude < FLANDERS_LATITUDE[1]
    # Lambert 72 x 121376, y 157725 lies near Galmaarden (Flemish Brabant).
    assert positions[0] == pytest.approx([3.9633, 50.7294], abs=2e-3)
    assert shapely.geometry.shape(roadwork.geometry).is_valid


@pytest.mark.parametrize(
    ("wkt", "expected"),
    [
        # Brussels: Lambert 72 x 150000, y 170000 is about 1 km east of the Grand Place.
        (
            "<http://www.opengis.net/def/crs/EPSG/9.9.1/31370> POINT (150000 170000)",
            (4.369, 50.840),
        ),
        ("POINT (4.1 51.0)", (4.1, 51.0)),
        ("<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POINT (3.7 51.05)", (3.7, 51.05)),
    ],
)
def test_wkt_literals_are_converted_to_wgs84(wkt: str, expected: tuple[float, float]) -> None:
    point = geometry_from_wkt(wkt)
    assert (point.x, point.y) == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize(
    ("wkt", "problem"),
    [
        ("<http://example.org/crs/unknown> POINT (1 2)", "unknown coordinate reference system"),
        ("POLYGON ((1 2, 3", "invalid WKT"),
    ],
)
def test_unreadable_wkt_is_refused(wkt: str, problem: str) -> None:
    with pytest.raises(GipodError, match=problem):
        geometry_from_wkt(wkt)


@pytest.mark.parametrize(
    ("label", "notes", "state"),
    [
        ("In opmaak", "", "planned"),
        ("Gevalideerd", "", "planned"),
        ("Onbekend", "", "planned"),
        ("In uitvoering", "", "open"),
        ("Uitgevoerd", "", "closed"),
        ("Geannuleerd", "", "cancelled"),
        ("Ingetrokken", "", "cancelled"),
        ("Something new", "", "planned"),
        (None, "", "planned"),
        ("Gevalideerd", "MobilityHindranceWasCancelled", "cancelled"),
    ],
)
def test_status_labels_map_to_work_states(label: str | None, notes: str, state: str) -> None:
    assert work_state(label, notes) == state


def test_an_unknown_status_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert work_state("Wacht op goedkeuring") == "planned"
    assert "unknown GIPOD status 'Wacht op goedkeuring'" in caplog.text


@pytest.mark.parametrize(
    ("labels", "closure", "lanes", "dispositions"),
    [
        ([], "partial", None, []),
        (["Beperkte doorgang voor voetgangers"], "none", None, ["sidewalkReduction"]),
        (["Geen doorgang voor fietsers"], "none", None, ["cyclewayClosed"]),
        (["Geen doorgang voor gemotoriseerd verkeer"], "full", None, ["roadClosed"]),
        (["Afgesloten in 1 rijrichting"], "partial", None, ["directionClosed"]),
        (["1 rijstrook afgesloten"], "partial", 1, ["laneClosed"]),
        (["Beperkte doorgang voor gemotoriseerd verkeer"], "partial", None, ["laneReduction"]),
        (["Afwisselende doorgang via verkeerslichten"], "partial", None, ["alternatingLights"]),
        (["Parkeerverbod"], "none", None, ["parkingReduction"]),
        (
            ["Beperkte doorgang voor voetgangers", "Volledige afsluiting", "Volledige afsluiting"],
            "full",
            None,
            ["sidewalkReduction", "roadClosed"],
        ),
        (["Iets onverwachts"], "partial", None, ["other"]),
    ],
)
def test_consequences_map_to_closure_and_dispositions(
    labels: list[str], closure: str, lanes: int | None, dispositions: list[str]
) -> None:
    result = consequences_of(labels)
    assert result.closure == closure
    assert result.lanes_closed == lanes
    assert [item["disposition"] for item in result.dispositions] == dispositions
    assert all(item["comment"] in labels for item in result.dispositions)


def test_a_hindrance_created_moved_and_cancelled() -> None:
    texts = [
        member_text(1, "2022-05-20T10:00:00Z"),
        member_text(2, "2022-05-21T10:00:00Z", shift_metres=(800.0, 0.0), status="Gevalideerd"),
        member_text(3, "2022-05-22T10:00:00Z", status="Geannuleerd"),
    ]
    created, moved, cancelled = (parse_members(text, "nquads")[0][0] for text in texts)
    assert {created.roadwork.id, moved.roadwork.id, cancelled.roadwork.id} == {
        "urn:ngsi-ld:CityWork:gipod:10810464"
    }
    assert created.generated_at < moved.generated_at < cancelled.generated_at
    assert len({created.member, moved.member, cancelled.member}) == 3
    before = shapely.geometry.shape(created.roadwork.geometry).centroid
    after = shapely.geometry.shape(moved.roadwork.geometry).centroid
    assert after.x - before.x == pytest.approx(800 / 70_400, rel=0.1)  # 800 m east at 50.7° N
    assert after.y == pytest.approx(before.y, abs=1e-4)
    assert (created.roadwork.state, moved.roadwork.state) == ("planned", "planned")
    assert cancelled.roadwork.state == "cancelled"
    # Cancelled before the works began: the alert is resolved, valid for no time at all.
    alert = roadwork_alert(cancelled.roadwork, created.generated_at, cancelled.generated_at)
    assert alert["alertState"]["value"] == "resolved"
    assert alert["validTo"] == alert["validFrom"]


def test_one_page_holds_versions_in_time_order() -> None:
    later = member_text(2, "2022-05-21T10:00:00Z", number="42")
    earlier = member_text(1, "2022-05-20T10:00:00Z")
    page = page_text(
        [later, earlier], "http://ldes.test/p1", "http://ldes.test/p2", "2022-06-01T00:00:00Z"
    )
    versions, problems = parse_members(page, "nquads")
    assert problems == []
    assert [v.number for v in versions] == ["10810464", "42"]
    [relation] = relations(parse_graph(page, "nquads"))
    assert (relation.kind, relation.node) == ("GreaterThanOrEqualToRelation", "http://ldes.test/p2")
    assert relation.value is not None and relation.value.startswith("2022-06-01T00:00:00")


@pytest.mark.parametrize(
    ("changes", "geometry_type", "end"),
    [
        ({"period": ("2022-06-01T06:00:00Z", None)}, "Polygon", None),
        ({"period": None}, "Polygon", None),
        (
            {"extra_zone_wkt": f"<http://www.opengis.net/def/crs/EPSG/9.9.1/31370> {SQUARE_31370}"},
            "MultiPolygon",
            "2022-05-27T17:00:00Z",
        ),  # fmt: skip
        (
            {
                "extra_zone_wkt": "MULTIPOLYGON (((4.1 51, 4.2 51, 4.2 51.1, 4.1 51)),"
                " ((4.3 51, 4.4 51, 4.4 51.1, 4.3 51)))"
            },
            "MultiPolygon",
            "2022-05-27T17:00:00Z",
        ),  # fmt: skip
    ],
)
def test_awkward_members(changes: dict, geometry_type: str, end: str | None) -> None:
    [version], _ = parse_members(member_text(1, "2022-05-20T10:00:00Z", **changes), "nquads")
    roadwork = version.roadwork
    assert roadwork.geometry["type"] == geometry_type
    assert roadwork.end == (_utc(end) if end else None)
    if changes.get("period", ()) is None:  # no period at all: from when it was created
        assert roadwork.start == version.created_at
    if geometry_type == "MultiPolygon":
        assert len(roadwork.geometry["coordinates"]) >= 2
    entity = roadwork_entity(roadwork)
    assert ("endDate" in entity) == (end is not None)


def test_a_member_without_a_zone_is_reported_not_imported() -> None:
    lines = [line for line in reference_text().splitlines() if "mobiliteit#zone>" not in line]
    versions, problems = parse_members("\n".join(lines), "nquads")
    assert versions == []
    assert problems == [f"member {MEMBER} has no zone with a geometry"]


def test_json_ld_with_a_remote_context_is_refused_not_fetched() -> None:
    document = {"@context": "https://example.org/never-fetched.jsonld", "@id": "http://x/1"}
    with pytest.raises(GipodError, match="remote @context URLs are not fetched"):
        parse_graph(json.dumps(document), "json-ld")


def test_turtle_and_json_ld_pages_read_like_n_quads() -> None:
    from rdflib import Graph

    graph = Graph().parse(data=reference_text(), format="nt")
    turtle = graph.serialize(format="turtle")
    expanded = graph.serialize(format="json-ld")
    for text, parser in ((turtle, "turtle"), (expanded, "json-ld")):
        [version], problems = parse_members(text, parser)
        assert problems == []
        assert version.roadwork.id == "urn:ngsi-ld:CityWork:gipod:10810464"
        assert version.roadwork.start == _utc("2022-05-27T07:00:00Z")


@pytest.mark.parametrize(
    ("state", "closure", "alert_state", "severity"),
    [
        ("planned", "full", "raised", "high"),
        ("open", "partial", "raised", "medium"),
        ("closed", "none", "resolved", "low"),
        ("cancelled", "partial", "resolved", "medium"),
    ],
)
def test_roadwork_alerts(state: str, closure: str, alert_state: str, severity: str) -> None:
    from dataclasses import replace

    [version], _ = parse_members(reference_text(), "nquads")
    roadwork = replace(version.roadwork, state=state, closure=closure)  # type: ignore[arg-type]
    ended = _utc("2022-05-27T12:00:00Z")
    alert = roadwork_alert(roadwork, version.generated_at, ended)
    assert alert["id"] == "urn:ngsi-ld:Alert:CityWork:gipod:10810464"
    assert (alert["category"]["value"], alert["subCategory"]["value"]) == ("traffic", "roadWorks")
    assert alert["alertSource"] == {"type": "Relationship", "object": roadwork.id}
    assert alert["alertState"]["value"] == alert_state
    assert alert["severity"]["value"] == severity
    assert alert["validFrom"]["value"]["@value"] == "2022-05-27T07:00:00.000000Z"
    valid_to = (
        "2022-05-27T12:00:00.000000Z"
        if alert_state == "resolved"
        else "2022-05-27T17:00:00.000000Z"
    )
    assert alert["validTo"]["value"]["@value"] == valid_to
