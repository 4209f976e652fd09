"""stadspuls/mqtt_publish.py and the senders built on it, against a real Mosquitto: a publish
returns only once the broker took it, and every way of not taking it is a clear failure."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerts.endpoints import DeliveryFailed, MqttSender
from feeds.push import FeedPushFailed, _broker
from stadspuls.embedded import free_port
from stadspuls.mqtt_publish import PublishFailed, connect, new_client, publish_and_wait
from stadspuls.settings import parse_mqtt_url

pytestmark = pytest.mark.integration


def _subscribed(url: str, topic: str) -> tuple[mqtt.Client, queue.Queue[bytes]]:
    endpoint = parse_mqtt_url(url)
    received: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, message: received.put(message.payload)
    client.connect(endpoint.host, endpoint.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, received


def test_a_publish_returns_once_the_broker_took_it(mqtt_url):
    endpoint = parse_mqtt_url(mqtt_url)
    listener, received = _subscribed(mqtt_url, "t/#")
    client = new_client("test", None, None, tls=False)
    try:
        connect(client, endpoint.host, endpoint.port, timeout=5)
        publish_and_wait(client, "t/one", b"hello", timeout=5)
        assert received.get(timeout=5) == b"hello"
        # Over the broker's message_size_limit (deploy/mosquitto.conf): refused, not lost.
        with pytest.raises(PublishFailed, match="t/big"):
            publish_and_wait(client, "t/big", b"x" * (2 << 20), timeout=2)
    finally:
        client.disconnect()
        client.loop_stop()
        listener.loop_stop()


def test_an_unreachable_broker_is_a_failure_of_each_sender():
    port = free_port()  # nothing listens there
    with pytest.raises(PublishFailed, match=f"127.0.0.1:{port}"):
        connect(new_client("test", None, None, tls=False), "127.0.0.1", port, timeout=1)
    sender = MqttSender(timeout=1)
    with pytest.raises(DeliveryFailed, match=f"127.0.0.1:{port}"):
        sender.send(f"mqtt://127.0.0.1:{port}/alerts", {}, b"{}")
    sender.close()
    with (
        pytest.raises(FeedPushFailed, match=f"127.0.0.1:{port}"),
        _broker(f"mqtt://127.0.0.1:{port}", timeout=1),
    ):
        pass
