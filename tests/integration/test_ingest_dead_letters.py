"""Malformed payloads land in the dead-letter store with their reason; good ones keep flowing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from stadspuls.publisher import publish_all
from stadspuls.simulator import IOTA_APIKEY, message_stream
from storage.database import connect
from tests.support.ingest import (
    count,
    expected_observations,
    ingest_settings,
    running_worker,
    stored_observations,
    wait_until,
)

pytestmark = pytest.mark.integration

MAX_PAYLOAD = 4096


def bad_json(i: int) -> tuple[str, bytes]:
    return f"sensor-community/{9000 + i}", b'{"sensordatavalues": [' + str(i).encode()


def wrong_type(i: int) -> tuple[str, bytes]:
    body = {"n": f"not-a-number-{i}", "o": 40.0}
    return f"/json/{IOTA_APIKEY}/no2-{i}/attrs", orjson.dumps(body)


def unknown_device(i: int) -> tuple[str, bytes]:
    return f"/json/unregistered-key/dev-{i}/attrs", orjson.dumps({"n": i})


def oversize(i: int) -> tuple[str, bytes]:
    body = {"n": 1.0, "padding": "x" * MAX_PAYLOAD, "i": i}
    return f"/json/{IOTA_APIKEY}/no2-{i % 5}/attrs", orjson.dumps(body)


MALFORMED = {
    "invalid_json": bad_json,
    "wrong_type": wrong_type,
    "unknown_device": unknown_device,
    "oversize": oversize,
}


def test_a_thousand_malformed_payloads_are_dead_lettered_while_good_ones_flow(
    ingest_database, mqtt_url
):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    good = list(message_stream(500, start, devices_per_profile=10))
    expected = expected_observations(good)
    bad = [make(i) for i in range(250) for make in MALFORMED.values()]
    mixed = []
    for i, message in enumerate(good):
        mixed.append((message.topic, message.payload))
        mixed.extend(bad[i * 2 : i * 2 + 2])
    assert len(bad) == 1000 and len(mixed) == 1500

    settings = ingest_settings(ingest_database, mqtt_url, max_payload_bytes=MAX_PAYLOAD)
    with running_worker(settings) as worker:
        publish_all(mqtt_url, mixed)
        wait_until(lambda: worker.stats.messages >= 1500, 60, "every message to be committed")

    with connect(ingest_database) as conn:
        reasons = dict(
            conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall()
        )
        stored = stored_observations(conn)
        sample = conn.execute(
            "SELECT topic, payload, detail FROM dead_letters WHERE reason = 'wrong_type' LIMIT 1"
        ).fetchone()
        unknown_with_device = count(
            conn,
            "SELECT count(*) FROM dead_letters WHERE device_id IS NOT NULL "
            "AND reason = 'unknown_device'",
        )
    assert reasons == {reason: 250 for reason in MALFORMED}
    assert set(stored) == expected and len(stored) == len(expected)
    topic, payload, detail = sample
    assert topic.startswith(f"/json/{IOTA_APIKEY}/")
    assert b"not-a-number" in bytes(payload)  # the raw bytes are kept whole
    assert detail
    assert unknown_with_device == 0


def test_a_message_the_database_refuses_costs_only_itself(ingest_database, mqtt_url):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    good = list(message_stream(300, start, devices_per_profile=10))
    expected = expected_observations(good)
    # Valid JSON, decodes fine, but PostgreSQL text and jsonb cannot hold U+0000.
    refused = (f"/json/{IOTA_APIKEY}/no2-0/attrs", orjson.dumps({"label": "bad\u0000value"}))
    mixed = [(m.topic, m.payload) for m in good[:150]] + [refused]
    mixed += [(m.topic, m.payload) for m in good[150:]]
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=500, batch_time=1.0)
    with running_worker(settings) as worker:
        publish_all(mqtt_url, mixed)
        wait_until(lambda: worker.stats.messages >= 301, 60, "every message to be committed")
    with connect(ingest_database) as conn:
        letters = conn.execute("SELECT reason, topic, payload FROM dead_letters").fetchall()
        stored = stored_observations(conn)
    assert [(reason, topic, bytes(payload)) for reason, topic, payload in letters] == [
        ("storage_error", refused[0], refused[1])
    ]
    assert set(stored) == expected and len(stored) == len(expected)
