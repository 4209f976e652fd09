"""The paho message converted at the edge into a small frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message as received: what is needed to decode it and to acknowledge it."""

    topic: str
    payload: bytes
    #: MQTT packet id, for the manual PUBACK once the batch holding it is committed.
    mid: int
    qos: int
    received_at: datetime
    #: time.monotonic() at arrival, for publish-to-commit latency.
    arrived: float
    #: Which connection delivered it: a packet id means nothing on a later connection.
    generation: int = 0
