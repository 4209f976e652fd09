"""Device health against the real PostgreSQL, fed by real batches (BatchBuilder, BatchWriter).

Every test has a tenant of its own and passes it to device_health and refresh_device_states,
so tests sharing the session database never see or change each other's devices.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devices.model import Decoded, DeviceConfig, DeviceGroup, Reading
from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from ngsi.mapping import BatchMapper
from stadspuls.simulator import (
    Message,
    iotagent_measures,
    sample_devices,
    sample_groups,
    telraam_report,
    ttn_uplink,
)
from storage.backend import Backend, detect_backend
from storage.database import connect
from storage.device_health import (
    ACTIVITY_BUCKET,
    DeviceHealth,
    DeviceState,
    device_health,
    message_rate,
    refresh_device_states,
)
from storage.records import Batch
from storage.writer import BatchWriter, write_registry

pytestmark = pytest.mark.integration

NOW = datetime(2031, 5, 6, 12, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
DEVICE_CONTEXT = (
    "<https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld>;"
    ' rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)


def ingest(
    conn: psycopg.Connection,
    backend: Backend,
    tenant: str,
    messages: Iterable[tuple[Message, datetime]],
) -> None:
    """Each message through the real pipeline, one batch per message (as received at its time)."""
    registry = DeviceRegistry(sample_devices(tenant), sample_groups(tenant))
    builder = BatchBuilder(lambda: registry, 256 * 1024)
    writer = BatchWriter(backend)
    for message, received_at in messages:
        raw = RawMessage(message.topic, message.payload, 0, 1, received_at, 0.0)
        writer.write(conn, builder.build([raw]).batch)


def no2(device: str, at: datetime, seed: int = 0) -> tuple[Message, datetime]:
    """An IoT Agent JSON measure observed and received at `at`."""
    return iotagent_measures(device, at, random.Random(seed)), at


def health_of(conn: psycopg.Connection, tenant: str, **options: object) -> dict[str, DeviceHealth]:
    """Device health of `tenant` at NOW (silent after an hour unless told), by device id."""
    values: dict = {"now": NOW, "silent_after": HOUR, "limit": 100, **options}
    return {h.device_id: h for h in device_health(conn, tenant=tenant, **values)}


@pytest.mark.parametrize(
    "in_window, first_seen, rate",
    [
        (48, NOW - timedelta(days=3), 2.0),  # a day's messages over a day
        (48, NOW - timedelta(hours=24), 2.0),
        (12, NOW - timedelta(hours=4), 3.0),  # since the first message
        (3, NOW - timedelta(minutes=10), 3.0),  # but over at least an hour
        (0, NOW - timedelta(days=3), 0.0),  # silent all day
        (0, None, 0.0),  # never seen
    ],
)
def test_the_message_rate_is_per_hour_over_a_day_or_since_the_first_message(
    in_window, first_seen, rate
):
    assert message_rate(in_window, first_seen, NOW) == pytest.approx(rate)


@pytest.mark.parametrize(
    "received, bucket",
    [
        ("2031-05-06T12:00:00+00:00", "2031-05-06T12:00:00+00:00"),
        ("2031-05-06T12:09:59.999+00:00", "2031-05-06T12:00:00+00:00"),
        ("2031-05-06T12:10:00+00:00", "2031-05-06T12:10:00+00:00"),
        ("2031-05-06T14:25:00+02:00", "2031-05-06T12:20:00+00:00"),
    ],
)
def test_the_bucket_of_the_migration_is_the_width_the_code_assumes(conn, received, bucket):
    row = conn.execute("SELECT stadspuls_activity_bucket(%s)", [datetime.fromisoformat(received)])
    stored = row.fetchone()[0]
    conn.commit()
    assert stored == datetime.fromisoformat(bucket)
    assert stored.timestamp() % ACTIVITY_BUCKET.total_seconds() == 0


def test_rates_count_the_last_hour_and_average_over_a_day(conn, backend, tenant):
    steady = [NOW - timedelta(hours=30)]  # before the 24-hour window: not in the rate
    steady += [NOW - timedelta(hours=h) for h in (20, 10, 2)]
    steady += [NOW - timedelta(minutes=m) for m in (65, 50, 30, 5)]  # 65: outside the hour
    newcomer = [NOW - timedelta(hours=2, minutes=30), NOW - timedelta(minutes=40)]
    brand_new = [NOW - timedelta(minutes=m) for m in (9, 8, 3)]
    ingest(
        conn,
        backend,
        tenant,
        [no2("no2-0", at, n) for n, at in enumerate(steady)]
        + [no2("no2-1", at, n) for n, at in enumerate(newcomer)]
        + [no2("no2-2", at, n) for n, at in enumerate(brand_new)],
    )
    health = health_of(conn, tenant)
    assert health["no2-0"].messages_last_hour == 3
    assert health["no2-0"].messages_per_hour == pytest.approx(7 / 24)
    assert health["no2-0"].last_seen == NOW - timedelta(minutes=5)
    assert health["no2-0"].model == "iota-no2"  # autoprovisioned: the Device entity's model
    assert health["no2-1"].messages_last_hour == 1
    assert health["no2-1"].messages_per_hour == pytest.approx(2 / 2.5)  # since its first
    assert health["no2-2"].messages_last_hour == 3
    assert health["no2-2"].messages_per_hour == pytest.approx(3.0)  # at least an hour
    assert {h.state for h in health.values()} == {DeviceState.OK}


def test_several_messages_of_a_batch_are_counted_once_each(conn, backend, tenant):
    registry = DeviceRegistry(sample_devices(tenant), sample_groups(tenant))
    raw = [
        RawMessage(m.topic, m.payload, 0, 1, at, 0.0)
        for m, at in (no2("no2-5", NOW - timedelta(minutes=k), k) for k in (4, 3, 2))
    ]
    BatchWriter(backend).write(conn, BatchBuilder(lambda: registry, 256 * 1024).build(raw).batch)
    assert health_of(conn, tenant)["no2-5"].messages_last_hour == 3


def test_battery_from_the_device_entity_or_from_the_entity_it_feeds(conn, backend, tenant):
    # A DL-PM reports batteryVoltage on its AirQualityObserved (the device model maps it).
    ingest(conn, backend, tenant, [(ttn_uplink("dl-pm-4", NOW, random.Random(1)), NOW)])
    # A profile that knows the level puts batteryLevel on the Device entity itself.
    device = DeviceConfig("tag-1", "iotagent-json", tenant, entity_type="AirQualityObserved")
    mapper = BatchMapper()
    reading = Reading("AirQualityObserved", "tag-1", "no2", 21.0, NOW)
    mapper.add(device, Decoded([reading], device_properties={"batteryLevel": 0.82}), NOW)
    batch = Batch(mapper.observations, mapper.fragments(), [], mapper.activity())
    BatchWriter(backend).write(conn, batch)
    # Telraam reports uptime, no battery.
    ingest(conn, backend, tenant, [(telraam_report(555, NOW, random.Random(2)), NOW)])

    health = health_of(conn, tenant)
    batteries = {d: (h.battery_level, h.battery_voltage) for d, h in health.items()}
    assert batteries == {"dl-pm-4": (None, 3.1), "tag-1": (0.82, None), "555": (None, None)}


def test_dead_letters_are_counted_per_device_with_the_latest_reason(conn, backend, tenant):
    good = ttn_uplink("dl-pm-7", NOW - timedelta(minutes=20), random.Random(3))
    bad_topic = good.topic
    ingest(
        conn,
        backend,
        tenant,
        [
            (good, NOW - timedelta(minutes=20)),
            (Message("ttn-v3", bad_topic, b"{not json"), NOW - timedelta(minutes=15)),
            (Message("ttn-v3", bad_topic, b"{not json either"), NOW - timedelta(minutes=12)),
            # The same message redelivered: one dead letter, received twice.
            (Message("ttn-v3", bad_topic, b"{not json either"), NOW - timedelta(minutes=11)),
            # Only ever malformed: known from its dead letters alone.
            (Message("ttn-v3", bad_topic.replace("dl-pm-7", "dl-pm-8"), b"[]"), NOW - HOUR),
            (Message("ttn-v3", bad_topic, b'{"no": "uplink"}'), NOW - timedelta(minutes=10)),
        ],
    )
    health = health_of(conn, tenant)
    talker = health["dl-pm-7"]
    assert (talker.dead_letters, talker.last_dead_letter_reason) == (3, "invalid_payload")
    assert talker.last_dead_letter_at == NOW - timedelta(minutes=10)
    assert (talker.state, talker.messages_last_hour) == (DeviceState.OK, 1)
    mute = health["dl-pm-8"]
    assert (mute.dead_letters, mute.state, mute.last_seen) == (1, DeviceState.NEVER_SEEN, None)


def test_states_silent_first_then_never_seen_then_ok(conn, backend, tenant):
    group = DeviceGroup(f"model-{tenant}", "telraam", f"{tenant}-", tenant)
    registered = DeviceConfig("never-1", "telraam", tenant, model=group.name)
    write_registry(conn, [(f"{tenant}-never-1", registered)], [group])
    ingest(
        conn,
        backend,
        tenant,
        [
            no2("no2-0", NOW - 3 * HOUR),
            no2("no2-1", NOW - 2 * HOUR),
            no2("no2-2", NOW - HOUR),  # exactly `silent_after` ago: not silent yet
            no2("no2-3", NOW - timedelta(minutes=1)),
        ],
    )
    listed = device_health(conn, tenant=tenant, now=NOW, silent_after=HOUR, limit=100)
    assert [(h.device_id, h.state.value) for h in listed] == [
        ("no2-0", "silent"),
        ("no2-1", "silent"),
        ("never-1", "never-seen"),
        ("no2-2", "ok"),
        ("no2-3", "ok"),
    ]
    assert listed[2].model == group.name
    assert len(device_health(conn, tenant=tenant, now=NOW, silent_after=HOUR, limit=2)) == 2
    longer = health_of(conn, tenant, silent_after=4 * HOUR)
    assert {h.state for h in longer.values()} == {DeviceState.OK, DeviceState.NEVER_SEEN}


def device_state(conn: psycopg.Connection, tenant: str, device: str) -> dict:
    row = conn.execute(
        "SELECT entity -> 'https://smartdatamodels.org/dataModel.Device/deviceState'"
        " FROM entities WHERE tenant = %s AND id = %s",
        [tenant, f"urn:ngsi-ld:Device:{device}"],
    ).fetchone()
    conn.commit()
    return row[0]


def test_refresh_marks_silent_devices_once_and_leaves_others(conn, backend, tenant):
    ingest(conn, backend, tenant, [no2("no2-0", NOW - 2 * HOUR), no2("no2-1", NOW - HOUR / 2)])
    assert refresh_device_states(conn, now=NOW, silent_after=HOUR, tenant=tenant) == 1
    assert device_state(conn, tenant, "no2-0") == {
        "type": "Property",
        "value": "silent",
        "observedAt": "2031-05-06T12:05:00.000000Z",
    }
    assert device_state(conn, tenant, "no2-1")["value"] == "ok"
    modified = conn.execute(
        "SELECT modified_at FROM entities WHERE tenant = %s AND id = 'urn:ngsi-ld:Device:no2-0'",
        [tenant],
    ).fetchone()
    conn.commit()
    later = NOW + timedelta(minutes=5)
    assert refresh_device_states(conn, now=later, silent_after=HOUR, tenant=tenant) == 0
    assert device_state(conn, tenant, "no2-0")["observedAt"] == "2031-05-06T12:05:00.000000Z"
    unchanged = conn.execute(
        "SELECT modified_at FROM entities WHERE tenant = %s AND id = 'urn:ngsi-ld:Device:no2-0'",
        [tenant],
    ).fetchone()
    conn.commit()
    assert unchanged == modified  # no write, so no change notification either


def test_refresh_skips_a_device_ingest_is_writing_and_takes_it_next_time(
    conn, backend, database_url, tenant
):
    ingest(conn, backend, tenant, [no2("no2-0", NOW - 2 * HOUR), no2("no2-1", NOW - 2 * HOUR)])
    with connect(database_url) as ingesting:
        # What a batch of ingest holds while it merges the device's entity.
        ingesting.execute(
            "SELECT 1 FROM entities WHERE tenant = %s AND id = 'urn:ngsi-ld:Device:no2-0'"
            " FOR UPDATE",
            [tenant],
        )
        # Bounded: if the refresher waited for the lock, this would fail instead of hanging.
        conn.execute("SET lock_timeout = '3s'")
        conn.commit()
        assert refresh_device_states(conn, now=NOW, silent_after=HOUR, tenant=tenant) == 1
        ingesting.rollback()
    assert device_state(conn, tenant, "no2-0")["value"] == "ok"
    assert refresh_device_states(conn, now=NOW, silent_after=HOUR, tenant=tenant) == 1
    assert device_state(conn, tenant, "no2-0")["value"] == "silent"


def test_refresh_prunes_old_buckets_of_its_tenant(conn, backend, tenant):
    ingest(conn, backend, tenant, [no2("no2-0", NOW - 30 * HOUR), no2("no2-0", NOW - HOUR / 2)])
    refresh_device_states(conn, now=NOW, silent_after=HOUR, tenant=tenant)
    buckets = conn.execute(
        "SELECT count(*) FROM device_activity_recent WHERE tenant = %s", [tenant]
    ).fetchone()
    conn.commit()
    assert buckets == (1,)


def test_silent_through_the_api_and_ok_again_with_the_next_message(api, api_database, tenant):
    with connect(api_database) as conn:
        backend = detect_backend(conn)
        ingest(conn, backend, tenant, [no2("no2-0", NOW - 2 * HOUR)])
        assert refresh_device_states(conn, now=NOW, silent_after=HOUR, tenant=tenant) == 1

        def fetch() -> dict:
            response = api.get(
                "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:no2-0", headers={"Link": DEVICE_CONTEXT}
            )
            assert response.status_code == 200, response.text
            return response.json()

        silent = fetch()
        assert silent["deviceState"] == {
            "type": "Property",
            "value": "silent",
            "observedAt": "2031-05-06T12:05:00.000000Z",
        }
        # Observed before the refresher's `now`, received after it: still a sign of life.
        observed = NOW - timedelta(minutes=1)
        message = iotagent_measures("no2-0", observed, random.Random(9))
        ingest(conn, backend, tenant, [(message, NOW + timedelta(minutes=1))])
        back = fetch()
        assert back["deviceState"] == {"type": "Property", "value": "ok"}
        assert back["dateLastValueReported"]["value"] == {
            "@type": "DateTime",
            "@value": "2031-05-06T12:04:00.000000Z",
        }
        health = device_health(
            conn, tenant=tenant, now=NOW + timedelta(minutes=2), silent_after=HOUR, limit=10
        )
        assert [(h.device_id, h.state) for h in health] == [("no2-0", DeviceState.OK)]
