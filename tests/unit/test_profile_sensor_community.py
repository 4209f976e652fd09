"""sensor-community profile: the real API record and airRohr push body, plus derived variants."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from devices.model import Decoded, DecodeError, DeviceConfig
from devices.profiles.sensor_community import PROFILE

PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "payloads"
RECORD = orjson.loads((PAYLOADS / "sensor_community_api_data_json_sds011.json").read_bytes())
PUSH = orjson.loads((PAYLOADS / "airrohr_custom_api_push_body.json").read_bytes())
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPIC = "sensor-community/12331981"
DEVICE = DeviceConfig(device_id="12331981", profile="sensor-community")
ENTITY = ("AirQualityObserved", "12331981")


def decode(document: Any, device: DeviceConfig = DEVICE) -> Decoded:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return PROFILE.decode(TOPIC, payload, device, RECEIVED)


def values(decoded: Decoded) -> dict[str, tuple[Any, str | None]]:
    return {reading.attribute: (reading.value, reading.unit_code) for reading in decoded.readings}


def with_value(document: dict[str, Any], value_type: str, value: Any) -> dict[str, Any]:
    """A copy of `document` whose `value_type` entry holds `value` (or is removed for ...)."""
    changed = copy.deepcopy(document)
    entries = changed["sensordatavalues"]
    if value is ...:
        changed["sensordatavalues"] = [e for e in entries if e["value_type"] != value_type]
        return changed
    for entry in entries:
        if entry["value_type"] == value_type:
            entry["value"] = value
            return changed
    entries.append({"value_type": value_type, "value": value})
    return changed


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        ("sensor-community/12331981", "12331981"),
        ("sensor-community/esp8266-42", "esp8266-42"),
        ("sensor-community/", None),
        ("sensor-community/1/2", None),
        ("sensor-community", None),
        ("telraam/1/traffic", None),
    ],
)
def test_device_key_is_the_chip_id(topic: str, key: str | None) -> None:
    assert PROFILE.device_key(topic) == key


def test_api_record_gives_pm_values_time_and_location() -> None:
    decoded = decode(RECORD)
    assert values(decoded) == {"pm10": (6.73, "GQ"), "pm25": (4.48, "GQ")}
    observed = datetime(2017, 3, 30, 19, 24, 2, tzinfo=UTC)
    assert {reading.observed_at for reading in decoded.readings} == {observed}
    assert decoded.observed_at == observed
    assert {reading.entity_type for reading in decoded.readings} == {"AirQualityObserved"}
    assert decoded.entity_properties == {
        ENTITY: {"location": {"type": "Point", "coordinates": [9.317, 48.741]}}
    }
    assert decoded.device_properties == {"sensorType": ["SDS011"]}


def test_custom_push_strips_sensor_prefixes_and_converts_pressure() -> None:
    decoded = decode(PUSH)
    assert values(decoded) == {
        "pm10": (0.40, "GQ"),
        "pm25": (0.20, "GQ"),
        "temperature": (20.47, "CEL"),
        "atmosphericPressure": (1006.1325, "A97"),
        "relativeHumidity": (69.02, "P1"),
    }
    assert decoded.device_properties == {"rssi": -94, "softwareVersion": "NRZ-2020-129"}
    # The push body carries no time: the broker's reception time stands in.
    assert decoded.observed_at == RECEIVED
    assert {reading.observed_at for reading in decoded.readings} == {RECEIVED}
    assert decoded.entity_properties == {}


@pytest.mark.parametrize(
    ("value_type", "value", "attribute", "expected"),
    [
        ("P0", "1.25", "pm1", (1.25, "GQ")),
        ("PMS_P1", "11.5", "pm10", (11.5, "GQ")),
        ("PMS_P2", "7", "pm25", (7.0, "GQ")),
        ("SPS30_P1", "3.3", "pm10", (3.3, "GQ")),
        ("SPS30_P2", 2.5, "pm25", (2.5, "GQ")),
        ("DHT22_temperature", "-3.40", "temperature", (-3.4, "CEL")),
        ("DHT22_humidity", "99.90", "relativeHumidity", (99.9, "P1")),
        ("BMP280_pressure", "98765.00", "atmosphericPressure", (987.65, "A97")),
        ("HTU21D_temperature", "18.2", "temperature", (18.2, "CEL")),
        ("SHT3X_humidity", "55", "relativeHumidity", (55.0, "P1")),
    ],
)
def test_every_sensor_prefix_maps_to_its_attribute(
    value_type: str, value: Any, attribute: str, expected: tuple[float, str]
) -> None:
    document = {"esp8266id": "1", "sensordatavalues": [{"value_type": value_type, "value": value}]}
    assert values(decode(document)) == {attribute: pytest.approx(expected)}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (with_value(RECORD, "P2", "nan"), {"pm10": (6.73, "GQ")}),
        (with_value(RECORD, "P2", ""), {"pm10": (6.73, "GQ")}),
        (with_value(RECORD, "P2", None), {"pm10": (6.73, "GQ")}),
        (with_value(RECORD, "P2", ...), {"pm10": (6.73, "GQ")}),
        (with_value(with_value(RECORD, "P1", "nan"), "P2", "nan"), {}),
        (
            with_value(PUSH, "BME280_pressure", "nan"),
            {
                "pm10": (0.40, "GQ"),
                "pm25": (0.20, "GQ"),
                "temperature": (20.47, "CEL"),
                "relativeHumidity": (69.02, "P1"),
            },
        ),
    ],
    ids=["nan", "empty", "null", "removed", "all-nan", "push-nan"],
)
def test_missing_values_produce_no_reading(document: dict[str, Any], expected: Any) -> None:
    assert values(decode(document)) == expected


def test_first_sensor_wins_when_two_measure_the_same_quantity() -> None:
    document = with_value(PUSH, "DHT22_temperature", "25.00")
    assert values(decode(document))["temperature"] == (20.47, "CEL")


def test_array_of_records_keeps_each_time() -> None:
    later = with_value(RECORD, "P1", "9.10")
    later["timestamp"] = "2017-03-30T19:29:02"
    decoded = decode([RECORD, later])
    pm10 = [(r.value, r.observed_at.minute) for r in decoded.readings if r.attribute == "pm10"]
    assert pm10 == [(6.73, 24), (9.1, 29)]
    assert decoded.observed_at == datetime(2017, 3, 30, 19, 29, 2, tzinfo=UTC)


def test_entity_name_and_gps_location() -> None:
    device = DeviceConfig("12331981", "sensor-community", entity_name="gent-sint-pieters")
    document = with_value(with_value(PUSH, "GPS_lat", "51.0357"), "GPS_lon", "3.7104")
    decoded = decode(document, device)
    assert {reading.entity_key for reading in decoded.readings} == {"gent-sint-pieters"}
    assert decoded.entity_properties == {
        ("AirQualityObserved", "gent-sint-pieters"): {
            "location": {"type": "Point", "coordinates": [3.7104, 51.0357]}
        }
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"42", "invalid_payload"),
        (b'"P1"', "invalid_payload"),
        (b"[1, 2]", "invalid_payload"),
        (orjson.dumps({"esp8266id": "1"}), "invalid_payload"),
        (orjson.dumps({"sensordatavalues": {"P1": "1"}}), "invalid_payload"),
        (orjson.dumps({"sensordatavalues": ["P1"]}), "invalid_payload"),
        (orjson.dumps({"sensordatavalues": [{"value": "1"}]}), "invalid_payload"),
        (orjson.dumps(with_value(RECORD, "P1", "abc")), "wrong_type"),
        (orjson.dumps(with_value(RECORD, "P1", True)), "wrong_type"),
        (orjson.dumps(with_value(RECORD, "P1", [1.0])), "wrong_type"),
        (orjson.dumps({**RECORD, "timestamp": "yesterday"}), "invalid_time"),
        (
            orjson.dumps({**RECORD, "location": {"latitude": "148.7", "longitude": "9"}}),
            "invalid_location",
        ),
    ],
)
def test_bad_payloads_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=f"^{reason}"):
        decode(payload)


def test_all_times_are_utc_aware() -> None:
    for document in (RECORD, PUSH, [RECORD]):
        decoded = decode(document)
        assert decoded.observed_at is not None
        assert decoded.observed_at.utcoffset() is not None
        assert all(r.observed_at.tzinfo is UTC for r in decoded.readings)
