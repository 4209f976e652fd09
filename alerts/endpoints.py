"""Sending one notification to its endpoint: HTTP(S) POST or an MQTT publish at QoS 1.

A send either returns (the receiver took it: a 2xx answer, or the broker's PUBACK) or
raises DeliveryFailed with a reason; the caller keeps the notification until it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from stadspuls.mqtt_publish import PublishFailed, connect, new_client, publish_and_wait


class DeliveryFailed(Exception):
    """The receiver did not take the notification; `reason` says why, for status and logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HttpSender:
    """POSTs notifications with one pooled httpx client (keep-alive to each receiver)."""

    def __init__(self, timeout: float) -> None:
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, endpoint: str, headers: Mapping[str, Any], payload: bytes) -> None:
        """POST `payload`; anything but a 2xx answer is a failure."""
        try:
            response = self._client.post(
                endpoint, content=payload, headers={k: str(v) for k, v in headers.items()}
            )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from {endpoint}")

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


class _BrokerConnection:
    """One MQTT connection to one broker, publishing at QoS 1 and waiting for PUBACK."""

    def __init__(
        self, host: str, port: int, username: str | None, password: str | None, tls: bool
    ) -> None:
        self.client = new_client("stadspuls-notify", username, password, tls)
        self.host, self.port = host, port
        self.lock = threading.Lock()
        self.started = False

    def ensure_connected(self, timeout: float) -> None:
        if self.client.is_connected():
            return
        if self.started:  # lost: start over rather than race paho's own reconnect
            self.client.loop_stop()
        self.started = True
        connect(self.client, self.host, self.port, timeout)

    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        publish_and_wait(self.client, topic, payload, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def parse_mqtt_endpoint(endpoint: str) -> tuple[str, int, str, str | None, str | None]:
    """`mqtt[s]://[user:pass@]host[:port]/topic` → (host, port, topic, user, password)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"not an MQTT endpoint: {endpoint!r}")
    topic = unquote(parts.path.lstrip("/"))
    if not topic:
        raise ValueError(f"the MQTT endpoint names no topic: {endpoint!r}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    return parts.hostname, port, topic, user, password


class MqttSender:
    """Publishes notifications at QoS 1, one connection per broker and user, kept open."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._connections: dict[tuple[str, int, str | None], _BrokerConnection] = {}
        self._lock = threading.Lock()

    def send(self, endpoint: str, headers: Mapping[str, Any], payload: bytes) -> None:
        """Publish {"metadata": headers, "body": payload} on the endpoint's topic."""
        try:
            host, port, topic, user, password = parse_mqtt_endpoint(endpoint)
        except ValueError as error:
            raise DeliveryFailed(str(error)) from error
        with self._lock:
            connection = self._connections.get((host, port, user))
            if connection is None:
                tls = endpoint.startswith("mqtts:")
                connection = _BrokerConnection(host, port, user, password, tls)
                self._connections[(host, port, user)] = connection
        message = b'{"metadata":' + orjson.dumps(dict(headers)) + b',"body":' + payload + b"}"
        with connection.lock:
            try:
                connection.ensure_connected(self._timeout)
                connection.publish(topic, message, self._timeout)
            except PublishFailed as failure:
                raise DeliveryFailed(str(failure)) from failure

    def close(self) -> None:
        """Disconnect from every broker."""
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()


class Senders:
    """Picks the sender by the endpoint's scheme."""

    def __init__(self, timeout: float) -> None:
        self.http = HttpSender(timeout)
        self.mqtt = MqttSender(timeout)

    def send(self, endpoint: str, headers: Mapping[str, Any], payload: bytes) -> None:
        """Deliver to `endpoint` (http, https, mqtt or mqtts) or raise DeliveryFailed."""
        scheme = endpoint.split(":", 1)[0].lower()
        if scheme in ("http", "https"):
            self.http.send(endpoint, headers, payload)
        elif scheme in ("mqtt", "mqtts"):
            self.mqtt.send(endpoint, headers, payload)
        else:
            raise DeliveryFailed(f"unsupported endpoint scheme {scheme!r}")

    def close(self) -> None:
        """Close every connection."""
        self.http.close()
        self.mqtt.close()
