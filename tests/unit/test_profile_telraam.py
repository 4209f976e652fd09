"""telraam profile: the real traffic report and live snapshot, in every accepted shape."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from devices.model import Decoded, DecodeError, DeviceConfig
from devices.profiles.telraam import PROFILE

PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "payloads"
REPORT = orjson.loads((PAYLOADS / "telraam_traffic_report_example.json").read_bytes())
SNAPSHOT = orjson.loads((PAYLOADS / "telraam-traffic-snapshot-example.geojson").read_bytes())
RECORD = REPORT["report"][0]
FEATURE = SNAPSHOT["features"][0]
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPIC = "telraam/348917/traffic"
DEVICE = DeviceConfig("348917", "telraam")
LEFT, RIGHT = "urn:ngsi-ld:Dataset:lft", "urn:ngsi-ld:Dataset:rgt"
SEGMENT = {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:telraam-348917"}


def decode(document: Any, device: DeviceConfig = DEVICE) -> Decoded:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return PROFILE.decode(TOPIC, payload, device, RECEIVED)


def table(decoded: Decoded) -> dict[tuple[str, str, str | None], tuple[Any, str | None]]:
    """(entity key, attribute, dataset) → (value, unit)."""
    return {
        (r.entity_key, r.attribute, r.dataset_id): (r.value, r.unit_code) for r in decoded.readings
    }


def changed(**fields: Any) -> dict[str, Any]:
    record = copy.deepcopy(RECORD)
    for name, value in fields.items():
        if value is ...:
            del record[name]
        else:
            record[name] = value
    return record


REPORT_READINGS = {
    ("telraam-348917-pedestrian", "intensity", None): (72.602739726, None),
    ("telraam-348917-pedestrian", "intensity", LEFT): (41.095890411, None),
    ("telraam-348917-pedestrian", "intensity", RIGHT): (31.5068493151, None),
    ("telraam-348917-bike", "intensity", None): (263.0136986301, None),
    ("telraam-348917-bike", "intensity", LEFT): (156.1643835616, None),
    ("telraam-348917-bike", "intensity", RIGHT): (106.8493150685, None),
    ("telraam-348917-car", "intensity", None): (619.1780821918, None),
    ("telraam-348917-car", "intensity", LEFT): (202.7397260274, None),
    ("telraam-348917-car", "intensity", RIGHT): (416.4383561644, None),
    ("telraam-348917-car", "v85", None): (25.5, "KMH"),
    ("telraam-348917-car", "speedHistogram", None): (RECORD["car_speed_hist_0to120plus"], None),
    ("telraam-348917-heavy", "intensity", None): (78.0821917808, None),
    ("telraam-348917-heavy", "intensity", LEFT): (52.0547945205, None),
    ("telraam-348917-heavy", "intensity", RIGHT): (26.0273972603, None),
    ("348917", "uptime", None): (0.73, None),
}


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        ("telraam/348917/traffic", "348917"),
        ("telraam/9000001234/traffic", "9000001234"),
        ("telraam/348917", None),
        ("telraam//traffic", None),
        ("telraam/348917/traffic/extra", None),
        ("telraam/348917/other", None),
    ],
)
def test_device_key_is_the_middle_level(topic: str, key: str | None) -> None:
    assert PROFILE.device_key(topic) == key


@pytest.mark.parametrize(
    "document",
    [REPORT, RECORD, [RECORD], {"report": [RECORD]}],
    ids=["api-response", "one-record", "array", "report-only"],
)
def test_report_record_in_every_shape(document: Any) -> None:
    decoded = decode(document)
    assert table(decoded) == REPORT_READINGS
    start = datetime(2020, 10, 30, 7, 0, tzinfo=UTC)
    assert {r.observed_at for r in decoded.readings} == {start}
    assert decoded.observed_at == start


def test_report_entity_types_and_context() -> None:
    decoded = decode(REPORT)
    types = {(r.entity_type, r.entity_key) for r in decoded.readings}
    assert types == {
        ("ItemFlowObserved", "telraam-348917-pedestrian"),
        ("ItemFlowObserved", "telraam-348917-bike"),
        ("TrafficFlowObserved", "telraam-348917-car"),
        ("TrafficFlowObserved", "telraam-348917-heavy"),
        ("Device", "348917"),
    }
    interval = {
        "dateObservedFrom": "2020-10-30T07:00:00Z",
        "dateObservedTo": "2020-10-30T08:00:00Z",
        "refRoadSegment": SEGMENT,
    }
    assert decoded.entity_properties == {
        ("ItemFlowObserved", "telraam-348917-pedestrian"): {**interval, "itemType": "pedestrian"},
        ("ItemFlowObserved", "telraam-348917-bike"): {**interval, "itemType": "bicycle"},
        ("TrafficFlowObserved", "telraam-348917-car"): {**interval, "vehicleType": "car"},
        ("TrafficFlowObserved", "telraam-348917-heavy"): {**interval, "vehicleType": "lorry"},
    }


@pytest.mark.parametrize("document", [SNAPSHOT, FEATURE], ids=["collection", "feature"])
def test_live_snapshot_totals_and_geometry(document: Any) -> None:
    decoded = decode(document)
    assert table(decoded) == {
        ("telraam-426009-pedestrian", "intensity", None): (3.99851906701222, None),
        ("telraam-426009-bike", "intensity", None): (33.3209922251018, None),
        ("telraam-426009-car", "intensity", None): (277.230655312846, None),
        ("telraam-426009-car", "v85", None): (31.0, "KMH"),
        ("telraam-426009-heavy", "intensity", None): (26.6567937800814, None),
        ("348917", "uptime", None): (0.750277777777778, None),
    }
    assert decoded.observed_at == datetime(2021, 9, 30, 6, 0, tzinfo=UTC)
    car = decoded.entity_properties[("TrafficFlowObserved", "telraam-426009-car")]
    assert car["location"] == FEATURE["geometry"]
    assert car["dateObservedTo"] == "2021-09-30T07:00:00Z"
    assert car["refRoadSegment"]["object"] == "urn:ngsi-ld:RoadSegment:telraam-426009"


@pytest.mark.parametrize(
    ("record", "absent"),
    [
        (changed(v85=None), {("telraam-348917-car", "v85", None)}),
        (changed(v85="nan"), {("telraam-348917-car", "v85", None)}),
        (changed(uptime=...), {("348917", "uptime", None)}),
        (
            changed(car_speed_hist_0to120plus=[]),
            {("telraam-348917-car", "speedHistogram", None)},
        ),
        (
            changed(pedestrian=..., pedestrian_lft=..., pedestrian_rgt=...),
            {("telraam-348917-pedestrian", "intensity", d) for d in (None, LEFT, RIGHT)},
        ),
    ],
    ids=["v85-null", "v85-nan", "no-uptime", "empty-histogram", "no-pedestrians"],
)
def test_missing_values_leave_out_only_their_readings(record: dict, absent: set) -> None:
    expected = {key: value for key, value in REPORT_READINGS.items() if key not in absent}
    assert table(decode(record)) == expected


def test_a_mode_without_readings_gets_no_context() -> None:
    decoded = decode(changed(pedestrian=..., pedestrian_lft=..., pedestrian_rgt=...))
    assert ("ItemFlowObserved", "telraam-348917-pedestrian") not in decoded.entity_properties


@pytest.mark.parametrize(
    ("fields", "date_to"),
    [
        ({"interval": "daily"}, "2020-10-31T07:00:00Z"),
        ({"interval": ...}, None),
        ({"interval": "weekly"}, None),
        ({"interval": ..., "period": "hourly"}, "2020-10-30T08:00:00Z"),
    ],
)
def test_interval_end_follows_the_interval(fields: dict[str, Any], date_to: str | None) -> None:
    decoded = decode(changed(**fields))
    context = decoded.entity_properties[("TrafficFlowObserved", "telraam-348917-car")]
    assert context.get("dateObservedTo") == date_to


def test_record_without_date_or_segment_uses_reception_time_and_device() -> None:
    decoded = decode(changed(date=..., segment_id=...))
    assert decoded.observed_at == RECEIVED
    assert ("348917", "uptime", None) in table(decoded)
    assert ("telraam-348917-car", "v85", None) in table(decoded)


def test_several_hours_keep_their_own_times() -> None:
    later = changed(date="2020-10-30T08:00:00.000Z", car=700.0)
    decoded = decode({"report": [RECORD, later]})
    cars = [
        (r.observed_at.hour, r.value)
        for r in decoded.readings
        if r.entity_key == "telraam-348917-car" and r.attribute == "intensity" and not r.dataset_id
    ]
    assert cars == [(7, 619.1780821918), (8, 700.0)]
    assert decoded.observed_at == datetime(2020, 10, 30, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"<html>", "invalid_json"),
        (b"3.5", "invalid_payload"),
        (b'{"report": "none"}', "invalid_payload"),
        (b'{"report": [1]}', "invalid_payload"),
        (b'{"type": "FeatureCollection", "features": null}', "invalid_payload"),
        (b'{"type": "Feature", "properties": []}', "invalid_payload"),
        (orjson.dumps(changed(car="lots")), "wrong_type"),
        (orjson.dumps(changed(car_lft=True)), "wrong_type"),
        (orjson.dumps(changed(car_speed_hist_0to120plus="0,1")), "wrong_type"),
        (orjson.dumps(changed(date="30/10/2020 07:00")), "invalid_time"),
    ],
)
def test_bad_payloads_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=f"^{reason}"):
        decode(payload)
