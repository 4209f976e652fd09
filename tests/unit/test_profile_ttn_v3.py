"""ttn-v3 profile: the real TTS uplink, with the real Decentlab DL-PM decoded payload injected."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from devices.model import AttributeMapping, Decoded, DecodeError, DeviceConfig
from devices.profiles.ttn_v3 import PROFILE
from stadspuls.simulator import DL_PM_ATTRIBUTES

PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "payloads"
UPLINK = orjson.loads((PAYLOADS / "tts_v3_mqtt_up_example.json").read_bytes())
DECENTLAB = orjson.loads((PAYLOADS / "decentlab_dl_pm_decoded_payload.json").read_bytes())
DL_PM = DECENTLAB["output"]["data"]
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPIC = "v3/app1@ttn/devices/dev1/up"
GATEWAY_TIME = datetime(2019, 1, 29, 13, 2, 34, 981000, tzinfo=UTC)

# The Decentlab DL-PM device model, as the simulator and docs/examples/devices.yaml define it.
DL_PM_MAPPING = MappingProxyType(dict(DL_PM_ATTRIBUTES))
DL_PM_DEVICE = DeviceConfig(
    "dev1", "ttn-v3", entity_type="AirQualityObserved", attributes=DL_PM_MAPPING
)
PLAIN_DEVICE = DeviceConfig("dev1", "ttn-v3")


def uplink(decoded_payload: Any = None, **changes: Any) -> dict[str, Any]:
    """The real uplink with `decoded_payload` injected and uplink_message fields changed."""
    message = copy.deepcopy(UPLINK)
    if decoded_payload is not None:
        message["uplink_message"]["decoded_payload"] = decoded_payload
    for name, value in changes.items():
        if value is ...:
            message["uplink_message"].pop(name, None)
        else:
            message["uplink_message"][name] = value
    return message


def decode(document: Any, device: DeviceConfig = DL_PM_DEVICE) -> Decoded:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return PROFILE.decode(TOPIC, payload, device, RECEIVED)


def values(decoded: Decoded) -> dict[str, tuple[Any, str | None]]:
    return {reading.attribute: (reading.value, reading.unit_code) for reading in decoded.readings}


def partial(*keys: str) -> dict[str, Any]:
    return {key: DL_PM[key] for key in keys}


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        ("v3/app1@ttn/devices/dev1/up", "app1/dev1"),
        ("v3/city-air@gent/devices/dl-pm-001/up", "city-air/dl-pm-001"),
        ("v3/app1/devices/dev1/up", "app1/dev1"),
        ("v3/app1@ttn/devices/dev1/join", None),
        ("v3/app1@ttn/devices/dev1/up/extra", None),
        ("v3/@ttn/devices/dev1/up", None),
        ("v3/app1/devices//up", None),
        ("v2/app1/devices/dev1/up", None),
    ],
)
def test_device_key_is_application_and_device(topic: str, key: str | None) -> None:
    assert PROFILE.device_key(topic) == key


def test_real_uplink_without_decoded_payload_keeps_radio_metadata() -> None:
    decoded = decode(UPLINK, PLAIN_DEVICE)
    assert decoded.readings == []
    assert decoded.device_properties == {
        "devEui": "4200000000000000",
        "fPort": 15,
        "fCnt": 0,  # left out by TTS because it is 0
        "gateways": ["eui-0242020000247803"],
        "rssi": -35,
        "snr": 5,
    }
    assert decoded.observed_at == GATEWAY_TIME


def test_decentlab_frame_through_the_dl_pm_mapping() -> None:
    decoded = decode(uplink(DL_PM))
    assert values(decoded) == {
        "pm1": (3.7, "GQ"),
        "pm25": (3.9, "GQ"),
        "pm4": (3.9, "GQ"),
        "pm10": (3.9, "GQ"),
        "temperature": (24.35660461425781, "CEL"),
        "relativeHumidity": (41.63221740722656, "P1"),
        "atmosphericPressure": (pytest.approx(968.0), "A97"),
        "batteryVoltage": (3.109, "VLT"),
    }
    assert {(r.entity_type, r.entity_key) for r in decoded.readings} == {
        ("AirQualityObserved", "dev1")
    }
    assert {r.observed_at for r in decoded.readings} == {GATEWAY_TIME}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (partial("battery_voltage", "device_id", "protocol_version"), {"batteryVoltage"}),
        (partial("air_temperature", "air_humidity"), {"temperature", "relativeHumidity"}),
        (partial("pm10_number_concentration", "typical_particle_size"), set()),
        ({}, set()),
    ],
    ids=["battery-only", "climate-only", "unmapped-only", "empty"],
)
def test_partial_frames_give_only_what_they_carry(frame: dict[str, Any], expected: set) -> None:
    decoded = decode(uplink(frame))
    assert set(values(decoded)) == expected
    assert decoded.device_properties["devEui"] == "4200000000000000"


def test_without_mappings_numbers_pass_through_under_their_own_key() -> None:
    decoded = decode(uplink({**DL_PM, "label": "x", "flags": {"a": 1}}), PLAIN_DEVICE)
    got = values(decoded)
    numeric = {key for key, value in DL_PM.items() if not isinstance(value, str)}
    assert set(got) == numeric
    assert got["pm2_5_mass_concentration"] == (3.9, None)
    assert got["barometric_pressure"] == (96800.0, None)
    assert got["device_id"] == (6992.0, None)
    assert {(r.entity_type, r.entity_key) for r in decoded.readings} == {("Device", "dev1")}


def test_without_mappings_booleans_and_text_are_not_numbers() -> None:
    frame = {"on": True, "wet": {"value": False}, "label": "7", "level": {"value": 7}}
    assert values(decode(uplink(frame), PLAIN_DEVICE)) == {"level": (7.0, None)}


def test_entity_name_and_type_come_from_the_device() -> None:
    device = DeviceConfig("dev1", "ttn-v3", entity_type="Thing", entity_name="kerkstraat")
    decoded = decode(uplink({"count": 4}), device)
    assert [(r.entity_type, r.entity_key, r.value) for r in decoded.readings] == [
        ("Thing", "kerkstraat", 4.0)
    ]


@pytest.mark.parametrize(
    ("top", "network", "expected"),
    [
        ("2024-05-01T11:59:58.123456789Z", "2024-05-01T11:59:57Z", "2024-05-01T11:59:58.123456"),
        (None, "2024-05-01T11:59:57.5Z", "2024-05-01T11:59:57.500000"),
        (None, None, "2019-01-29T13:02:34.981000"),
    ],
    ids=["application-server", "network-server", "gateway"],
)
def test_observed_time_precedence(top: str | None, network: str | None, expected: str) -> None:
    message = uplink({"count": 1})
    if top:
        message["received_at"] = top
    if network:
        message["uplink_message"]["received_at"] = network
    decoded = decode(message, PLAIN_DEVICE)
    assert decoded.observed_at == datetime.fromisoformat(expected).replace(tzinfo=UTC)
    assert decoded.readings[0].observed_at == decoded.observed_at


def test_no_time_anywhere_uses_reception_time() -> None:
    decoded = decode(uplink({"count": 1}, rx_metadata=...), PLAIN_DEVICE)
    assert decoded.observed_at == RECEIVED
    assert decoded.readings[0].observed_at == RECEIVED


@pytest.mark.parametrize(
    ("removed", "absent", "zero"),
    [
        ("f_port", set(), "fPort"),
        ("f_cnt", set(), "fCnt"),
        ("rx_metadata", {"gateways", "rssi", "snr"}, None),
        ("decoded_payload", set(), None),
    ],
)
def test_fields_tts_omits_are_optional(removed: str, absent: set[str], zero: str | None) -> None:
    message = uplink({"battery_voltage": DL_PM["battery_voltage"]}, f_cnt=42)
    del message["uplink_message"][removed]
    decoded = decode(message)
    properties = decoded.device_properties
    assert absent.isdisjoint(properties)
    assert properties["devEui"] == "4200000000000000"
    # TTS omits zero values: a missing port or counter is 0, not unknown.
    assert (properties["fPort"], properties["fCnt"]) == (
        0 if zero == "fPort" else 15,
        0 if zero == "fCnt" else 42,
    )
    assert len(decoded.readings) == (0 if removed == "decoded_payload" else 1)


def test_best_gateway_gives_rssi_and_snr_and_user_location() -> None:
    gateways = [
        {"gateway_ids": {"gateway_id": "far"}, "rssi": -117, "snr": -7.5},
        {"gateway_ids": {"gateway_id": "near"}, "channel_rssi": -61, "snr": 9.25},
        {"gateway_ids": {"gateway_id": "blind"}},
    ]
    locations = {"user": {"latitude": 51.0543, "longitude": 3.7174, "source": "SOURCE_REGISTRY"}}
    decoded = decode(uplink(rx_metadata=gateways, locations=locations), PLAIN_DEVICE)
    properties = decoded.device_properties
    assert properties["gateways"] == ["far", "near", "blind"]
    assert (properties["rssi"], properties["snr"]) == (-61, 9.25)
    assert properties["location"] == {"type": "Point", "coordinates": [3.7174, 51.0543]}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "invalid_json"),
        (b"[]", "invalid_payload"),
        (orjson.dumps({"end_device_ids": {}}), "invalid_payload"),
        (orjson.dumps(uplink([1, 2])), "invalid_payload"),
        (orjson.dumps(uplink(rx_metadata={"time": "x"})), "invalid_payload"),
        (orjson.dumps(uplink(rx_metadata=["gw"])), "invalid_payload"),
        (orjson.dumps({**UPLINK, "received_at": "not a time"}), "invalid_time"),
        (orjson.dumps({**UPLINK, "received_at": 1548766954}), "invalid_time"),
    ],
)
def test_bad_messages_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=f"^{reason}"):
        decode(payload)


def test_a_number_mapping_refuses_text() -> None:
    mapping = {"count": AttributeMapping("count", "intensity", type="Number")}
    device = DeviceConfig("dev1", "ttn-v3", attributes=mapping)
    with pytest.raises(DecodeError, match="^wrong_type: count"):
        decode(uplink({"count": "many"}), device)


def test_a_nan_string_under_a_number_mapping_is_missing() -> None:
    mapping = {"count": AttributeMapping("count", "intensity", type="Number")}
    device = DeviceConfig("dev1", "ttn-v3", attributes=mapping)
    assert decode(uplink({"count": "nan"}), device).readings == []
