"""Publishing at QoS 1 and waiting for the broker's PUBACK: what the notifier sends over MQTT,
notifications to `mqtt://` endpoints (alerts/endpoints.py) and the feed topics
(feeds/push.py). A publish either returns (the broker took it) or raises PublishFailed with a
reason the caller reports.
"""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class PublishFailed(Exception):
    """The broker did not take the message (or could not be reached); the text says why."""


def new_client(
    client_id_prefix: str, username: str | None, password: str | None, tls: bool
) -> mqtt.Client:
    """An MQTT 5 client with a client id of its own (`<prefix>-<random>`), not connected."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{client_id_prefix}-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    if username is not None:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    return client


def connect(client: mqtt.Client, host: str, port: int, timeout: float) -> None:
    """Connect, start paho's network thread, and wait for the broker's CONNACK."""
    try:
        client.connect(host, port, keepalive=30)
    except OSError as error:
        raise PublishFailed(f"MQTT broker {host}:{port}: {error}") from error
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise PublishFailed(f"MQTT broker {host}:{port} did not accept us")
        time.sleep(0.01)


def publish_and_wait(
    client: mqtt.Client,
    topic: str,
    payload: bytes,
    timeout: float,
    *,
    retain: bool = False,
    properties: Properties | None = None,
) -> None:
    """Publish at QoS 1 and return once the broker acknowledged it without refusing."""
    info = client.publish(topic, payload, qos=1, retain=retain, properties=properties)
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError) as error:
        raise PublishFailed(f"MQTT publish to {topic} failed: {error}") from error
    if not info.is_published():
        raise PublishFailed(f"no PUBACK for {topic} within {timeout} s")
    reason = getattr(info, "reason_code", None)
    if isinstance(reason, ReasonCode) and reason.is_failure:
        raise PublishFailed(f"the broker refused the publish to {topic}: {reason}")
