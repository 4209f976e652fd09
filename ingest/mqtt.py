"""The MQTT side of ingest: a paho-mqtt 2.x consumer with a persistent session and manual acks.

- MQTT 5 with `clean_start=False` and a Session Expiry Interval, so the broker keeps the
  subscription and queues messages while the worker is away (paho's default clean_start
  "first connect only" would wipe that backlog at every process start).
- `manual_ack=True`: a message is acknowledged only after the batch holding it commits.
- Receive Maximum bounds the unacknowledged messages the broker sends us (back-pressure).
- MQTT 3.1.1 with clean_session=False when the broker refuses MQTT 5.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from stadspuls.settings import MqttEndpoint

from .message import RawMessage

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL = 132  # MQTT 5 CONNACK reason "Unsupported Protocol Version"


def subscription_filters(topics: Iterable[str], shared_group: str | None) -> list[str]:
    """Topic filters as subscribed: `$share/<group>/<filter>` when a group is set."""
    if not shared_group:
        return list(topics)
    return [f"$share/{shared_group}/{topic.lstrip('$')}" for topic in topics]


class MqttConsumer:
    """Receives QoS 1 messages into `deliver` and acknowledges them when told to."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        client_id: str,
        topics: Sequence[str],
        deliver: Callable[[RawMessage], None],
        *,
        protocol: str = "5",
        session_expiry: int = 86_400,
        receive_maximum: int = 2_000,
        keepalive: int = 60,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.topics = list(topics)
        self.protocol = protocol
        self._deliver = deliver
        self._session_expiry = session_expiry
        self._receive_maximum = receive_maximum
        self._keepalive = keepalive
        self.connected = threading.Event()
        self.accepting = True
        #: Messages handed to `deliver` since start (for tests and benchmarks).
        self.delivered = 0
        #: Incremented at every successful connection.
        self.generation = 0
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self.endpoint.username:
            client.username_pw_set(self.endpoint.username, self.endpoint.password)
        if self.endpoint.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect (retrying in the background) and start paho's network thread."""
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry
            properties.ReceiveMaximum = min(self._receive_maximum, 65_535)
            self.client.connect_async(
                self.endpoint.host,
                self.endpoint.port,
                keepalive=self._keepalive,
                clean_start=False,
                properties=properties,
            )
        else:
            self.client.connect_async(
                self.endpoint.host, self.endpoint.port, keepalive=self._keepalive
            )
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the first CONNACK was a success, or the timeout passes."""
        return self.connected.wait(timeout)

    def ack(self, messages: Iterable[tuple[int, int, int]]) -> None:
        """PUBACK committed messages (mid, qos, generation), in the order they were received.

        A message that arrived on an earlier connection is not acknowledged: its packet id
        may already name another message on this one (a new session numbers from 1). The
        broker redelivers it and storage keeps it once.
        """
        client, generation = self.client, self.generation
        for mid, qos, received_on in messages:
            if qos and received_on == generation:
                client.ack(mid, qos)

    def stop_accepting(self) -> None:
        """From now on, leave arriving messages unacknowledged: the broker keeps them."""
        self.accepting = False

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (queued acks go out first) and stop the network thread."""
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = self._session_expiry
        self.client.disconnect(properties=properties)
        deadline = time.monotonic() + timeout
        while self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            if reason_code.value == UNSUPPORTED_PROTOCOL and self.protocol == "5":
                # Broker without MQTT 5: fall back to 3.1.1 with a persistent session.
                self.protocol = "3.1.1"
                threading.Thread(target=self._restart_as_v311, daemon=True).start()
            return
        self.generation += 1
        options = SubscribeOptions(qos=1)
        subscriptions = [(topic, options if self.protocol == "5" else 1) for topic in self.topics]
        client.subscribe(subscriptions)
        log.info(
            "MQTT connected as %s (MQTT %s, session present: %s), subscribed to %s",
            self.client_id,
            self.protocol,
            flags.session_present,
            ", ".join(self.topics),
        )
        self.connected.set()

    def _restart_as_v311(self) -> None:
        log.warning("broker refused MQTT 5; falling back to MQTT 3.1.1 (clean_session=False)")
        self.client.loop_stop()
        self.client = self._make_client()
        self.start()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("MQTT connection lost (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if not self.accepting:
            return
        self.delivered += 1
        self._deliver(
            RawMessage(
                message.topic,
                bytes(message.payload),
                message.mid,
                message.qos,
                datetime.now(UTC),
                time.monotonic(),
                self.generation,
            )
        )
