"""One batch of raw messages → one storage batch: route, resolve device, decode, map.

Pure apart from the registry it is handed: no database, no broker, no clock (times come
from the messages). Nothing is dropped: each message becomes readings or a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.model import Decoded, DecodeError, DeviceConfig, Profile, Reading
from devices.profiles.registry import profile_for_topic
from devices.registry import DeviceRegistry
from ngsi.mapping import BatchMapper
from ngsi.vocabulary import IngestVocabulary
from storage.records import Batch, DeadLetter

from .message import RawMessage

#: Readings stamped further ahead than this are refused: a device clock gone wrong would
#: otherwise create far-future history (and, on plain PostgreSQL, partitions).
MAX_CLOCK_AHEAD = timedelta(days=1)
EARLIEST_OBSERVATION = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
ROUTE_CACHE_SIZE = 100_000
#: Attribute names and entity keys become part of the observations primary key, whose
#: index rows cannot exceed about 8 kB; an unmapped measure key may be anything.
MAX_NAME_LENGTH = 256


@dataclass(slots=True)
class BuiltBatch:
    """A storage batch plus what the worker needs to report and acknowledge it."""

    batch: Batch
    messages: Sequence[RawMessage]
    readings: int


class BatchBuilder:
    """Turns raw messages into a storage Batch using the current device registry."""

    def __init__(
        self,
        registry: Callable[[], DeviceRegistry],
        max_payload_bytes: int,
        reload: Callable[[], DeviceRegistry | None] | None = None,
    ) -> None:
        self._registry = registry
        self._max_payload = max_payload_bytes
        # Asked for a fresh registry when a device is unknown (it may have been registered a
        # moment ago); answers None when it may not reload yet.
        self._reload = reload
        self._current: DeviceRegistry | None = None
        # Each device publishes on its own few topics: route each topic once.
        self._routes: dict[str, tuple[Profile, str] | None] = {}
        self._vocabulary = IngestVocabulary()

    def _route(self, topic: str) -> tuple[Profile, str] | None:
        try:
            return self._routes[topic]
        except KeyError:
            if len(self._routes) >= ROUTE_CACHE_SIZE:
                self._routes.clear()
            routed = self._routes[topic] = profile_for_topic(topic)
            return routed

    def build(self, messages: Sequence[RawMessage]) -> BuiltBatch:
        """Decode and map every message; failures become dead letters with their reason."""
        self._current = self._registry()
        mapper = BatchMapper(self._vocabulary)
        dead: list[DeadLetter] = []
        readings = 0
        for message in messages:
            try:
                device, decoded = self._decode(message)
            except DecodeError as error:
                dead.append(dead_letter(message, error.reason, error.detail, error.device))
                continue
            readings += mapper.add(device, decoded, message.received_at)
        batch = Batch(mapper.observations, mapper.fragments(), dead, mapper.activity())
        return BuiltBatch(batch, messages, readings)

    def _resolve(self, profile: Profile, key: str) -> DeviceConfig | None:
        assert self._current is not None
        device = self._current.resolve(profile.name, key)
        if device is None and self._reload is not None:
            fresh = self._reload()
            if fresh is not None:
                self._current = fresh
                device = fresh.resolve(profile.name, key)
        return device

    def _decode(self, message: RawMessage) -> tuple[DeviceConfig, Decoded]:
        if len(message.payload) > self._max_payload:
            raise DecodeError(
                "oversize", f"{len(message.payload)} bytes, limit {self._max_payload}"
            )
        routed = self._route(message.topic)
        if routed is None:
            raise DecodeError("unknown_topic", f"no device profile listens on {message.topic!r}")
        profile, key = routed
        device = self._resolve(profile, key)
        if device is None:
            raise DecodeError("unknown_device", f"no {profile.name} device with key {key!r}")
        try:
            decoded = profile.decode(message.topic, message.payload, device, message.received_at)
            _check_readings(decoded.readings, message.received_at)
        except DecodeError as error:
            error.device = device
            raise
        except Exception as error:  # a decoder bug must not lose the message: dead-letter it
            failure = DecodeError("decoder_error", f"{type(error).__name__}: {error}")
            failure.device = device
            raise failure from error
        return device, decoded


def _check_readings(readings: Sequence[Reading], received_at: datetime) -> None:
    """Refuse times before 2000 or more than a day ahead, and names too long to index."""
    latest = received_at + MAX_CLOCK_AHEAD
    for reading in readings:
        if len(reading.attribute) > MAX_NAME_LENGTH or len(reading.entity_key) > MAX_NAME_LENGTH:
            raise DecodeError(
                "invalid_payload",
                f"attribute or entity name longer than {MAX_NAME_LENGTH} characters: "
                f"{reading.attribute[:40]!r}",
            )
        if not EARLIEST_OBSERVATION <= reading.observed_at <= latest:
            raise DecodeError(
                "observed_at_out_of_range",
                f"{reading.attribute} observed at {reading.observed_at.isoformat()}, "
                f"received at {received_at.isoformat()}",
            )


def dead_letter(
    message: RawMessage, reason: str, detail: str, device: DeviceConfig | None
) -> DeadLetter:
    return DeadLetter(
        topic=message.topic,
        payload=message.payload,
        reason=reason,
        detail=detail.replace("\x00", "\\x00"),  # PostgreSQL text cannot hold NUL
        received_at=message.received_at,
        tenant=device.tenant if device else "",
        device_id=device.device_id if device else None,
    )
