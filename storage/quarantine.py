"""The quarantine: messages of devices nobody registered, kept whole until they are adopted.

The ingest pipeline already keeps every message of an unknown device as a dead letter with
reason `unknown_device`, its topic and its raw payload (ingest/pipeline.py); the quarantine is
that set of dead letters seen per device, not a second copy: no table, no migration, and no
change on the hot path. The device behind a topic is found the way the pipeline found it,
by routing the topic through the profiles (devices.profiles.registry.profile_for_topic).

Adopting a device registers it and replays its quarantined messages through the real
pipeline (BatchBuilder) and writer (BatchWriter), then removes them from the quarantine. The
write commits before the removal: a failure in between replays them again on the next
adoption, which ingest's idempotence turns into no second observation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from devices.model import DeviceConfig, DeviceGroup
from devices.profiles.registry import profile_for_topic
from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from storage.backend import Backend
from storage.registry import load_registry, write_registry
from storage.writer import BatchWriter

UNKNOWN_DEVICE = "unknown_device"
#: Messages replayed per batch (one transaction each).
REPLAY_BATCH = 500
#: Adopted messages were accepted by the broker already; the pipeline's size limit is moot.
REPLAY_PAYLOAD_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    """One quarantined message (a dead letter of reason unknown_device)."""

    id: int
    topic: str
    payload: bytes
    first_received_at: datetime
    last_received_at: datetime
    times_received: int


@dataclass(slots=True)
class QuarantinedDevice:
    """An unknown device: its key, what it sent and when, and the group that claims its key."""

    profile: str
    device_key: str
    topics: list[str]
    #: Distinct messages kept, and how often they were received in all.
    messages: int
    times_received: int
    first_received_at: datetime
    last_received_at: datetime
    #: The payload of its most recent message, as sent.
    latest_payload: bytes
    #: The group whose key prefix matches (it does not autoprovision, or the device would
    #: not be here); None when no group claims the key.
    group: DeviceGroup | None = None


@dataclass(frozen=True, slots=True)
class Adoption:
    """What adopting a device did."""

    device_key: str
    device: DeviceConfig
    replayed: int
    readings: int
    observations_inserted: int
    #: Replayed messages the device's profile still refused, by reason (now dead letters
    #: of the device, no longer in the quarantine).
    refused: dict[str, int] = field(default_factory=dict)


def claiming_group(groups: Sequence[DeviceGroup], profile: str, key: str) -> DeviceGroup | None:
    """The group of `profile` with the longest key prefix that `key` starts with."""
    matches = [
        group
        for group in groups
        if group.profile == profile and key.startswith(group.key_prefix) and group.key_prefix
    ]
    return max(matches, key=lambda group: len(group.key_prefix), default=None)


def list_quarantine(conn: psycopg.Connection, tenant: str | None = None) -> list[QuarantinedDevice]:
    """Quarantined devices, most recently heard first.

    With `tenant`, only those whose key a group of that tenant claims, and for the default
    tenant "" also those no group claims (they belong to nobody yet).
    """
    with conn.transaction():
        rows = conn.execute(
            """
            SELECT DISTINCT ON (topic) topic,
                   count(*) OVER topic_window, sum(times_received) OVER topic_window,
                   min(first_received_at) OVER topic_window,
                   max(last_received_at) OVER topic_window, payload
            FROM dead_letters
            WHERE reason = %s
            WINDOW topic_window AS (PARTITION BY topic)
            ORDER BY topic, last_received_at DESC, id DESC
            """,
            [UNKNOWN_DEVICE],
        ).fetchall()
    _, groups = load_registry(conn)
    devices: dict[tuple[str, str], QuarantinedDevice] = {}
    for topic, messages, times, first, last, payload in rows:
        routed = profile_for_topic(topic)
        if routed is None:
            continue  # the profiles changed since; the dead-letter list still shows it
        profile, key = routed[0].name, routed[1]
        found = devices.get((profile, key))
        if found is None:
            group = claiming_group(groups, profile, key)
            devices[(profile, key)] = QuarantinedDevice(
                profile, key, [topic], messages, int(times), first, last, payload, group
            )
            continue
        found.topics.append(topic)
        found.messages += messages
        found.times_received += int(times)
        found.first_received_at = min(found.first_received_at, first)
        if last > found.last_received_at:
            found.last_received_at, found.latest_payload = last, payload
    listed = [device for device in devices.values() if _visible(device, tenant)]
    return sorted(listed, key=lambda d: (d.last_received_at, d.profile, d.device_key), reverse=True)


def _visible(device: QuarantinedDevice, tenant: str | None) -> bool:
    if tenant is None:
        return True
    if device.group is None:
        return tenant == ""
    return device.group.tenant == tenant


def _topics_of(conn: psycopg.Connection, profile: str, key: str) -> list[str]:
    """The quarantined topics that route to (profile, key)."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT DISTINCT topic FROM dead_letters WHERE reason = %s", [UNKNOWN_DEVICE]
        ).fetchall()
    topics = []
    for (topic,) in rows:
        routed = profile_for_topic(topic)
        if routed is not None and (routed[0].name, routed[1]) == (profile, key):
            topics.append(topic)
    return topics


