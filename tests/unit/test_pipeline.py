"""The batch builder: routing, device resolution, dead letters with their reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from devices.model import DeviceConfig
from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AIRROHR = orjson.dumps(
    {"esp8266id": "42", "sensordatavalues": [{"value_type": "SDS_P2", "value": "4.48"}]}
)


def message(topic: str, payload: bytes) -> RawMessage:
    return RawMessage(topic, payload, 1, 1, NOW, 0.0)


def registered(key: str) -> DeviceRegistry:
    return DeviceRegistry([(key, DeviceConfig(f"aq-{key}", "sensor-community"))], [])


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("sensor-community/42", b"{", "invalid_json"),
        ("sensor-community/43", AIRROHR, "unknown_device"),
        ("nobody/listens/here", AIRROHR, "unknown_topic"),
        ("sensor-community/42", AIRROHR + b" " * 5000, "oversize"),
        (
            "sensor-community/42",
            orjson.dumps(
                {
                    "timestamp": (NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "sensordatavalues": [{"value_type": "P2", "value": "4"}],
                }
            ),
            "observed_at_out_of_range",
        ),
    ],
)
def test_each_failure_is_a_dead_letter_with_its_reason(topic, payload, reason):
    builder = BatchBuilder(lambda: registered("42"), 4096)
    built = builder.build([message(topic, payload)])
    (letter,) = built.batch.dead_letters
    assert (letter.reason, letter.topic, letter.payload) == (reason, topic, payload)
    assert not built.batch.observations


def test_a_dead_letter_names_the_device_when_it_is_known():
    built = BatchBuilder(lambda: registered("42"), 4096).build(
        [message("sensor-community/42", b"[")]
    )
    assert built.batch.dead_letters[0].device_id == "aq-42"


def test_a_device_registered_after_the_snapshot_is_found_by_reloading():
    snapshots = [DeviceRegistry([], []), registered("42")]
    builder = BatchBuilder(lambda: snapshots[0], 4096, reload=lambda: snapshots[1])
    built = builder.build([message("sensor-community/42", AIRROHR)])
    assert not built.batch.dead_letters
    assert built.readings == 1


def test_without_a_reload_allowed_an_unknown_device_is_dead_lettered():
    builder = BatchBuilder(lambda: DeviceRegistry([], []), 4096, reload=lambda: None)
    built = builder.build([message("sensor-community/42", AIRROHR)])
    assert [d.reason for d in built.batch.dead_letters] == ["unknown_device"]
