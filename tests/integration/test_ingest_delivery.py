"""At-least-once ingest against the real Mosquitto and PostgreSQL: exactly-once storage."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from ngsi.vocabulary import IngestVocabulary
from stadspuls.embedded import Mosquitto
from stadspuls.publisher import publish_all
from stadspuls.simulator import message_stream
from storage.database import connect
from tests.support.fixtures import MAINTENANCE_URL
from tests.support.ingest import (
    WorkerProcess,
    count,
    expected_observations,
    ingest_settings,
    running_worker,
    stored_observations,
    wait_for_rows,
    wait_until,
)

pytestmark = pytest.mark.integration

PROFILES = ("ttn-v3", "sensor-community", "telraam", "iotagent-json", "traffic-loop")


def stream(count: int, **kwargs):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    return list(message_stream(count, start, **kwargs))


def pairs(messages):
    return [(m.topic, m.payload) for m in messages]


def assert_stored_exactly(database_url: str, expected: set) -> None:
    with connect(database_url) as conn:
        stored = stored_observations(conn)
    assert len(stored) == len(set(stored)), "an observation was stored twice"
    assert set(stored) == expected


@pytest.mark.parametrize("profile", PROFILES)
def test_messages_of_each_profile_are_stored_exactly_once_even_when_published_twice(
    profile, ingest_database, mqtt_url
):
    messages = stream(60, profiles=(profile,), devices_per_profile=3)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url)
    with running_worker(settings) as worker:
        publish_all(mqtt_url, pairs(messages))
        wait_for_rows(ingest_database, len(expected))
        publish_all(mqtt_url, pairs(messages))  # a redelivery, as after a crash
        wait_until(lambda: worker.stats.messages >= 120, 30, "the second copy to be committed")
    assert worker.stats.dead_letters == 0
    assert_stored_exactly(ingest_database, expected)
    with connect(ingest_database) as conn:
        devices = count(
            conn,
            "SELECT count(*) FROM entities WHERE type = %s",
            (IngestVocabulary().entity_type("Device"),),
        )
        activity = count(conn, "SELECT sum(messages) FROM device_activity")
    assert devices == 3
    assert activity == 120


def test_a_mixed_stream_updates_latest_state_of_every_entity(ingest_database, mqtt_url):
    messages = stream(200, devices_per_profile=4)
    expected = expected_observations(messages)
    with running_worker(ingest_settings(ingest_database, mqtt_url)):
        publish_all(mqtt_url, pairs(messages))
        wait_for_rows(ingest_database, len(expected))
    assert_stored_exactly(ingest_database, expected)
    with connect(ingest_database) as conn:
        entity_ids = {e for e, _a, _d, _t in expected}
        stored_ids = {row[0] for row in conn.execute("SELECT id FROM entities")}
        assert entity_ids <= stored_ids
        # Latest state holds the newest observation of each attribute.
        newest = conn.execute(
            """SELECT o.entity_id, o.attribute, o.value_num FROM observations o
               WHERE o.dataset_id = '' AND o.value_num IS NOT NULL
                 AND o.observed_at = (SELECT max(observed_at) FROM observations i
                    WHERE i.entity_id = o.entity_id AND i.attribute = o.attribute
                      AND i.dataset_id = '')"""
        ).fetchall()
        latest = {
            (i, a): v
            for i, a, v in conn.execute(
                """SELECT id, key, (instance->>'value')::float8
                   FROM entities, jsonb_each(entity) AS attribute(key, value),
                   jsonb_array_elements(CASE WHEN jsonb_typeof(value) = 'array' THEN value
                                        ELSE jsonb_build_array(value) END) AS instance
                   WHERE NOT instance ? 'datasetId' AND instance ? 'observedAt'
                     AND jsonb_typeof(instance->'value') = 'number'"""
            ).fetchall()
        }
    assert newest
    for entity, attribute, value in newest:
        assert latest[(entity, attribute)] == pytest.approx(value)


def test_worker_killed_with_sigkill_mid_stream_loses_and_duplicates_nothing(
    ingest_database, mqtt_url, tmp_path
):
    messages = stream(3000, devices_per_profile=20)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=100)
    publisher = threading.Thread(target=publish_all, args=(mqtt_url, pairs(messages)))
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        publisher.start()
        with connect(ingest_database) as conn:
            wait_until(
                lambda: count(conn, "SELECT count(*) FROM observations") > len(expected) // 10,
                60,
                "part of the stream to be stored",
            )
        writers = psutil.Process(worker.process.pid).children()
        assert writers, "the worker runs a writer process"
        worker.signal(signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
        # The orphaned writer process finishes the batch in hand and exits by itself.
        wait_until(
            lambda: not any(w.is_running() and w.status() != "zombie" for w in writers),
            30,
            "the orphaned writer process to exit",
        )
        publisher.join(120)
        with connect(ingest_database) as conn:
            assert count(conn, "SELECT count(*) FROM observations") < len(expected)
        worker.start()  # same client id: the broker kept the session and the backlog
        wait_for_rows(ingest_database, len(expected), timeout=120)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    assert_stored_exactly(ingest_database, expected)


def test_sigterm_drains_commits_and_acks_before_exit(ingest_database, mqtt_url, tmp_path):
    messages = stream(1500, devices_per_profile=10)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=100)
    log = tmp_path / "worker.log"
    with WorkerProcess(settings, log) as worker:
        publish_all(mqtt_url, pairs(messages))
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        assert "stopping: draining" in log.read_text()
        worker.start()
        wait_for_rows(ingest_database, len(expected), timeout=120)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    assert_stored_exactly(ingest_database, expected)


def test_database_connection_terminated_mid_stream_is_survived(ingest_database, mqtt_url):
    messages = stream(3000, devices_per_profile=20)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=100)
    database = ingest_database.rsplit("/", 1)[1]
    with running_worker(settings) as worker, connect(ingest_database) as admin:
        admin.autocommit = True
        publisher = threading.Thread(target=publish_all, args=(mqtt_url, pairs(messages)))
        publisher.start()
        terminated = 0
        for _ in range(3):
            target = worker.stats.batches + 3
            wait_until(lambda t=target: worker.stats.batches >= t, 60, "batches to commit")
            terminated += admin.execute(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE datname = %s AND pid <> pg_backend_pid()""",
                (database,),
            ).fetchone()[0]
        publisher.join(120)
        wait_for_rows(ingest_database, len(expected), timeout=120)
    assert terminated >= 3
    assert worker.stats.storage_retries >= 1
    assert_stored_exactly(ingest_database, expected)