def _page(
    conn: psycopg.Connection, topics: list[str], after: int, limit: int
) -> list[QuarantinedMessage]:
    with conn.transaction(), conn.cursor(row_factory=class_row(QuarantinedMessage)) as cursor:
        return cursor.execute(
            """
            SELECT id, topic, payload, first_received_at, last_received_at, times_received
            FROM dead_letters
            WHERE reason = %s AND topic = ANY(%s) AND id > %s
            ORDER BY id LIMIT %s
            """,
            [UNKNOWN_DEVICE, topics, after, limit],
        ).fetchall()


def quarantined_messages(
    conn: psycopg.Connection, profile: str, key: str, limit: int = 100
) -> list[QuarantinedMessage]:
    """The first `limit` quarantined messages of one device, oldest first, payloads included."""
    topics = _topics_of(conn, profile, key)
    return _page(conn, topics, 0, limit) if topics else []


def device_for_group(group: DeviceGroup, key: str, device_id: str | None = None) -> DeviceConfig:
    """The config of device `key` adopted into `group` (id: the key after the group's prefix)."""
    if not key.startswith(group.key_prefix):
        raise ValueError(f"key {key!r} does not start with the prefix {group.key_prefix!r}")
    return DeviceConfig(
        device_id=device_id or key[len(group.key_prefix) :] or key,
        profile=group.profile,
        tenant=group.tenant,
        model=group.name,
    )


def _replay(messages: Sequence[QuarantinedMessage]) -> Iterator[RawMessage]:
    """Each message once at its first reception, and again at its last when that differs.

    A dead letter folds identical payloads on one topic into one row: for payloads without
    a time of their own, the first and the last reception are the times that are known.
    """
    for message in messages:
        yield RawMessage(message.topic, message.payload, 0, 1, message.first_received_at, 0.0)
        if message.last_received_at != message.first_received_at:
            yield RawMessage(message.topic, message.payload, 0, 1, message.last_received_at, 0.0)


def adopt(
    conn: psycopg.Connection,
    backend: Backend,
    profile: str,
    device_key: str,
    device: DeviceConfig,
) -> Adoption:
    """Register `device` under `device_key`, replay its quarantined messages, unquarantine them.

    `conn` must be outside a transaction (the writer commits each batch). ValueError when the
    device's profile differs or the registry would still not resolve the key.
    """
    if device.profile != profile:
        raise ValueError(f"the device is of profile {device.profile}, the key of {profile}")
    write_registry(conn, [(device_key, device)], [])
    conn.commit()
    devices, groups = load_registry(conn)
    conn.commit()
    registry = DeviceRegistry(devices, groups)
    resolved = registry.resolve(profile, device_key)
    if resolved is None:
        raise ValueError(f"{profile} key {device_key!r} is still unknown after registering it")
    builder = BatchBuilder(lambda: registry, REPLAY_PAYLOAD_LIMIT)
    writer = BatchWriter(backend)
    topics = _topics_of(conn, profile, device_key)
    conn.commit()
    replayed = readings = inserted = 0
    refused: dict[str, int] = {}
    after = 0
    while topics and (page := _page(conn, topics, after, REPLAY_BATCH)):
        conn.commit()
        built = builder.build(list(_replay(page)))
        if any(letter.reason == UNKNOWN_DEVICE for letter in built.batch.dead_letters):
            raise ValueError(f"{profile} key {device_key!r} did not resolve during the replay")
        result = writer.write(conn, built.batch)
        for letter in built.batch.dead_letters:
            refused[letter.reason] = refused.get(letter.reason, 0) + 1
        with conn.transaction():
            conn.execute(
                "DELETE FROM dead_letters WHERE id = ANY(%s) AND reason = %s",
                [[message.id for message in page], UNKNOWN_DEVICE],
            )
        conn.commit()
        replayed += len(page)
        readings += built.readings
        inserted += result.observations_inserted
        after = page[-1].id
    return Adoption(device_key, resolved, replayed, readings, inserted, refused)
