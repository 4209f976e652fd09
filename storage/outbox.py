"""The change log the subscription triggers fill, and the durable notification outbox.

See storage/migrations/0010_notifications.sql for why changes are taken in transaction order
and why an outbox row is deleted only after its receiver took it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from storage.entity_store import StoredEntity

# In `position` order: the changes of one entity are numbered in the order they committed
# (a writer numbers its change while it holds the entity's row lock). A transaction that
# commits late leaves changes behind ones already taken; they are taken next round, since
# a change leaves this table only once its notifications are in the outbox. (Waiting for
# pg_snapshot_xmin instead would let any long transaction anywhere on the server, another
# database's included, hold every notification back.)
_FETCH_CHANGES = """
SELECT position, tenant, entity_id, operation, entity, previous, changed_at
FROM entity_changes
ORDER BY position
LIMIT %s
"""

_ENQUEUE = """
INSERT INTO notification_outbox (tenant, channel, endpoint, headers, payload)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::jsonb[], %s::bytea[])
"""

# The oldest row of every channel: a channel is delivered strictly in order, so only its
# head may be sent, and only once its retry time has come.
_HEADS = """
SELECT id, tenant, channel, endpoint, headers, payload, attempts
FROM (
    SELECT DISTINCT ON (tenant, channel) id, tenant, channel, endpoint, headers, payload,
           attempts, next_attempt_at
    FROM notification_outbox
    ORDER BY tenant, channel, id
) AS heads
WHERE next_attempt_at <= now()
ORDER BY next_attempt_at, id
LIMIT %s
"""

_CHANNEL_ROWS = """
SELECT id, tenant, channel, endpoint, headers, payload, attempts
FROM notification_outbox
WHERE tenant = %s AND channel = %s AND id > %s
ORDER BY id
LIMIT %s
"""


@dataclass(frozen=True, slots=True)
class EntityChange:
    """One committed change of one entity: the document before and after it."""

    position: int
    tenant: str
    entity_id: str
    #: 'c' created, 'u' updated, 'd' deleted.
    operation: str
    entity: StoredEntity | None
    previous: StoredEntity | None
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification to send, as it waits in the outbox."""

    channel: str
    endpoint: str
    headers: dict[str, Any]
    payload: bytes


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """An outbox row: a notification with its place in its channel and its attempts so far."""

    id: int
    tenant: str
    channel: str
    endpoint: str
    headers: dict[str, Any]
    payload: bytes
    attempts: int


def _stored(row: dict[str, Any] | None) -> StoredEntity | None:
    """An entities row as the change triggers recorded it (to_jsonb: timestamps as text)."""
    if row is None:
        return None
    return StoredEntity(
        row["id"],
        [row["type"], *(row.get("extra_types") or ())],
        row.get("entity") or {},
        row.get("scope"),
        _timestamp(row.get("created_at")),
        _timestamp(row.get("modified_at")),
    )


def _timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def fetch_changes(conn: psycopg.Connection, limit: int) -> list[EntityChange]:
    """The oldest committed changes, in the order they were recorded."""
    rows = conn.execute(_FETCH_CHANGES, [limit]).fetchall()
    return [
        EntityChange(
            position, tenant, entity_id, operation, _stored(entity), _stored(previous), changed
        )
        for position, tenant, entity_id, operation, entity, previous, changed in rows
    ]


def delete_changes(conn: psycopg.Connection, positions: Sequence[int]) -> None:
    """Forget changes once their notifications are in the outbox (same transaction)."""
    conn.execute("DELETE FROM entity_changes WHERE position = ANY(%s)", [list(positions)])


def enqueue(conn: psycopg.Connection, tenant: str, notifications: Sequence[Notification]) -> None:
    """Put notifications of one tenant in the outbox, in order."""
    if not notifications:
        return
    conn.execute(
        _ENQUEUE,
        [
            [tenant] * len(notifications),
            [n.channel for n in notifications],
            [n.endpoint for n in notifications],
            [Jsonb(n.headers) for n in notifications],
            [n.payload for n in notifications],
        ],
    )


def _pending(row: Sequence[Any]) -> PendingNotification:
    return PendingNotification(*row)


def fetch_heads(
    conn: psycopg.Connection, busy: Sequence[tuple[str, str]], limit: int
) -> list[PendingNotification]:
    """The first notification of each channel that is due and not being delivered already."""
    rows = conn.execute(_HEADS, [limit + len(busy)]).fetchall()
    taken = set(busy)
    return [_pending(row) for row in rows if (row[1], row[2]) not in taken][:limit]


def fetch_channel(
    conn: psycopg.Connection, tenant: str, channel: str, after_id: int, limit: int
) -> list[PendingNotification]:
    """The next notifications of one channel after `after_id`, in order."""
    rows = conn.execute(_CHANNEL_ROWS, [tenant, channel, after_id, limit]).fetchall()
    return [_pending(row) for row in rows]


def delivered(conn: psycopg.Connection, notification_id: int) -> None:
    """The receiver took it: it leaves the outbox."""
    conn.execute("DELETE FROM notification_outbox WHERE id = %s", [notification_id])


def postpone(conn: psycopg.Connection, notification_id: int, delay: float, error: str) -> None:
    """Delivery failed: count the attempt and try again after `delay` seconds."""
    conn.execute(
        "UPDATE notification_outbox SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        [error[:1000], delay, notification_id],
    )


def drop_channel(conn: psycopg.Connection, tenant: str, channel: str) -> int:
    """Drop what waits for a channel that no longer exists (a deleted subscription)."""
    cursor = conn.execute(
        "DELETE FROM notification_outbox WHERE tenant = %s AND channel = %s", [tenant, channel]
    )
    return cursor.rowcount


def outbox_size(conn: psycopg.Connection) -> int:
    """How many notifications wait for delivery."""
    row = conn.execute("SELECT count(*) FROM notification_outbox").fetchone()
    return int(row[0]) if row else 0


def fetch_tenant_entities(conn: psycopg.Connection, tenant: str) -> list[StoredEntity]:
    """Every entity of a tenant (a periodic subscription's candidates; it filters them)."""
    rows = conn.execute(
        "SELECT id, type, extra_types, entity, scope, created_at, modified_at"
        " FROM entities WHERE tenant = %s ORDER BY id",
        [tenant],
    ).fetchall()
    return [
        StoredEntity(entity_id, [kind, *extra], document or {}, scope, created, modified)
        for entity_id, kind, extra, document, scope, created, modified in rows
    ]
