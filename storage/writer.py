"""The batch writer: everything one ingest batch stores, in one transaction, by binary COPY.

Observations go straight into `observations` by COPY inside a savepoint (the fast path). A
redelivered message or a duplicate inside the batch makes that COPY fail on the primary key;
the writer then rolls back to the savepoint and takes the slow path: COPY into a temporary
staging table and `INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO NOTHING`.
The time ranges actually written are recorded per tenant in `rollup_pending`, in the same
transaction, for the rollup refresh (storage/rollups.py).
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format, TransactionStatus
from psycopg.types.json import Jsonb

from storage.backend import Backend
from storage.entities import STAGING_TABLE as ENTITY_STAGING
from storage.entities import write_entities
from storage.partitions import MonthlyPartitions
from storage.records import Batch, DeadLetter, DeviceActivity
from storage.registry import load_registry, write_registry
from storage.rollups import TenantRange, clip_ranges, record_pending, tenant_ranges

log = logging.getLogger(__name__)

__all__ = ["BatchWriter", "WriteResult", "load_registry", "write_registry"]

_OBSERVATION_COLUMNS = (
    "tenant, entity_id, entity_type, attribute, dataset_id,"
    " observed_at, value_num, value_json, unit_code"
)
_OBSERVATION_TYPES = [
    "text", "text", "text", "text", "text", "timestamptz", "float8", "jsonb", "text",
]  # fmt: skip
_OBSERVATION_KEY = "tenant, entity_id, attribute, dataset_id, observed_at"
_INSERT_OBSERVATIONS = f"""
INSERT INTO observations ({_OBSERVATION_COLUMNS})
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::timestamptz[], %s::float8[], %s::jsonb[], %s::text[])
ON CONFLICT DO NOTHING
"""

_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stadspuls_observations_staging
    (LIKE observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""

_COPY_OBSERVATIONS = f"COPY {{table}} ({_OBSERVATION_COLUMNS}) FROM STDIN (FORMAT BINARY)"
# Per tenant, how many rows were new and their oldest and newest time: the rollup refresh
# needs the ranges actually written (a batch of nothing but duplicates changes none).
_INSERT_STAGED_OBSERVATIONS = f"""
WITH inserted AS (
    INSERT INTO {{table}} ({_OBSERVATION_COLUMNS})
    SELECT DISTINCT ON ({_OBSERVATION_KEY}) {_OBSERVATION_COLUMNS}
    FROM stadspuls_observations_staging
    ORDER BY {_OBSERVATION_KEY}
    ON CONFLICT DO NOTHING
    RETURNING tenant, observed_at
)
SELECT tenant, count(*), min(observed_at), max(observed_at) FROM inserted GROUP BY tenant
"""

_UPSERT_DEAD_LETTERS = """
INSERT INTO dead_letters AS current (tenant, device_id, topic, payload, payload_sha256, reason,
                                     detail, first_received_at, last_received_at, times_received)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[], %s::bytea[], %s::text[],
                     %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int4[])
ON CONFLICT (topic, payload_sha256, reason) DO UPDATE
SET times_received = current.times_received + EXCLUDED.times_received,
    first_received_at = least(current.first_received_at, EXCLUDED.first_received_at),
    last_received_at = greatest(current.last_received_at, EXCLUDED.last_received_at),
    device_id = coalesce(current.device_id, EXCLUDED.device_id)
"""

# Also counts the batch into the device's 10-minute bucket of device_activity_recent (device
# health, storage/device_health.py), in the same statement: no extra round trip per batch.
# A batch is a few seconds long, so its messages go to the bucket of the device's last one.
_UPSERT_ACTIVITY = """
WITH batch (tenant, device_id, messages, readings, first_message_at, last_message_at) AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[],
                         %s::timestamptz[], %s::timestamptz[])
), recent AS (
    INSERT INTO device_activity_recent AS current (tenant, device_id, bucket, messages, readings)
    SELECT tenant, device_id, stadspuls_activity_bucket(last_message_at), messages, readings
    FROM batch
    ON CONFLICT (tenant, device_id, bucket) DO UPDATE
    SET messages = current.messages + EXCLUDED.messages,
        readings = current.readings + EXCLUDED.readings
)
INSERT INTO device_activity AS current (tenant, device_id, messages, readings,
                                        first_message_at, last_message_at)
