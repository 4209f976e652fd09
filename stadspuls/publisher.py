"""An MQTT publisher that waits for every PUBACK (mosquitto_pub -l at QoS 1 loses the tail).

Used by the simulator, the tests and the benchmarks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from stadspuls.settings import parse_mqtt_url

OUTSTANDING_LIMIT = 20_000


def connected_publisher(url: str, client_id: str = "") -> mqtt.Client:
    """A connected MQTT 5 client with its network loop running and a wide in-flight window."""
    endpoint = parse_mqtt_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    return client


def publish_all(
    url: str, messages: Iterable[tuple[str, bytes]], qos: int = 1, timeout: float = 120.0
) -> int:
    """Publish (topic, payload) pairs and return once the broker acknowledged every one."""
    client = connected_publisher(url)
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    published = 0
    try:
        for topic, payload in messages:
            # Packet ids are 16-bit: keep fewer unacknowledged messages than there are ids.
            if len(pending) >= OUTSTANDING_LIMIT:
                _confirm(pending.popleft(), timeout)
            pending.append(client.publish(topic, payload, qos=qos))
            published += 1
        while pending:
            _confirm(pending.popleft(), timeout)
        return published
    finally:
        client.loop_stop()
        client.disconnect()


def _confirm(info: mqtt.MQTTMessageInfo, timeout: float) -> None:
    info.wait_for_publish(timeout)
    if not info.is_published():
        raise TimeoutError(f"message {info.mid} not acknowledged within {timeout} s")
