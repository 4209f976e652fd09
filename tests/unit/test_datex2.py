"""feeds/datex2.py: every document it emits is valid against the DATEX II 3.1 XSDs
(shared/reference/datex2-v3.1), awkward data included, and says what the data says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree

from feeds.datex2 import (
    EmptyPublication,
    Publisher,
    characteristics,
    measured_data_publication,
    measurement_site_table_publication,
    site_version,
    situation_publication,
)
from feeds.datex2_xml import NAMESPACES
from feeds.roadworks import Roadwork
from feeds.traffic_state import ClassFlow, SiteState
from tests.support.datex2_schema import (
    LOADED,
    SCHEMA_DIRECTORY,
    assert_valid,
    payload_schema,
    schema_errors,
)

NOW = datetime(2025, 3, 1, 8, 1, tzinfo=UTC)
START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
POINT = {"type": "Point", "coordinates": [3.7174, 51.0543]}
LINE = {"type": "LineString", "coordinates": [[3.72, 51.05], [3.725, 51.052], [3.73, 51.051]]}
SQUARE = [[3.70, 51.00], [3.71, 51.00], [3.71, 51.01], [3.70, 51.01], [3.70, 51.00]]
HOLE = [[3.702, 51.002], [3.704, 51.002], [3.704, 51.004], [3.702, 51.002]]
OTHER_SQUARE = [[x + 0.1, y] for x, y in SQUARE]
GEOMETRIES = {
    "point": POINT,
    "point with altitude": {"type": "Point", "coordinates": [3.7174, 51.0543, 12.5]},
    "line": LINE,
    "degenerate line": {"type": "LineString", "coordinates": [[3.72, 51.05], [3.72, 51.05]]},
    "polygon with a hole": {"type": "Polygon", "coordinates": [SQUARE, HOLE]},
    "multi-polygon zone": {"type": "MultiPolygon", "coordinates": [[SQUARE], [OTHER_SQUARE]]},
    "multi-point": {"type": "MultiPoint", "coordinates": [[3.7, 51.0], [3.8, 51.1]]},
    "one-line multi-line": {"type": "MultiLineString", "coordinates": [LINE["coordinates"]]},
    "multi-line": {
        "type": "MultiLineString",
        "coordinates": [LINE["coordinates"], [[3.8, 51.1], [3.81, 51.1]]],
    },
    "collection": {
        "type": "GeometryCollection",
        "geometries": [POINT, {"type": "Polygon", "coordinates": [SQUARE]}],
    },
    "collection of polygons": {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Polygon", "coordinates": [SQUARE]},
            {"type": "MultiPolygon", "coordinates": [[OTHER_SQUARE]]},
        ],
    },
    "far west and south": {"type": "Point", "coordinates": [-0.0000001, -33.5]},
}
LOCATION_TYPES = {
    "point": "loc:PointLocation",
    "point with altitude": "loc:PointLocation",
    "line": "loc:LinearLocation",
    "degenerate line": "loc:PointLocation",
    "polygon with a hole": "loc:AreaLocation",
    "multi-polygon zone": "loc:AreaLocation",
    "multi-point": "loc:LocationGroupByList",
    "one-line multi-line": "loc:LinearLocation",
    "multi-line": "loc:LocationGroupByList",
    "collection": "loc:LocationGroupByList",
    "collection of polygons": "loc:AreaLocation",
    "far west and south": "loc:PointLocation",
}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def parse(document: bytes) -> Any:
    return etree.fromstring(document)


def find(tree: Any, path: str) -> list[Any]:
    return tree.xpath(path, namespaces=NAMESPACES)


def roadwork(**changes: Any) -> Roadwork:
    base = Roadwork(
        id="urn:ngsi-ld:CityWork:gipod-1",
        name="Rioleringswerken Kouter",
        geometry=POINT,
        start=START,
        end=START + timedelta(days=4),
        modified_at=NOW - timedelta(hours=1),
    )
    return replace(base, **changes)


# --- situations ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_every_geometry_gives_a_valid_location(name):
    document = situation_publication([roadwork(geometry=GEOMETRIES[name])], NOW)
    assert_valid(document)
    [location] = find(parse(document), "//sit:situationRecord/sit:locationReference")
    assert location.get(XSI_TYPE) == LOCATION_TYPES[name]


def test_a_multi_polygon_zone_keeps_every_polygon_and_hole():
    zone = {"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE], [OTHER_SQUARE]]}
    tree = parse(situation_publication([roadwork(geometry=zone)], NOW))
    polygons = find(tree, "//loc:gmlMultiPolygon/loc:gmlPolygon")
    assert len(polygons) == 2
    assert len(find(polygons[0], "loc:interior")) == 1
    exterior = find(polygons[0], "loc:exterior/loc:posList")[0].text.split()
    # GML in EPSG:4326 is latitude first.
    assert exterior[:4] == ["51", "3.7", "51", "3.71"]
    assert find(tree, "//loc:coordinatesForDisplay/loc:latitude")


def test_an_open_ended_roadwork_has_no_end_time():
    tree = parse(situation_publication([roadwork(end=None)], NOW))
    assert find(tree, "//com:overallStartTime/text()") == ["2025-03-03T06:00:00Z"]
    assert find(tree, "//com:overallEndTime") == []


@pytest.mark.parametrize(
    ("changes", "management"),
    [
        ({}, None),
        ({"closure": "none"}, None),
        ({"closure": "full"}, "roadClosed"),
        ({"dispositions": ({"disposition": "roadClosed"},)}, "roadClosed"),
        ({"lanes_closed": 1}, "laneClosures"),
        ({"dispositions": ({"disposition": "laneReduction"},)}, "laneClosures"),
        ({"closure": "full", "lanes_closed": 2, "end": None}, "roadClosed"),
    ],
)
def test_closures_become_network_management_records(changes, management):
    document = situation_publication([roadwork(**changes)], NOW)
    assert_valid(document)
    tree = parse(document)
    kinds = [r.get(XSI_TYPE) for r in find(tree, "//sit:situationRecord")]
    types = find(tree, "//sit:roadOrCarriagewayOrLaneManagementType/text()")
    if management is None:
        assert (kinds, types) == (["sit:MaintenanceWorks"], [])
    else:
        assert kinds == ["sit:MaintenanceWorks", "sit:RoadOrCarriagewayOrLaneManagement"]
        assert types == [management]


def test_roadwork_details_reach_the_records():
    work = roadwork(
        state="open",
        lanes_closed=2,
        description="x" * 2000,
        work_nature=("roadWorks", "resurfacingWork", "digging"),
        source="https://gipod.vlaanderen.be/ns/gipod#1",
        version="7",
    )
    document = situation_publication([work], NOW, Publisher("be", "GENT", "nl"))
    assert_valid(document)
    tree = parse(document)
    record = find(tree, "//sit:situationRecord")[0]
    assert (record.get("id"), record.get("version")) == (f"{work.id}#works", "7")
    assert find(tree, "//sit:probabilityOfOccurrence/text()") == ["certain", "certain"]
    assert find(tree, "//sit:numberOfLanesRestricted/text()") == ["2", "2"]
    assert find(tree, "//sit:roadMaintenanceType/text()") == [
        "roadworks", "resurfacingWork", "other",
    ]  # fmt: skip
    comments = find(tree, "//sit:situationRecord[1]/sit:generalPublicComment//com:value/text()")
    assert comments[0] == work.name and len(comments[1]) == 1024
    assert find(tree, "//com:nationalIdentifier/text()") == ["GENT"]
    assert find(tree, "//com:urlLinkAddress/text()")[0] == work.source


def test_cancelled_finished_and_unplaceable_roadworks_are_left_out():
    works = [
        roadwork(id="urn:a", state="cancelled"),
        roadwork(id="urn:b", state="closed"),
        roadwork(id="urn:c", geometry={"type": "GeometryCollection", "geometries": []}),
        roadwork(id="urn:d", state="planned"),
    ]
    document = situation_publication(works, NOW)
    assert_valid(document)
    assert find(parse(document), "//sit:situation/@id") == ["urn:d"]


def test_no_roadworks_is_a_valid_empty_publication():
    document = situation_publication([], NOW)
    assert_valid(document)
    assert find(parse(document), "//com:publicationTime/text()") == ["2025-03-01T08:01:00Z"]


def test_the_schema_is_read_from_the_local_files_only():
    payload_schema()
    imported = {"Common", "LocationReferencing", "RoadTrafficData", "Situation", "Vms"}
    assert {f"DATEXII_3_{name}.xsd" for name in imported} <= {path.name for path in LOADED}
    assert all(path.parent == SCHEMA_DIRECTORY for path in LOADED)


def test_the_validator_rejects_what_the_schema_forbids():
    tree = parse(situation_publication([roadwork()], NOW))
    [probability] = find(tree, "//sit:probabilityOfOccurrence")
    probability.getparent().remove(probability)
    errors = schema_errors(etree.tostring(tree))
    assert any("probabilityOfOccurrence" in error for error in errors), errors


# --- traffic ---------------------------------------------------------------------------------

OBSERVED = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def site(site_id: str, **changes: Any) -> SiteState:
    base = SiteState(
        site_id=site_id,
        name=f"Meetpunt {site_id}",
        location=POINT,
        observed_at=OBSERVED,
        period=timedelta(minutes=1),
        intensity=14.0,
        average_speed=92.4,
        occupancy=0.11,
        congestion="freeFlow",
        classes=(
            ClassFlow(f"{site_id}-class2", "car", OBSERVED, 12.0, 95.0),
            ClassFlow(f"{site_id}-class4", "lorry", OBSERVED - timedelta(minutes=1), 2.0, 84.0),
            ClassFlow(f"{site_id}-class9", "hovercraft", OBSERVED, 0.0, None),
        ),
        lane=10,
        modified_at=OBSERVED + timedelta(seconds=5),
    )
    return replace(base, **changes)


def awkward_sites() -> list[SiteState]:
    """Sites of every shape the traffic state produces."""
    return [
        site("LOOP-1"),
        site("LOOP-2", average_speed=None, occupancy=0.7, congestion="stationary",
             classes=(ClassFlow("LOOP-2-class2", "car", OBSERVED, 0.0, None),)),
        site("NO-READINGS", observed_at=None, intensity=None, average_speed=None,
             occupancy=None, congestion="unknown", classes=(), period=None, lane=None),
        site("NO-PLACE", location=None),
        site("SEGMENT", location=GEOMETRIES["multi-polygon zone"], period=timedelta(hours=1),
             average_speed=None, occupancy=None, congestion="unknown", lane=None,
             classes=(ClassFlow("SEGMENT-car", "car", OBSERVED, 300.0, None, 41.5),)),
        site("LINE", location=LINE, period=None, congestion="heavy"),
    ]  # fmt: skip


def test_the_site_table_is_valid_and_holds_the_located_sites():
    document = measurement_site_table_publication(awkward_sites(), NOW)
    assert_valid(document)
    tree = parse(document)
    assert find(tree, "//roa:measurementSite/@id") == [
        "LOOP-1", "LOOP-2", "NO-READINGS", "SEGMENT", "LINE",
    ]  # fmt: skip
    locations = find(tree, "//roa:measurementSiteLocation")
    assert [loc.get(XSI_TYPE) for loc in locations] == [
        "loc:PointLocation", "loc:PointLocation", "loc:PointLocation", "loc:AreaLocation",
        "loc:LinearLocation",
    ]  # fmt: skip
    lanes = find(tree, "//roa:measurementSite[@id='LOOP-1']//loc:laneNumber/text()")
    assert set(lanes) == {"10"}
    kinds = find(tree, "//roa:measurementSite[@id='LOOP-1']//com:vehicleType/text()")
    assert set(kinds) == {"anyVehicle", "car", "lorry", "other"}


def test_measured_data_is_valid_and_omits_what_was_not_measured():
    document = measured_data_publication(awkward_sites(), NOW)
    assert_valid(document)
    tree = parse(document)
    measured = find(tree, "//roa:siteMeasurements/roa:measurementSiteReference/@id")
    assert measured == ["LOOP-1", "LOOP-2", "SEGMENT", "LINE"]

    def values(site_id: str, path: str) -> list[str]:
        base = f"//roa:siteMeasurements[roa:measurementSiteReference/@id='{site_id}']"
        return find(tree, base + path)

    assert values("LOOP-1", "/roa:physicalQuantity/@index") == [
        "1",
        "2",
        "3",
        "4",
        "11",
        "12",
        "21",
        "22",
        "31",
    ]
    assert values("LOOP-1", "//com:vehicleFlowRate/text()")[:2] == ["840", "720"]
    assert values("LOOP-1", "//roa:averageVehicleSpeed/com:speed/text()")[0] == "92.4"
    assert values("LOOP-1", "//roa:occupancy/com:percentage/text()") == ["11"]
    # The lorry class was last counted a minute before the site's default time.
    assert values("LOOP-1", "//roa:timeValue/text()") == [
        "2025-03-01T07:59:00Z",
        "2025-03-01T07:59:00Z",
        "2025-03-01T08:00:00Z",
    ]
    # No speed at all: no TrafficSpeed, but the standing queue shows in the status.
    assert values("LOOP-2", "//roa:basicData/@xsi:type") == [
        "roa:TrafficFlow", "roa:TrafficConcentration", "roa:TrafficStatus", "roa:TrafficFlow",
    ]  # fmt: skip
    assert values("LOOP-2", "//roa:trafficStatusValue/text()") == ["stationary"]
    # Telraam-like: hourly counts, the v85 as the 85th speed percentile, no status.
    assert values("SEGMENT", "//com:vehicleFlowRate/text()") == ["14", "300"]
    assert values("SEGMENT", "//roa:speedPercentile/roa:speedPercentile/com:speed/text()") == [
        "41.5"
    ]
    assert values("SEGMENT", "//roa:trafficStatus") == []
    # Without a period, a count is no rate: no flow.
    assert values("LINE", "//roa:vehicleFlow") == []
    assert values("LINE", "//roa:trafficStatusValue/text()") == ["heavy"]


def test_measured_data_refers_to_the_site_table():
    sites = awkward_sites()
    table = parse(measurement_site_table_publication(sites, NOW))
    data = parse(measured_data_publication(sites, NOW))
    [table_ref] = find(data, "//roa:measurementSiteTableReference")
    [table_element] = find(table, "//roa:measurementSiteTable")
    assert (table_ref.get("id"), table_ref.get("version")) == (
        table_element.get("id"),
        table_element.get("version"),
    )
    for measurements in find(data, "//roa:siteMeasurements"):
        [reference] = find(measurements, "roa:measurementSiteReference")
        [entry] = find(table, f"//roa:measurementSite[@id='{reference.get('id')}']")
        assert entry.get("version") == reference.get("version")
        declared = set(find(entry, "roa:measurementSpecificCharacteristics/@index"))
        assert set(find(measurements, "roa:physicalQuantity/@index")) <= declared


def test_versions_follow_the_site_description_not_its_readings():
    first = site("LOOP-1")
    assert site_version(first) == site_version(replace(first, intensity=99.0))
    assert site_version(first) != site_version(replace(first, name="Renamed"))
    assert [index for index, _, _ in characteristics(first)] == [1, 2, 3, 4, 11, 12, 21, 22, 31, 32]


@pytest.mark.parametrize(
    ("sites", "publication"),
    [
        ([], measurement_site_table_publication),
        ([], measured_data_publication),
        ([site("NO-PLACE", location=None)], measurement_site_table_publication),
        ([site("QUIET", observed_at=None)], measured_data_publication),
    ],
)
def test_traffic_publications_need_a_site(sites, publication):
    with pytest.raises(EmptyPublication, match="no measurement site"):
        publication(sites, NOW)
