"""From an MQTT message to an alert notification: the real ingest worker evaluates a rule in
its batch transaction, and the real notifier delivers the alert to an MQTT topic and, through
an NGSI-LD subscription, to an HTTP receiver. Real Mosquitto, PostgreSQL and receiver."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from alerts.notifier import Notifier, NotifierOptions
from stadspuls.api import create_app
from stadspuls.simulator import IOTA_APIKEY
from storage.database import connect
from tests.support.api import api_settings
from tests.support.ingest import count, ingest_settings, running_worker, wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

STORED_NO2 = "SELECT count(*) FROM observations WHERE attribute LIKE '%%/no2'"
NO2_RULE: dict[str, Any] = {
    "id": "no2-hourly-limit",
    "name": "NO2 above the EU hourly limit",
    "kind": "threshold",
    "scope": {"device_model": "iota-no2"},
    "attribute": "no2",
    "operator": "above",
    "level": 200,
    "clear_level": 180,
    "severity": "high",
    "category": "environment",
    "sub_category": "airPollution",
}


def measure(client: mqtt.Client, device: str, no2: float, minute: int) -> None:
    body = {"n": no2, "t": 12.5, "TimeInstant": f"2026-11-29T08:{minute:02d}:00Z"}
    client.publish(
        f"/json/{IOTA_APIKEY}/{device}/attrs", orjson.dumps(body), qos=1
    ).wait_for_publish(5)


@pytest.fixture
def api(ingest_database: str) -> Iterator[TestClient]:
    """The API on the ingest database, default tenant (where the simulator's devices are)."""
    with TestClient(create_app(api_settings(ingest_database))) as client:
        yield client


@pytest.fixture
def notifier(ingest_database: str) -> Iterator[None]:
    service = Notifier(ingest_database, NotifierOptions(poll_seconds=0.05, max_backoff_seconds=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    assert service.active.wait(10)
    yield
    stop.set()
    thread.join(15)


def test_a_published_measure_raises_an_alert_that_reaches_mqtt_and_a_subscription(
    api: TestClient, ingest_database: str, mqtt_url: str, notifier: None
) -> None:
    receiver = Receiver().start()
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    topic = f"alerts/{uuid.uuid4().hex[:8]}"
    subscription = {
        "id": "urn:ngsi-ld:Subscription:alerts-to-planners",
        "type": "Subscription",
        "entities": [{"type": "https://example.org/NeverWritten"}],
        "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
    }
    assert api.post("/ngsi-ld/v1/subscriptions", json=subscription).status_code == 201
    rule = {
        **NO2_RULE,
        "notify": [
            {"mqtt": f"mqtt://{host}:{port}/{topic}"},
            {"subscription": "urn:ngsi-ld:Subscription:alerts-to-planners"},
        ],
    }
    assert api.post("/alerts/v1/rules", json=rule).status_code == 201

    received: list[Any] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = lambda c, u, message: received.append(orjson.loads(message.payload))
    listener.connect(host, int(port))
    listener.subscribe(topic, qos=1)
    listener.loop_start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect(host, int(port))
    publisher.loop_start()
    settings = ingest_settings(ingest_database, mqtt_url, alert_reload_seconds=0.1)
    try:
        with running_worker(settings), connect(ingest_database) as conn:
            for minute, no2 in enumerate([120.0, 230.0, 260.0, 150.0]):
                measure(publisher, "no2-e2e", no2, minute)
                # One batch per measure, so the rule sees them as a stream.
                wait_until(
                    lambda m=minute: count(conn, STORED_NO2) > m, 30, "the measure to be stored"
                )
            wait_until(
                lambda: count(conn, "SELECT count(*) FROM alert_events") >= 3, 30, "alert events"
            )
        deadline = time.monotonic() + 20
        while (len(received) < 3 or len(receiver.bodies()) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.loop_stop()
        publisher.loop_stop()
        receiver.stop()
    changes = [message["body"]["alertChange"] for message in received]
    assert changes == ["raised", "updated", "resolved"]
    alert = received[0]["body"]["data"][0]
    assert alert["alertSource"]["object"] == "urn:ngsi-ld:AirQualityObserved:no2-e2e"
    assert alert["triggerValue"]["value"] == 230.0
    bodies = receiver.bodies()
    assert [body["alertChange"] for body in bodies] == ["raised", "updated", "resolved"]
    assert {body["subscriptionId"] for body in bodies} == {subscription["id"]}
