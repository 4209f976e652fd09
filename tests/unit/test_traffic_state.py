"""feeds/traffic_state.py: sites from TrafficFlowObserved entities, and congestion levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feeds.traffic_state import (
    CongestionThresholds,
    Place,
    congestion_level,
    place_references,
    traffic_state,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
STAMP = "2025-03-01T08:00:00.000000Z"
EARLIER = "2025-03-01T07:59:00.000000Z"
LORRY_SPEED = 82.0


@pytest.mark.parametrize(
    ("speed", "occupancy", "level"),
    [
        (None, None, "unknown"),
        (95.0, None, "freeFlow"),
        (50.0, None, "freeFlow"),
        (49.9, None, "heavy"),
        (29.9, None, "congested"),
        (9.9, None, "stationary"),
        (None, 0.05, "freeFlow"),
        (None, 0.15, "heavy"),
        (None, 0.30, "congested"),
        (None, 0.50, "stationary"),
        (None, 0.90, "stationary"),
        (80.0, 0.05, "freeFlow"),
        (25.0, 0.05, "freeFlow"),  # one slow car on an empty road is no jam
        (25.0, 0.20, "congested"),  # the worse of heavy (occupancy) and congested (speed)
        (80.0, 0.35, "congested"),
        (5.0, 0.55, "stationary"),
        (45.0, 0.16, "heavy"),
    ],
)
def test_congestion_level(speed, occupancy, level):
    assert congestion_level(speed, occupancy) == level


def test_congestion_thresholds_can_be_changed():
    urban = CongestionThresholds(heavy_speed=25, congested_speed=15, stationary_speed=5)
    assert congestion_level(28.0, None, urban) == "freeFlow"
    assert congestion_level(28.0, None) == "congested"


def prop(value: Any, observed_at: str | None = STAMP, dataset: str | None = None) -> dict:
    member: dict[str, Any] = {"type": "Property", "value": value}
    if observed_at:
        member["observedAt"] = observed_at
    if dataset:
        member["datasetId"] = dataset
    return member


def rel(target: str) -> dict:
    return {"type": "Relationship", "object": target}


def period(minutes: int) -> dict:
    end = T0 + timedelta(minutes=minutes)
    return {
        "dateObservedFrom": prop("2025-03-01T08:00:00Z", None),
        "dateObservedTo": prop(end.strftime("%Y-%m-%dT%H:%M:%SZ"), None),
    }


MIV_SITE = "urn:ngsi-ld:TrafficFlowObserved:miv-0-H000L10"


def miv_entities(occupancy: float = 0.12) -> list[dict]:
    """A loop site (lane 10, one minute) with three vehicle classes, as traffic-loop writes."""
    site = {
        "id": MIV_SITE,
        "vehicleType": prop("anyVehicle", None),
        "laneId": prop(10, None),
        "intensity": prop(13.0),
        "occupancy": prop(occupancy),
        "refDevice": rel("urn:ngsi-ld:Device:miv-0"),
        **period(1),
    }
    classes = [
        ("class1", "motorcycle", 0.0, None, STAMP),
        ("class2", "car", 10.0, 100.0, STAMP),
        ("class4", "lorry", 3.0, LORRY_SPEED, STAMP),
        ("class5", "articulatedVehicle", 7.0, 10.0, EARLIER),  # stale: an older minute
    ]
    entities = [site]
    for suffix, kind, count, speed, stamp in classes:
        entity = {
            "id": f"{MIV_SITE}-{suffix}",
            "vehicleType": prop(kind, None),
            "refTrafficFlowObserved": rel(MIV_SITE),
            "intensity": prop(count, stamp),
            **period(1),
        }
        if speed is not None:
            entity["averageVehicleSpeed"] = prop(speed, stamp)
        entities.append(entity)
    return entities


def test_a_loop_site_gathers_its_vehicle_classes():
    [site] = traffic_state([(e, T0) for e in miv_entities()])
    assert site.site_id == MIV_SITE
    assert site.intensity == 13.0
    assert site.flow_rate == 13.0 * 60
    assert site.occupancy == 0.12
    assert site.lane == 10
    assert site.period == timedelta(minutes=1)
    # Intensity-weighted over the classes of the newest minute only (not the stale class5).
    assert site.average_speed == pytest.approx((10 * 100.0 + 3 * LORRY_SPEED) / 13)
    assert site.congestion == "freeFlow"
    assert [flow.vehicle_type for flow in site.classes] == [
        "motorcycle", "car", "lorry", "articulatedVehicle",
    ]  # fmt: skip
    assert site.classes[3].observed_at == T0 - timedelta(minutes=1)
    assert site.observed_at == T0


def test_a_site_standing_still_over_its_loop_is_stationary_without_speeds():
    entities = [e for e in miv_entities(occupancy=0.8) if "averageVehicleSpeed" not in e]
    [site] = traffic_state([(e, T0) for e in entities])
    assert site.average_speed is None
    assert site.congestion == "stationary"
    assert site.congested


SEGMENT = "urn:ngsi-ld:RoadSegment:telraam-348917"
SEGMENT_LINE = {"type": "LineString", "coordinates": [[3.72, 51.05], [3.73, 51.051]]}


def telraam_entities() -> list[dict]:
    """Car and lorry counts of one Telraam segment (an hour, per direction), as telraam writes."""
    entities = []
    for mode, kind, total in (("car", "car", 300.0), ("heavy", "lorry", 20.0)):
        entity = {
            "id": f"urn:ngsi-ld:TrafficFlowObserved:telraam-348917-{mode}",
            "vehicleType": prop(kind, None),
            "refRoadSegment": rel(SEGMENT),
            "refDevice": rel("urn:ngsi-ld:Device:348917"),
            "intensity": [
                prop(total),
                prop(total * 0.6, dataset="urn:ngsi-ld:Dataset:lft"),
                prop(total * 0.4, dataset="urn:ngsi-ld:Dataset:rgt"),
            ],
            **period(60),
        }
        if mode == "car":
            entity["v85"] = prop(41.5)
        entities.append(entity)
    return entities


def test_a_telraam_segment_is_one_site_named_and_placed_by_its_road_segment():
    places = {SEGMENT: Place("Kortrijksesteenweg", SEGMENT_LINE)}
    [site] = traffic_state([(e, T0) for e in telraam_entities()], places)
    assert site.site_id == SEGMENT
    assert (site.name, site.location, site.road_segment) == (
        "Kortrijksesteenweg",
        SEGMENT_LINE,
        SEGMENT,
    )
    assert site.intensity == 320.0  # totals, not totals plus directions
    assert site.flow_rate == 320.0
    assert site.average_speed is None
    assert site.congestion == "unknown"
    car = next(flow for flow in site.classes if flow.vehicle_type == "car")
    assert car.speed_v85 == 41.5
    assert site.class_flow_rate(car) == 300.0


def test_a_site_falls_back_on_its_device_for_a_place():
    places = {
        "urn:ngsi-ld:Device:miv-0": Place("Loop E40", {"type": "Point", "coordinates": [3, 51]})
    }
    [site] = traffic_state([(e, T0) for e in miv_entities()], places)
    assert site.name == "Loop E40"
    assert site.location == {"type": "Point", "coordinates": [3, 51]}


def test_sites_without_readings_or_without_their_site_entity():
    lone = {
        "id": "urn:ngsi-ld:TrafficFlowObserved:planned",
        "name": prop("Planned counter", None),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [4, 50]}},
    }
    orphan_classes = [e for e in miv_entities() if e["id"] != MIV_SITE]
    sites = traffic_state([(lone, None)] + [(e, T0) for e in orphan_classes])
    assert [s.site_id for s in sites] == [MIV_SITE, lone["id"]]
    orphan, empty = sites
    assert orphan.intensity == 13.0  # summed over the classes of the newest minute
    assert orphan.occupancy is None
    assert (empty.name, empty.observed_at, empty.intensity) == ("Planned counter", None, None)
    assert empty.congestion == "unknown"
    assert empty.flow_rate is None


def test_place_references():
    assert place_references(telraam_entities() + miv_entities()) == {
        SEGMENT,
        "urn:ngsi-ld:Device:348917",
        "urn:ngsi-ld:Device:miv-0",
    }
