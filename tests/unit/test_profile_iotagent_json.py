"""iotagent-json profile: IoT Agent JSON topics, measure groups, type coercion and apikeys.

There is no captured device payload for this family; the measures follow the IoT Agent JSON
user guide examples (`{"t": 20, "h": 60}` style short object ids mapped to attribute names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from devices.model import AttributeMapping, Decoded, DecodeError, DeviceConfig
from devices.profiles.iotagent_json import PROFILE, parse_topic

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APIKEY = "4jggokgpepnvsb2uv4s40d59ov"
TOPIC = f"/json/{APIKEY}/sensor01/attrs"
MAPPINGS = MappingProxyType(
    {
        m.source: m
        for m in (
            AttributeMapping("t", "temperature", "CEL", "Number"),
            AttributeMapping("h", "relativeHumidity", "P1", "Number"),
            AttributeMapping("p", "atmosphericPressure", "A97", "Number", scale=0.01),
            AttributeMapping("c", "count", None, "Integer"),
            AttributeMapping("o", "open", None, "Boolean"),
            AttributeMapping("s", "status", None, "Text"),
            AttributeMapping("l", "location", None, "geo:point"),
            AttributeMapping("a", "observationSpace", None, "geo:json"),
            AttributeMapping("j", "config", None, "StructuredValue"),
            AttributeMapping("r", "refRoadSegment", None, "Relationship"),
        )
    }
)
DEVICE = DeviceConfig(
    "sensor01",
    "iotagent-json",
    entity_type="WeatherObserved",
    attributes=MAPPINGS,
    static_attributes=MappingProxyType({"name": "Kouter", "typeOfLocation": "outdoor"}),
    apikey=APIKEY,
)
ENTITY = ("WeatherObserved", "sensor01")


def decode(document: Any, device: DeviceConfig = DEVICE, topic: str = TOPIC) -> Decoded:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return PROFILE.decode(topic, payload, device, RECEIVED)


def values(decoded: Decoded) -> dict[str, tuple[Any, str | None]]:
    return {reading.attribute: (reading.value, reading.unit_code) for reading in decoded.readings}


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("/json/key/dev/attrs", ("key", "dev", None)),
        ("/json/key/dev/attrs/t", ("key", "dev", "t")),
        ("/key/dev/attrs", ("key", "dev", None)),
        ("/key/dev/attrs/t", ("key", "dev", "t")),
        ("/json/key/dev/cmdexe", None),
        ("/json/key/dev/attrs/t/extra", None),
        ("json/key/dev/attrs", None),
        ("/json/key//attrs", None),
        ("//dev/attrs", None),
        ("/key/dev/attrs/", None),
        ("v3/app/devices/dev/up", None),
    ],
)
def test_topics_of_the_iot_agent_json_binding(topic: str, parsed: tuple | None) -> None:
    assert parse_topic(topic) == parsed
    expected_key = f"{parsed[0]}/{parsed[1]}" if parsed else None
    assert PROFILE.device_key(topic) == expected_key


def test_measures_are_coerced_by_their_mapping_type() -> None:
    measures = {
        "t": "21.5",
        "h": 40,
        "p": 101325,
        "c": "7",
        "o": "true",
        "s": 3,
        "j": {"mode": "eco", "levels": [1, 2]},
        "x": "free text",
        "n": 12,
    }
    decoded = decode(measures)
    assert values(decoded) == {
        "temperature": (21.5, "CEL"),
        "relativeHumidity": (40.0, "P1"),
        "atmosphericPressure": (pytest.approx(1013.25), "A97"),
        "count": (7.0, None),
        "open": (True, None),
        "status": ("3", None),
        "config": ({"mode": "eco", "levels": [1, 2]}, None),
        "x": ("free text", None),
        "n": (12, None),
    }
    assert {(r.entity_type, r.entity_key) for r in decoded.readings} == {ENTITY}
    assert decoded.observed_at == RECEIVED


def test_geo_attributes_and_relationships_go_to_the_entity_context() -> None:
    area = {
        "type": "Polygon",
        "coordinates": [[[3.7, 51.0], [3.8, 51.0], [3.8, 51.1], [3.7, 51.0]]],
    }
    decoded = decode({"l": "51.0543, 3.7174", "a": area, "r": "urn:ngsi-ld:RoadSegment:R4"})
    assert decoded.readings == []
    assert decoded.entity_properties == {
        ENTITY: {
            "name": "Kouter",
            "typeOfLocation": "outdoor",
            "location": {"type": "Point", "coordinates": [3.7174, 51.0543]},
            "observationSpace": {"type": "GeoProperty", "value": area},
            "refRoadSegment": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:R4"},
        }
    }


def test_measure_groups_carry_their_own_time_instant() -> None:
    groups = [
        {"t": 20.5, "TimeInstant": "2024-05-01T11:50:00Z"},
        {"t": 20.75, "TimeInstant": "2024-05-01T13:55:00+02:00"},
        {"t": 21.0},
    ]
    decoded = decode(groups)
    assert [(r.value, r.observed_at) for r in decoded.readings] == [
        (20.5, datetime(2024, 5, 1, 11, 50, tzinfo=UTC)),
        (20.75, datetime(2024, 5, 1, 11, 55, tzinfo=UTC)),
        (21.0, RECEIVED),
    ]
    assert decoded.observed_at == RECEIVED


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (f"/json/{APIKEY}/sensor01/attrs/t", b"21.5", {"temperature": (21.5, "CEL")}),
        (f"/{APIKEY}/sensor01/attrs/t", b'"19.25"', {"temperature": (19.25, "CEL")}),
        (f"/json/{APIKEY}/sensor01/attrs/o", b"on", {"open": (True, None)}),
        (f"/json/{APIKEY}/sensor01/attrs/mode", b"eco", {"mode": ("eco", None)}),
        (f"/json/{APIKEY}/sensor01/attrs/j", b'{"a": 1}', {"config": ({"a": 1}, None)}),
    ],
)
def test_single_attribute_topics_carry_the_bare_value(
    topic: str, payload: bytes, expected: dict
) -> None:
    assert values(decode(payload, topic=topic)) == expected


def test_legacy_topic_decodes_like_the_json_one() -> None:
    legacy = decode({"t": 18}, topic=f"/{APIKEY}/sensor01/attrs")
    assert values(legacy) == values(decode({"t": 18}))


@pytest.mark.parametrize("missing", ["nan", "", None])
def test_missing_numbers_give_no_reading(missing: Any) -> None:
    assert values(decode({"t": missing, "h": 55.5})) == {"relativeHumidity": (55.5, "P1")}


def test_defaults_without_mappings_or_entity_type() -> None:
    device = DeviceConfig("sensor01", "iotagent-json", entity_name="urn-less-name")
    decoded = decode([{"t": 20, "TimeInstant": "2024-05-01T11:00:00Z", "on": False}], device)
    assert [(r.entity_type, r.entity_key, r.attribute, r.value) for r in decoded.readings] == [
        ("Thing", "urn-less-name", "t", 20),
        ("Thing", "urn-less-name", "on", False),
    ]
    assert decoded.entity_properties == {}


def test_device_without_apikey_accepts_any_topic_apikey() -> None:
    device = DeviceConfig("sensor01", "iotagent-json")
    assert len(decode({"t": 1}, device, "/json/other/sensor01/attrs").readings) == 1


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("/json/wrongkey/sensor01/attrs", b'{"t": 1}', "apikey_mismatch"),
        ("/json/key/sensor01/cmd", b'{"t": 1}', "invalid_topic"),
        (TOPIC, b"{", "invalid_json"),
        (TOPIC, b'"21.5"', "invalid_payload"),
        (TOPIC, b"[1, 2]", "invalid_payload"),
        (TOPIC, b'{"t": "warm"}', "wrong_type"),
        (TOPIC, b'{"t": true}', "wrong_type"),
        (TOPIC, b'{"o": "maybe"}', "wrong_type"),
        (TOPIC, b'{"s": {"nested": 1}}', "wrong_type"),
        (TOPIC, b'{"l": "51.05"}', "wrong_type"),
        (TOPIC, b'{"l": [51.05, 3.71]}', "wrong_type"),
        (TOPIC, b'{"a": "POLYGON((0 0))"}', "wrong_type"),
        (TOPIC, b'{"l": "151.05, 3.71"}', "invalid_location"),
        (TOPIC, b'{"t": 1, "TimeInstant": "now"}', "invalid_time"),
        (f"/json/{APIKEY}/sensor01/attrs/t", b"\xff\xfe", "invalid_payload"),
    ],
)
def test_bad_measures_raise_decode_error(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=f"^{reason}"):
        decode(payload, topic=topic)
