"""Subscriptions deliver: real HTTP receivers and a real MQTT subscriber, the real database.

Changes come through the API and through ingest's BatchWriter; the notifier runs in a
thread (or, for the SIGKILL test, as `stadspuls notify` in a process of its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from alerts.notifier import Notifier, NotifierOptions
from storage.backend import detect_backend
from storage.database import connect
from storage.records import Batch, EntityFragment
from storage.writer import BatchWriter
from tests.support.fixtures import MAINTENANCE_URL
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

FAST = NotifierOptions(poll_seconds=0.05, lanes=4, timeout_seconds=2.0, max_backoff_seconds=0.5)


@pytest.fixture
def notifier(api_database: str) -> Iterator[Notifier]:
    """A notifier on the test database, in a thread, stopped after the test."""
    service = Notifier(api_database, FAST)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    assert service.active.wait(10), "the notifier did not take the notifier lock"
    yield service
    stop.set()
    thread.join(15)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1."""
    server = Receiver().start()
    yield server
    server.stop()


def subscribe(api: TestClient, endpoint: str, **members: Any) -> str:
    """Create a subscription to every `Counter` entity; its id."""
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        "type": "Subscription",
        "entities": [{"type": "Counter"}],
        "notification": {"endpoint": {"uri": endpoint, "accept": "application/json"}},
    }
    body.update(members)
    response = api.post("/ngsi-ld/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    return str(body["id"])


def counter(key: str, count: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Counter:{key}",
        "type": "Counter",
        "count": {"type": "Property", "value": count},
    }


def set_count(api: TestClient, key: str, count: int) -> None:
    response = api.patch(
        f"/ngsi-ld/v1/entities/urn:ngsi-ld:Counter:{key}/attrs",
        json={"count": {"type": "Property", "value": count}},
    )
    assert response.status_code == 204, response.text


def counts(bodies: list[Any]) -> list[int]:
    """The `count` values notified, in arrival order."""
    return [entity["count"]["value"] for body in bodies for entity in body["data"]]


def status(api: TestClient, subscription_id: str) -> dict[str, Any]:
    response = api.get(f"/ngsi-ld/v1/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["notification"])


def test_create_and_update_are_notified_in_order(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    subscription_id = subscribe(api, receiver.url)
    assert api.post("/ngsi-ld/v1/entities", json=counter("a", 1)).status_code == 201
    set_count(api, "a", 2)
    set_count(api, "a", 3)
    bodies = receiver.wait_for(lambda b: len(counts(b)) >= 3)
    assert counts(bodies) == [1, 2, 3]
    first = bodies[0]
    assert first["type"] == "Notification"
    assert first["subscriptionId"] == subscription_id
    assert first["id"].startswith("urn:ngsi-ld:Notification:")
    assert first["data"][0]["id"] == "urn:ngsi-ld:Counter:a"
    assert len({body["id"] for body in bodies}) == len(bodies)
    deadline = time.monotonic() + 5
    while status(api, subscription_id).get("timesSent", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = status(api, subscription_id)
    assert members["timesSent"] == 3
    assert members["status"] == "ok"
    assert "lastSuccess" in members


def test_other_types_and_tenants_are_not_notified(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    subscribe(api, receiver.url)
    other = {
        "id": "urn:ngsi-ld:Gauge:x",
        "type": "Gauge",
        "level": {"type": "Property", "value": 1},
    }
    assert api.post("/ngsi-ld/v1/entities", json=other).status_code == 201
    other_tenant = {"NGSILD-Tenant": f"other-{uuid.uuid4().hex[:8]}"}
    response = api.post("/ngsi-ld/v1/entities", json=counter("b", 7), headers=other_tenant)
    assert response.status_code == 201
    assert api.post("/ngsi-ld/v1/entities", json=counter("b", 8)).status_code == 201
    bodies = receiver.wait_for(lambda b: len(counts(b)) >= 1)
    time.sleep(0.3)  # anything wrongly notified would have arrived by now
    assert counts(receiver.bodies()) == [8]
    assert [entity["id"] for entity in bodies[0]["data"]] == ["urn:ngsi-ld:Counter:b"]


def test_ingest_batches_are_notified(
    api: TestClient, api_database: str, tenant: str, notifier: Notifier, receiver: Receiver
) -> None:
    subscribe(api, receiver.url, entities=[{"type": "https://example.org/Loop"}])
    observed = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    fragment = EntityFragment(
        tenant,
        "urn:ngsi-ld:Loop:1",
        "https://example.org/Loop",
        {
            "https://example.org/intensity": {
                "type": "Property",
                "value": 42,
                "observedAt": "2026-11-29T08:00:00Z",
            }
        },
        observed,
        observed,
    )
    with connect(api_database) as conn:
        BatchWriter(detect_backend(conn, "auto")).write(conn, Batch(entities=[fragment]))
    bodies = receiver.wait_for(lambda b: len(b) >= 1)
    assert len(bodies) == 1
    entity = bodies[0]["data"][0]
    assert entity["id"] == "urn:ngsi-ld:Loop:1"
    assert entity["https://example.org/intensity"]["value"] == 42


def test_receiver_down_for_a_while_still_gets_everything_in_order(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    subscription_id = subscribe(api, receiver.url)
    receiver.stop()
    assert api.post("/ngsi-ld/v1/entities", json=counter("c", 0)).status_code == 201
    for count in range(1, 10):
        set_count(api, "c", count)
    deadline = time.monotonic() + 10
    while status(api, subscription_id).get("timesFailed", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = status(api, subscription_id)
    assert members["timesFailed"] >= 2
    assert members["status"] == "failed"
    receiver.start()
    bodies = receiver.wait_for(lambda b: len(counts(b)) >= 10)
    assert counts(bodies) == list(range(10))


def test_an_error_status_is_retried(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    receiver.status = 503
    subscription_id = subscribe(api, receiver.url)
    assert api.post("/ngsi-ld/v1/entities", json=counter("d", 1)).status_code == 201
    deadline = time.monotonic() + 10
    while status(api, subscription_id).get("timesFailed", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    receiver.status = 200
    assert counts(receiver.wait_for(lambda b: len(b) >= 1)) == [1]


def test_a_dead_receiver_does_not_hold_up_another_subscription(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    dead = Receiver()  # never started: connection refused
    dead.delay = 0
    subscribe(api, dead.url)
    subscribe(api, receiver.url)
    assert api.post("/ngsi-ld/v1/entities", json=counter("e", 1)).status_code == 201
    set_count(api, "e", 2)
    assert counts(receiver.wait_for(lambda b: len(counts(b)) >= 2)) == [1, 2]


def test_throttling_leaves_the_minimal_period_between_notifications(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    subscribe(api, receiver.url, throttling=2)
    assert api.post("/ngsi-ld/v1/entities", json=counter("f", 1)).status_code == 201
    receiver.wait_for(lambda b: len(b) >= 1)
    set_count(api, "f", 2)  # within the throttling period: not notified
    time.sleep(0.5)
    assert counts(receiver.bodies()) == [1]
    time.sleep(1.7)
    set_count(api, "f", 3)
    assert counts(receiver.wait_for(lambda b: len(b) >= 2)) == [1, 3]
    arrivals = receiver.bodies()
    first = datetime.fromisoformat(arrivals[0]["notifiedAt"])
    second = datetime.fromisoformat(arrivals[1]["notifiedAt"])
    assert (second - first).total_seconds() >= 2


def test_time_interval_notifies_periodically_with_every_selected_entity(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    assert api.post("/ngsi-ld/v1/entities", json=counter("g", 1)).status_code == 201
    assert api.post("/ngsi-ld/v1/entities", json=counter("h", 2)).status_code == 201
    subscribe(api, receiver.url, timeInterval=1)
    bodies = receiver.wait_for(lambda b: len(b) >= 2, timeout=10)
    assert len(bodies) >= 2
    for body in bodies[:2]:
        assert sorted(counts([body])) == [1, 2]
    first = datetime.fromisoformat(bodies[0]["notifiedAt"])
    second = datetime.fromisoformat(bodies[1]["notifiedAt"])
    assert (second - first).total_seconds() >= 1


def test_mqtt_endpoint_receives_metadata_and_body(
    api: TestClient, notifier: Notifier, mqtt_url: str
) -> None:
    host_port = mqtt_url.removeprefix("mqtt://")
    topic = f"notify/{uuid.uuid4().hex[:8]}"
    received: list[Any] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, message: received.append(orjson.loads(message.payload))
    host, port = host_port.split(":")
    client.connect(host, int(port))
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(5)
        subscribe(api, f"mqtt://{host_port}/{topic}")
        assert api.post("/ngsi-ld/v1/entities", json=counter("m", 5)).status_code == 201
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert len(received) == 1
    assert received[0]["metadata"]["Content-Type"] == "application/json"
    assert counts([received[0]["body"]]) == [5]


def test_notifications_survive_sigkill_of_the_notifier(
    api: TestClient, api_database: str, receiver: Receiver
) -> None:
    receiver.delay = 0.02
    subscribe(api, receiver.url)
    assert api.post("/ngsi-ld/v1/entities", json=counter("k", 0)).status_code == 201
    for count in range(1, 150):
        set_count(api, "k", count)
    environment = {**os.environ, "STADSPULS_DATABASE_URL": api_database}
    command = [sys.executable, "-m", "stadspuls", "notify", "--no-migrate"]
    process = subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)
    try:
        receiver.wait_for(lambda b: len(b) >= 40)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        delivered_before = len(receiver.bodies())
        assert delivered_before < 150, "all delivered before the kill: nothing was tested"
        process = subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)
        bodies = receiver.wait_for(lambda b: set(counts(b)) >= set(range(150)), timeout=60)
    finally:
        process.kill()
        process.wait(10)
    values = counts(bodies)
    assert set(values) == set(range(150))
    # At least once: a notification in flight at the kill may come twice, never out of order.
    first_seen = [v for i, v in enumerate(values) if v not in values[:i]]
    assert first_seen == list(range(150))


def test_only_subscribed_types_are_captured(
    api: TestClient, api_database: str, tenant: str, receiver: Receiver
) -> None:
    # No notifier runs here, so the captured changes stay in entity_changes to be counted.
    subscribe(api, receiver.url)
    other = {
        "id": "urn:ngsi-ld:Gauge:y",
        "type": "Gauge",
        "level": {"type": "Property", "value": 1},
    }
    assert api.post("/ngsi-ld/v1/entities", json=other).status_code == 201
    assert api.post("/ngsi-ld/v1/entities", json=counter("z", 1)).status_code == 201
    with connect(api_database) as conn:
        captured = conn.execute(
            "SELECT entity_id FROM entity_changes WHERE tenant = %s ORDER BY position", [tenant]
        ).fetchall()
        conn.execute("DELETE FROM entity_changes WHERE tenant = %s", [tenant])
        conn.commit()
    assert captured == [("urn:ngsi-ld:Counter:z",)]


def test_a_long_transaction_elsewhere_does_not_hold_notifications_back(
    api: TestClient, notifier: Notifier, receiver: Receiver
) -> None:
    subscribe(api, receiver.url)
    # A transaction in another database that has written (it holds a transaction id) and
    # stays open, as a long COPY or a forgotten session would.
    with connect(MAINTENANCE_URL) as elsewhere:
        elsewhere.execute("CREATE TEMP TABLE held_open (n int)")
        assert api.post("/ngsi-ld/v1/entities", json=counter("long", 1)).status_code == 201
        assert counts(receiver.wait_for(lambda b: len(b) >= 1)) == [1]
        elsewhere.rollback()