SELECT * FROM batch
ON CONFLICT (tenant, device_id) DO UPDATE
SET messages = current.messages + EXCLUDED.messages,
    readings = current.readings + EXCLUDED.readings,
    first_message_at = least(current.first_message_at, EXCLUDED.first_message_at),
    last_message_at = greatest(current.last_message_at, EXCLUDED.last_message_at)
"""


class _OrjsonJsonbBinaryDumper(Dumper):
    """jsonb in binary COPY through orjson: several times faster than json.dumps."""

    format = Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        # Binary jsonb is a version byte followed by the JSON text.
        return b"\x01" + orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch changed."""

    observations_inserted: int
    entities_upserted: int
    #: Dead-letter messages recorded (a redelivered one bumps its row's times_received).
    dead_letters: int


def _copy_rows(
    cursor: psycopg.Cursor,
    statement: str | sql.Composed,
    types: list[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _run_savepoint(cursor: psycopg.Cursor, step: Callable[[psycopg.Cursor], None]) -> None:
    try:
        with cursor.connection.transaction():
            step(cursor)
    except Exception:  # noqa: BLE001 - the batch must commit whatever the extra step does
        log.exception("a step run with the batch failed; the batch is committed without it")


def insert_observations(cursor: psycopg.Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert a few rows (ObservationRow order) that may already exist, outside the COPY path.

    For rows derived from a batch (alert transitions), whose time partitions the batch has
    already made sure of.
    """
    if not rows:
        return
    columns = _columns(rows)
    columns[7] = [None if value is None else Jsonb(value) for value in columns[7]]
    cursor.execute(_INSERT_OBSERVATIONS, columns)
    record_pending(cursor, tenant_ranges(rows))


def _require_idle(conn: psycopg.Connection) -> None:
    status = conn.info.transaction_status
    if status != TransactionStatus.IDLE:
        raise RuntimeError(
            f"BatchWriter needs a connection outside any transaction (it commits each batch);"
            f" this one is {status.name}"
        )


class BatchWriter:
    """Writes ingest batches for one backend; keep one per worker, it caches what exists."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._partitions = MonthlyPartitions() if backend.name == "postgres" else None
        self._prepared: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()
        #: How often each observation path ran; the slow path means redeliveries.
        self.fast_path_batches = 0
        self.slow_path_batches = 0

    def write(
        self,
        conn: psycopg.Connection,
        batch: Batch,
        also: Callable[[psycopg.Cursor], None] | None = None,
    ) -> WriteResult:
        """Store the whole batch in one transaction and commit it.

        `also` runs last in the same transaction (alert evaluation): what it writes commits
        with the batch or not at all. It runs in a savepoint, and a failure of its own is
        logged and rolled back alone: it never costs the batch.
        """
        _require_idle(conn)
        table = self._prepare(conn, batch)
        with conn.transaction(), conn.cursor() as cursor:
            cursor.adapters.register_dumper(None, _OrjsonJsonbBinaryDumper)
            inserted, ranges = self._write_observations(cursor, table, batch.observations)
            record_pending(cursor, ranges)
            upserted = write_entities(cursor, batch.entities)
            self._write_dead_letters(cursor, batch.dead_letters)
            self._write_activity(cursor, batch.activity)
            if also is not None:
                _run_savepoint(cursor, also)
        return WriteResult(inserted, upserted, len(batch.dead_letters))

    def _prepare(self, conn: psycopg.Connection, batch: Batch) -> sql.Identifier:
        """DDL the batch needs, committed before the batch transaction; the table to COPY into."""
        if conn not in self._prepared:
            # Temporary tables live as long as the session: create them once per connection,
            # outside the batch so a rolled-back batch cannot take them along.
            with conn.transaction():
                conn.execute(_CREATE_STAGING)
                conn.execute(ENTITY_STAGING)
            self._prepared.add(conn)
        if self._partitions is not None and batch.observations:
            return sql.Identifier(self._partitions.prepare(conn, batch.observations))
        return sql.Identifier("observations")

    def _write_observations(
        self, cursor: psycopg.Cursor, table: sql.Identifier, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[int, list[TenantRange]]:
        """Rows inserted, and the time ranges per tenant they fall in (for rollup_pending)."""
        if not rows:
            return 0, []
        try:
            with cursor.connection.transaction():
                copy = sql.SQL(_COPY_OBSERVATIONS).format(table=table)
                _copy_rows(cursor, copy, _OBSERVATION_TYPES, rows)
        except psycopg.errors.UniqueViolation:
            pass  # a redelivery or a duplicate in the batch: the savepoint is rolled back
        else:
            self.fast_path_batches += 1
            return len(rows), tenant_ranges(rows)
        self.slow_path_batches += 1
        staging = sql.Identifier("stadspuls_observations_staging")
        _copy_rows(
            cursor, sql.SQL(_COPY_OBSERVATIONS).format(table=staging), _OBSERVATION_TYPES, rows
        )
        cursor.execute(sql.SQL(_INSERT_STAGED_OBSERVATIONS).format(table=table))
        written = {tenant: (count, (oldest, newest)) for tenant, count, oldest, newest in cursor}
        if not written:
            return 0, []
        inserted = sum(count for count, _ in written.values())
        bounds = {tenant: span for tenant, (_, span) in written.items()}
        return inserted, clip_ranges(tenant_ranges(rows), bounds)

    def _write_dead_letters(self, cursor: psycopg.Cursor, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        # One row per (topic, payload, reason): ON CONFLICT DO UPDATE may touch a row once.
        groups: dict[tuple[str, bytes, str], _DeadLetterGroup] = {}
        for letter in letters:
            key = (letter.topic, hashlib.sha256(letter.payload).digest(), letter.reason)
            if (group := groups.get(key)) is None:
                groups[key] = _DeadLetterGroup(letter)
            else:
                group.add(letter)
        rows = [
            (g.letter.tenant, g.letter.device_id, topic, g.letter.payload, digest, reason,
             g.letter.detail, g.first, g.last, g.count)
            for (topic, digest, reason), g in sorted(groups.items())
        ]  # fmt: skip
        cursor.execute(_UPSERT_DEAD_LETTERS, _columns(rows))

    def _write_activity(self, cursor: psycopg.Cursor, activity: Sequence[DeviceActivity]) -> None:
        if not activity:
            return
        # One row per device, as for dead letters; key order keeps concurrent workers from
        # locking the same devices in opposite orders.
        totals: dict[tuple[str, str], tuple[int, int, datetime, datetime]] = {}
        for item in activity:
            key = (item.tenant, item.device_id)
            seen = item.last_message_at
            if (total := totals.get(key)) is None:
                totals[key] = (item.messages, item.readings, seen, seen)
            else:
                totals[key] = (
                    total[0] + item.messages,
                    total[1] + item.readings,
                    min(total[2], seen),
                    max(total[3], seen),
                )
        rows = [(*key, *total) for key, total in sorted(totals.items())]
        cursor.execute(_UPSERT_ACTIVITY, _columns(rows))


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows to one list per column, for `INSERT ... SELECT * FROM unnest(...)`."""
    return [list(column) for column in zip(*rows, strict=True)]


class _DeadLetterGroup:
    """Copies of one dead letter within a batch."""

    __slots__ = ("letter", "first", "last", "count")

    def __init__(self, letter: DeadLetter) -> None:
        self.letter = letter
        self.first: datetime = letter.received_at
        self.last: datetime = letter.received_at
        self.count = 1

    def add(self, letter: DeadLetter) -> None:
        """Count one more copy received at `letter.received_at`."""
        self.first = min(self.first, letter.received_at)
        self.last = max(self.last, letter.received_at)
        self.count += 1
