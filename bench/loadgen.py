"""A load generator that costs the benchmark almost no CPU: pre-encoded MQTT 3.1.1 packets.

A paho publisher spends about as much CPU per message as a paho subscriber; on a 2-core
machine, publishing 5,000 messages/s with it would take the core the pipeline under test
needs. This generator encodes every QoS 1 PUBLISH packet before the clock starts, writes
them to the socket in 10 ms ticks, and only counts the PUBACKs that come back. It is a
benchmark tool, not a client: the service itself uses paho-mqtt.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence

import numpy as np

TICK = 0.01


def _remaining_length(length: int) -> bytes:
    """MQTT variable-length integer (MQTT 3.1.1 §2.2.3)."""
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, keepalive 60 s."""
    body = _string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(client_id)
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 (fixed header 0x32) with `packet_id`."""
    body = _string(topic) + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _remaining_length(len(body)) + body


class LoadGenerator:
    """Publishes pre-encoded messages at a fixed rate, or as fast as the socket takes them."""

    def __init__(self, port: int, messages: Sequence[tuple[str, bytes]], client_id: str) -> None:
        self.packets = [
            publish_packet(topic, payload, i % 65_535 + 1)
            for i, (topic, payload) in enumerate(messages)
        ]
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._socket.sendall(connect_packet(client_id))
        connack = self._socket.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")
        self.acknowledged = 0
        self._reader = threading.Thread(target=self._count_acks, daemon=True)
        self._reader.start()

    def _count_acks(self) -> None:
        pending = b""
        while True:
            data = self._socket.recv(65_536)
            if not data:
                return
            pending += data
            whole = len(pending) - len(pending) % 4  # PUBACK is 4 bytes: 0x40 0x02 id id
            self.acknowledged += whole // 4
            pending = pending[whole:]

    def run(self, rate: float | None = None) -> np.ndarray:
        """Send everything (at `rate` messages/s if given); the monotonic send time of each."""
        sent = np.empty(len(self.packets))
        per_tick = 1_000 if rate is None else max(1, round(rate * TICK))
        began = time.monotonic()
        for start in range(0, len(self.packets), per_tick):
            if rate is not None:
                delay = began + start / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            chunk = self.packets[start : start + per_tick]
            sent[start : start + len(chunk)] = time.monotonic()
            self._socket.sendall(b"".join(chunk))
        return sent

    def wait_acknowledged(self, timeout: float = 600.0) -> None:
        """Block until the broker acknowledged every message; then disconnect."""
        deadline = time.monotonic() + timeout
        while self.acknowledged < len(self.packets):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.acknowledged}/{len(self.packets)} acknowledged")
            time.sleep(0.05)
        self._socket.sendall(b"\xe0\x00")  # DISCONNECT
        self._socket.close()