def test_two_workers_on_a_shared_subscription_store_every_message_once(ingest_database, mqtt_url):
    messages = stream(2000, devices_per_profile=20)
    expected = expected_observations(messages)
    first = ingest_settings(ingest_database, mqtt_url, mqtt_shared_group="stadspuls")
    second = ingest_settings(ingest_database, mqtt_url, mqtt_shared_group="stadspuls")
    with running_worker(first) as one, running_worker(second) as two:
        publish_all(mqtt_url, pairs(messages))
        wait_for_rows(ingest_database, len(expected), timeout=120)
        wait_until(lambda: one.stats.messages + two.stats.messages >= 2000, 30, "all acks")
    assert one.stats.messages > 0 and two.stats.messages > 0
    assert one.stats.messages + two.stats.messages == 2000
    assert_stored_exactly(ingest_database, expected)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_published_while_the_worker_is_stopped_arrive_after_restart(
    protocol, ingest_database, mqtt_url
):
    first, second = (
        stream(300, devices_per_profile=5)[:150],
        stream(300, devices_per_profile=5)[150:],
    )
    settings = ingest_settings(ingest_database, mqtt_url, mqtt_protocol=protocol)
    with running_worker(settings):
        publish_all(mqtt_url, pairs(first))
        wait_for_rows(ingest_database, len(expected_observations(first)))
    publish_all(mqtt_url, pairs(second))  # the broker queues these in the worker's session
    with running_worker(settings) as worker:
        wait_for_rows(ingest_database, len(expected_observations(first + second)))
    assert worker.consumer.protocol == protocol
    assert_stored_exactly(ingest_database, expected_observations(first + second))


def test_while_the_database_refuses_connections_nothing_is_acked_and_nothing_is_lost(
    ingest_database, mqtt_url
):
    messages = stream(2000, devices_per_profile=20)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=100, mqtt_receive_maximum=300)
    database = ingest_database.rsplit("/", 1)[1]
    with running_worker(settings) as worker, connect(MAINTENANCE_URL) as admin:
        publish_all(mqtt_url, pairs(messages[:50]))  # the writer is up and connected
        wait_until(lambda: worker.stats.messages >= 50, 30, "the first messages")
        admin.autocommit = True
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        committed_before = worker.stats.messages
        publisher = threading.Thread(target=publish_all, args=(mqtt_url, pairs(messages[50:])))
        publisher.start()
        publisher.join(60)
        time.sleep(2)  # the worker keeps failing to reconnect meanwhile
        # Nothing committed, so nothing acknowledged: the broker holds the rest back once
        # Receive Maximum messages are in the worker's hands (bounded memory).
        assert worker.stats.messages == committed_before
        assert worker.consumer.delivered - committed_before <= 300
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        wait_for_rows(ingest_database, len(expected), timeout=120)
    assert worker.stats.storage_retries >= 1
    assert_stored_exactly(ingest_database, expected)


def test_a_broker_restart_mid_stream_is_survived_with_nothing_lost(ingest_database, tmp_path):
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        messages = stream(1200, devices_per_profile=10)
        expected = expected_observations(messages)
        settings = ingest_settings(ingest_database, broker.url, batch_size=100)
        with running_worker(settings) as worker:
            publish_all(broker.url, pairs(messages[:600]))
            wait_until(lambda: worker.stats.messages >= 100, 30, "part of the stream")
            broker.stop()  # clean shutdown: Mosquitto saves the worker's session and queue
            wait_until(lambda: not worker.consumer.connected.is_set(), 30, "the disconnect")
            broker.start()
            wait_until(worker.consumer.connected.is_set, 60, "paho to reconnect")
            publish_all(broker.url, pairs(messages[600:]))
            wait_for_rows(ingest_database, len(expected), timeout=120)
        assert_stored_exactly(ingest_database, expected)
    finally:
        broker.stop()


def test_a_writer_process_killed_mid_stream_is_restarted_and_nothing_is_lost(
    ingest_database, mqtt_url
):
    messages = stream(2000, devices_per_profile=20)
    expected = expected_observations(messages)
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=100)
    with running_worker(settings) as worker:
        publisher = threading.Thread(target=publish_all, args=(mqtt_url, pairs(messages)))
        publisher.start()
        wait_until(lambda: worker.stats.batches >= 3, 60, "the first batches")
        os.kill(worker._process.pid, signal.SIGKILL)
        publisher.join(120)
        wait_for_rows(ingest_database, len(expected), timeout=120)
    assert worker.stats.writer_restarts == 1
    assert not worker.failed.is_set()
    assert_stored_exactly(ingest_database, expected)
