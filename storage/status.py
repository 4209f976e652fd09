"""What `stadspuls status` reports of storage: backend, volumes, dead letters, device activity."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from storage.backend import Backend

#: Below this estimated size, count observations exactly; above it, the estimate is enough.
EXACT_COUNT_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    """Dead letters of one reason: distinct messages and how often they were received."""

    reason: str
    messages: int
    times_received: int


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """A device's counters and when it was last heard from."""

    tenant: str
    device_id: str
    messages: int
    readings: int
    last_message_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One stored dead letter, payload included."""

    id: int
    tenant: str
    device_id: str | None
    topic: str
    payload: bytes
    reason: str
    detail: str
    first_received_at: datetime
    last_received_at: datetime
    times_received: int


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A snapshot of the store, cheap enough to compute on every `stadspuls status`."""

    backend_name: str
    backend_version: str
    observations: int
    #: False when `observations` is the planner's estimate rather than a count.
    observations_exact: bool
    entities: int
    messages: int
    readings: int
    dead_letters: list[DeadLetterSummary] = field(default_factory=list)
    #: The most recently active devices, newest first.
    devices: list[DeviceSeen] = field(default_factory=list)


def estimate_observations(conn: psycopg.Connection, backend: Backend) -> int | None:
    """The planner's row estimate for observations, None when no partition was ever analyzed."""
    if backend.name == "timescaledb":
        # https://www.tigerdata.com/docs/api/latest/hyperfunctions/approximate_row_count
        row = conn.execute("SELECT approximate_row_count('observations')").fetchone()
        return int(row[0]) if row and row[0] is not None else None
    row = conn.execute(
        """
        SELECT sum(greatest(c.reltuples, 0)), bool_and(c.reltuples < 0)
        FROM pg_partition_tree('observations') AS tree
        JOIN pg_class AS c ON c.oid = tree.relid
        WHERE tree.isleaf
        """
    ).fetchone()
    if row is None or row[0] is None or row[1]:
        return None
    return int(row[0])


def count_observations(
    conn: psycopg.Connection, backend: Backend, exact: bool | None = None
) -> tuple[int, bool]:
    """Observations as (count, is_exact): exact when asked or when the table looks small."""
    if exact is not True:
        estimate = estimate_observations(conn, backend)
        if exact is False and estimate is not None:
            return estimate, False
        if estimate is not None and estimate >= EXACT_COUNT_LIMIT:
            return estimate, False
    row = conn.execute("SELECT count(*) FROM observations").fetchone()
    assert row is not None
    return int(row[0]), True


def collect_status(
    conn: psycopg.Connection, backend: Backend, *, exact: bool | None = None, devices: int = 10
) -> StatusReport:
    """Gather the status report; `devices` caps the most recently active devices listed."""
    with conn.transaction():
        observations, observations_exact = count_observations(conn, backend, exact)
        entities, messages, readings = conn.execute(
            """
            SELECT (SELECT count(*) FROM entities),
                   coalesce(sum(messages), 0)::bigint,
                   coalesce(sum(readings), 0)::bigint
            FROM device_activity
            """
        ).fetchone() or (0, 0, 0)
        with conn.cursor(row_factory=class_row(DeadLetterSummary)) as cursor:
            dead_letters = cursor.execute(
                """
                SELECT reason, count(*) AS messages, sum(times_received)::bigint AS times_received
                FROM dead_letters GROUP BY reason ORDER BY count(*) DESC, reason
                """
            ).fetchall()
        with conn.cursor(row_factory=class_row(DeviceSeen)) as cursor:
            recent = cursor.execute(
                """
                SELECT tenant, device_id, messages, readings, last_message_at
                FROM device_activity ORDER BY last_message_at DESC, tenant, device_id LIMIT %s
                """,
                [devices],
            ).fetchall()
    return StatusReport(
        backend_name=backend.name,
        backend_version=backend.version,
        observations=observations,
        observations_exact=observations_exact,
        entities=entities,
        messages=messages,
        readings=readings,
        dead_letters=dead_letters,
        devices=recent,
    )


def list_dead_letters(
    conn: psycopg.Connection, limit: int = 50, reason: str | None = None
) -> list[DeadLetterRecord]:
    """The most recently received dead letters, optionally of one reason only."""
    with conn.transaction(), conn.cursor(row_factory=class_row(DeadLetterRecord)) as cursor:
        return cursor.execute(
            """
            SELECT id, tenant, device_id, topic, payload, reason, detail,
                   first_received_at, last_received_at, times_received
            FROM dead_letters
            WHERE %(reason)s::text IS NULL OR reason = %(reason)s
            ORDER BY last_received_at DESC, id DESC
            LIMIT %(limit)s
            """,
            {"reason": reason, "limit": limit},
        ).fetchall()
