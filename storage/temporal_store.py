"""Reads and writes of the observation history for the temporal API (docs/temporal.md).

Reads return numpy arrays per series (tenant, entity_id, attribute, dataset_id), for
ngsi/aggregate.py: one row per series whose columns are arrays (`array_agg`), fetched in
binary and turned into numpy by `frombuffer`, so no Python object is made per reading
(except the values that are not numbers, and only in series that have some). Times are
datetime64[us] in UTC; windows are half-open `[start, end)`, None meaning open.

Writes record the time ranges they change in `rollup_pending` in the caller's transaction
(storage/rollups.py). Deleting a whole entity's or attribute's history removes its
`observation_rollups` rows directly instead: recomputing years of hours would cost far more.

instanceId (clause 4.5.7: "uniquely identifies an instance of an Attribute"): derived from
the primary key, so nothing extra is stored: `urn:ngsi-ld:instance:` + base64url (no
padding) of 8 bytes observedAt (signed big-endian microseconds since 1970-01-01 UTC),
6 bytes BLAKE2b of "<entity id>\\n<attribute IRI>" (the same instant of two attributes gets
two ids, and an id used on the wrong attribute is refused), and the datasetId in UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from storage.entity_store import jsonb
from storage.partitions import months_of, partition_name
from storage.records import ObservationRow
from storage.rollups import (
    MICROSECOND,
    lock_tenant_rollups_async,
    record_pending_async,
    tenant_ranges,
)

#: (entity_id, attribute, dataset_id); dataset_id '' is the default instance.
SeriesKey = tuple[str, str, str]

INSTANCE_PREFIX = "urn:ngsi-ld:instance:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_POSTGRES_EPOCH_US = 946_684_800_000_000
_ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}


@dataclass(slots=True)
class Series:
    """One series' instances, oldest first."""

    entity_type: str
    times: np.ndarray  # datetime64[us], UTC
    values: np.ndarray  # float64; NaN where the value is not a number
    #: The values that are not numbers (value_json), aligned with times, None where numeric;
    #: None when every value is a number.
    others: list[Any] | None = None
    #: The unit code when every instance has the same (or none) ...
    unit_code: str | None = None
    #: ... otherwise each instance's, aligned with times.
    unit_codes: list[str | None] | None = None


@dataclass(slots=True)
class RollupSeries:
    """One series' hourly rollups, oldest hour first (NaN where an hour has no number)."""

    entity_type: str
    buckets: np.ndarray  # datetime64[us], the start of each UTC hour
    observation_counts: np.ndarray  # int64, every instance
    value_counts: np.ndarray  # int64, the numeric ones, which the rest summarize
    sums: np.ndarray
    sum_squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


# --- binary arrays into numpy -----------------------------------------------------------------


def _array_items(data: Buffer, item: str) -> np.ndarray:
    """The elements of a binary one-dimensional PostgreSQL array without NULLs."""
    view = memoryview(data)
    dimensions, has_nulls, _ = struct.unpack_from(">iiI", view)
    if dimensions == 0:
        return np.empty(0, dtype=item).astype(np.dtype(item).newbyteorder("="))
    if dimensions != 1 or has_nulls:
        raise ValueError("expected a one-dimensional array without NULLs")
    (length,) = struct.unpack_from(">i", view, 12)
    layout = np.dtype([("size", ">i4"), ("value", item)])
    items = np.frombuffer(view, dtype=layout, count=length, offset=20)
    if (items["size"] != np.dtype(item).itemsize).any():
        raise ValueError("unexpected element size in a binary array")
    return items["value"].astype(np.dtype(item).newbyteorder("="))


class _Float8ArrayLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return _array_items(data, ">f8")


class _Int8ArrayLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return _array_items(data, ">i8")


class _TimestamptzArrayLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return (_array_items(data, ">i8") + _POSTGRES_EPOCH_US).view("datetime64[us]")


_ARRAY_LOADERS: dict[str, type[Loader]] = {
    "float8": _Float8ArrayLoader,
    "int8": _Int8ArrayLoader,
    "timestamptz": _TimestamptzArrayLoader,
}


async def _fetch_arrays(
    conn: AsyncConnection[Any], query: sql.Composed, params: Sequence[Any] | dict[str, Any]
) -> list[tuple[Any, ...]]:
    async with conn.cursor(binary=True) as cursor:
        for name, loader in _ARRAY_LOADERS.items():
            info = psycopg.postgres.types[name]
            cursor.adapters.register_loader(info.array_oid, loader)
        await cursor.execute(query, params, binary=True)
        return await cursor.fetchall()


# --- reads ------------------------------------------------------------------------------------


def _selection(
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    time_column: str,
) -> tuple[sql.Composable, list[Any]]:
    """WHERE conditions over `observations` or a rollup table, and their parameters."""
    parts: list[sql.Composable] = [sql.SQL("tenant = %s AND entity_id = ANY(%s)")]
    params: list[Any] = [tenant, list(entity_ids)]
    if attributes is not None:
        parts.append(sql.SQL("attribute = ANY(%s)"))
        params.append(list(attributes))
    if start is not None:
        parts.append(sql.SQL("{} >= %s").format(sql.Identifier(time_column)))
        params.append(start)
    if end is not None:
        parts.append(sql.SQL("{} < %s").format(sql.Identifier(time_column)))
        params.append(end)
    return sql.SQL(" AND ").join(parts), params


#: Per series: type, times, numbers (NaN if not), other values (only if any), unit codes.
_SERIES_ARRAYS = """
min(entity_type) AS entity_type,
array_agg(observed_at ORDER BY observed_at) AS times,
array_agg(coalesce(value_num, 'NaN') ORDER BY observed_at) AS numbers,
CASE WHEN bool_or(value_json IS NOT NULL)
     THEN array_agg(value_json ORDER BY observed_at) END AS others,
max(unit_code) AS unit_code,
CASE WHEN min(unit_code) IS DISTINCT FROM max(unit_code)
          OR (bool_or(unit_code IS NULL) AND count(unit_code) > 0)
     THEN array_agg(unit_code ORDER BY observed_at) END AS unit_codes
"""


def _series(row: Sequence[Any]) -> Series:
    entity_type, times, values, others, unit_code, unit_codes = row
    return Series(entity_type, times, values, others, None if unit_codes else unit_code, unit_codes)


async def fetch_raw(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, Series]:
    """Every instance in [start, end) of the entities' attributes (all when None), per series."""
    where, params = _selection(tenant, entity_ids, attributes, start, end, "observed_at")
    query = sql.SQL(
        "SELECT entity_id, attribute, dataset_id, {arrays} FROM observations WHERE {where}"
        " GROUP BY entity_id, attribute, dataset_id ORDER BY entity_id, attribute, dataset_id"
    ).format(arrays=sql.SQL(_SERIES_ARRAYS), where=where)
    rows = await _fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): _series(row[3:]) for row in rows}


async def fetch_rollups(
    conn: AsyncConnection[Any],
    backend_name: str,
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, RollupSeries]:
    """Hourly rollups with start <= bucket < end, per series (the caller skips pending hours)."""
    table = sql.Identifier(_ROLLUP_TABLES[backend_name])
    where, params = _selection(tenant, entity_ids, attributes, start, end, "bucket")
    # Grouped again per hour: the continuous aggregate has a row per entity type as well.
    query = sql.SQL(
        "SELECT entity_id, attribute, dataset_id, min(entity_type),"
        " array_agg(bucket ORDER BY bucket), array_agg(n ORDER BY bucket),"
        " array_agg(numbers ORDER BY bucket),"
        " array_agg(coalesce(total, 'NaN') ORDER BY bucket),"
        " array_agg(coalesce(squares, 'NaN') ORDER BY bucket),"
        " array_agg(coalesce(lowest, 'NaN') ORDER BY bucket),"
        " array_agg(coalesce(highest, 'NaN') ORDER BY bucket)"
        " FROM (SELECT entity_id, attribute, dataset_id, bucket, min(entity_type) AS entity_type,"
        " sum(observation_count)::int8 AS n, sum(value_count)::int8 AS numbers,"
        " sum(value_sum) AS total, sum(value_sum_squares) AS squares,"
        " min(value_min) AS lowest, max(value_max) AS highest"
        " FROM {table} WHERE {where} GROUP BY entity_id, attribute, dataset_id, bucket) AS hours"
        " GROUP BY entity_id, attribute, dataset_id ORDER BY entity_id, attribute, dataset_id"
    ).format(table=table, where=where)
    rows = await _fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): RollupSeries(*row[3:]) for row in rows}


#: The series of the entities, found by skipping along the primary key: one index probe
#: per series (from each entity to its next attribute and datasetId) instead of reading every
#: row of the entities. Then each series reads only its n newest rows.
_SERIES_OF_ENTITIES = """
WITH RECURSIVE series AS (
  SELECT first.* FROM unnest(%(ids)s::text[]) AS seed (entity_id) CROSS JOIN LATERAL (
    SELECT entity_id, attribute, dataset_id FROM observations
    WHERE tenant = %(tenant)s AND entity_id = seed.entity_id
    ORDER BY attribute, dataset_id LIMIT 1) AS first
  UNION ALL
  SELECT next.* FROM series AS s CROSS JOIN LATERAL (
    SELECT entity_id, attribute, dataset_id FROM observations
    WHERE tenant = %(tenant)s AND entity_id = s.entity_id
      AND (attribute, dataset_id) > (s.attribute, s.dataset_id)
    ORDER BY attribute, dataset_id LIMIT 1) AS next)
"""
#: The same for given attributes: from each (entity, attribute) to its next datasetId.
_SERIES_OF_ATTRIBUTES = """
WITH RECURSIVE series AS (
  SELECT first.* FROM unnest(%(ids)s::text[]) AS entity (entity_id)
  CROSS JOIN unnest(%(attributes)s::text[]) AS wanted (attribute)
  CROSS JOIN LATERAL (
    SELECT entity_id, attribute, dataset_id FROM observations
    WHERE tenant = %(tenant)s AND entity_id = entity.entity_id AND attribute = wanted.attribute
    ORDER BY dataset_id LIMIT 1) AS first
  UNION ALL
  SELECT next.* FROM series AS s CROSS JOIN LATERAL (
    SELECT entity_id, attribute, dataset_id FROM observations
    WHERE tenant = %(tenant)s AND entity_id = s.entity_id AND attribute = s.attribute
      AND dataset_id > s.dataset_id
    ORDER BY dataset_id LIMIT 1) AS next)
"""
_NEWEST_OF_SERIES = """
SELECT s.entity_id, s.attribute, s.dataset_id, newest.* FROM series AS s
CROSS JOIN LATERAL (SELECT {arrays} FROM (
  SELECT * FROM observations
  WHERE tenant = %(tenant)s AND entity_id = s.entity_id AND attribute = s.attribute
    AND dataset_id = s.dataset_id
    AND observed_at >= %(start)s::timestamptz AND observed_at < %(end)s::timestamptz
  ORDER BY observed_at DESC LIMIT %(n)s) AS last) AS newest
WHERE newest.times IS NOT NULL ORDER BY 1, 2, 3
"""


async def fetch_last_n(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    n: int,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, Series]:
    """Per series the `n` newest instances in [start, end), oldest first (lastN, clause 4.5.9)."""
    series = _SERIES_OF_ENTITIES if attributes is None else _SERIES_OF_ATTRIBUTES
    query = sql.SQL(series + _NEWEST_OF_SERIES).format(arrays=sql.SQL(_SERIES_ARRAYS))
    params = {
        "tenant": tenant,
        "ids": list(dict.fromkeys(entity_ids)),
        "attributes": list(dict.fromkeys(attributes or ())),
        "start": start if start is not None else "-infinity",
        "end": end if end is not None else "infinity",
        "n": n,
    }
    rows = await _fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): _series(row[3:]) for row in rows}


# --- writes -----------------------------------------------------------------------------------

_MISSING_PARTITIONS = """
SELECT c.relkind = 'p', ARRAY(SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL)
FROM pg_class AS c WHERE c.oid = 'observations'::regclass
"""


async def ensure_partitions(conn: AsyncConnection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """Create the monthly partitions `rows` need (plain PostgreSQL; storage/partitions.py).

    Call it (or insert_instances) on an idle connection where possible: the partitions are
    then created and committed in a short transaction of their own. Inside a transaction it
    is a savepoint, and the ACCESS EXCLUSIVE lock of CREATE ... PARTITION OF on
    `observations` is held until that transaction ends.
    """
    months = months_of(rows)
    if not months:
        return
    async with conn.transaction():  # its own transaction when idle, else a savepoint
        cursor = await conn.execute(_MISSING_PARTITIONS, [[partition_name(m) for m in months]])
        found = await cursor.fetchone()
        if found is None or not found[0]:
            return  # not partitioned: TimescaleDB
        for month in months:
            if partition_name(month) in found[1]:
                await _create_partition(conn, month)


async def _create_partition(conn: AsyncConnection[Any], month: tuple[int, int]) -> None:
    following = (month[0] + month[1] // 12, month[1] % 12 + 1)
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF observations FOR VALUES FROM ({}) TO ({})"
    ).format(
        sql.Identifier(partition_name(month)),
        sql.Literal(datetime(*month, 1, tzinfo=UTC)),
        sql.Literal(datetime(*following, 1, tzinfo=UTC)),
    )
    try:
        async with conn.transaction():
            await conn.execute(statement)
    except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
        pass  # another writer created it meanwhile
    except psycopg.errors.InvalidObjectDefinition:
        pass  # a partition of another name covers the month


_UPSERT = """
INSERT INTO observations (tenant, entity_id, entity_type, attribute, dataset_id, observed_at,
                          value_num, value_json, unit_code)
SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
                         %s::float8[], %s::jsonb[], %s::text[])
ON CONFLICT (tenant, entity_id, attribute, dataset_id, observed_at) DO UPDATE
SET entity_type = EXCLUDED.entity_type, value_num = EXCLUDED.value_num,
    value_json = EXCLUDED.value_json, unit_code = EXCLUDED.unit_code
"""


async def insert_instances(
    conn: AsyncConnection[Any], tenant: str, rows: Iterable[tuple[Any, ...]]
) -> int:
    """Write instances (ObservationRow order; `tenant` wins), replacing stored ones; the count.

    Of several rows with one key the last is written (a statement may change a row once).
    """
    latest: dict[tuple[Any, ...], ObservationRow] = {}
    for row in rows:
        stored = ObservationRow(tenant, *row[1:])
        latest[(stored[1], stored[3], stored[4], stored[5])] = stored
    written = [latest[key] for key in sorted(latest)]  # key order: no deadlocks between writers
    if not written:
        return 0
    await ensure_partitions(conn, written)
    columns = [list(column) for column in zip(*written, strict=True)][1:]
    columns[5] = [None if value is None else float(value) for value in columns[5]]
    columns[6] = [None if value is None else jsonb(value) for value in columns[6]]
    await conn.execute(_UPSERT, [tenant, *columns])
    await record_pending_async(conn, tenant_ranges(written))
    return len(written)


async def _has_rollup_table(conn: AsyncConnection[Any]) -> bool:
    cursor = await conn.execute("SELECT to_regclass('observation_rollups') IS NOT NULL")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _delete_history(
    conn: AsyncConnection[Any], tenant: str, condition: str, params: Sequence[Any]
) -> int:
    """Delete a whole entity's or attribute's rows and the rollups that summarize them."""
    table = await _has_rollup_table(conn)
    if table:
        # Serialized with refresh_rollups for this tenant, so that it cannot write back
        # rollups computed from rows deleted here.
        await lock_tenant_rollups_async(conn, tenant)
    cursor = await conn.execute(
        f"WITH gone AS (DELETE FROM observations WHERE tenant = %s AND {condition}"
        " RETURNING observed_at) SELECT count(*), min(observed_at), max(observed_at) FROM gone",
        [tenant, *params],
    )
    row = await cursor.fetchone()
    count, oldest, newest = row if row else (0, None, None)
    if table:
        await conn.execute(
            f"DELETE FROM observation_rollups WHERE tenant = %s AND {condition}", [tenant, *params]
        )
    elif count and oldest is not None and newest is not None:
        await record_pending_async(conn, [(tenant, oldest, newest + MICROSECOND)])
    return int(count)


async def delete_entity_history(conn: AsyncConnection[Any], tenant: str, entity_id: str) -> int:
    """Delete every instance of an entity (temporal entity delete, clause 5.6.12); the count."""
    return await _delete_history(conn, tenant, "entity_id = %s", [entity_id])


async def delete_attribute_history(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> int:
    """Delete an attribute's instances (clause 5.6.14): of every datasetId with `delete_all`,
    else of `dataset_id` (None: the default instance); the count."""
    if delete_all:
        return await _delete_history(
            conn, tenant, "entity_id = %s AND attribute = %s", [entity_id, attribute]
        )
    return await _delete_history(
        conn,
        tenant,
        "entity_id = %s AND attribute = %s AND dataset_id = %s",
        [entity_id, attribute, dataset_id or ""],
    )


def _split_value(value: Any) -> tuple[float | None, Any]:
    """(value_num, value_json) as ingest stores them: numbers apart, anything else as jsonb."""
    if type(value) is int or type(value) is float:
        try:
            return float(value), None
        except OverflowError:
            pass
    return None, jsonb(value)


async def update_instance(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    observed_at: datetime,
    dataset_id: str | None,
    value: Any,
    unit_code: str | None = None,
) -> bool:
    """Replace one instance's value (and unit code, when given) (clause 5.6.15); False if none."""
    number, other = _split_value(value)
    cursor = await conn.execute(
        "UPDATE observations SET value_num = %s, value_json = %s,"
        " unit_code = coalesce(%s, unit_code) WHERE tenant = %s AND entity_id = %s"
        " AND attribute = %s AND dataset_id = %s AND observed_at = %s",
        [number, other, unit_code, tenant, entity_id, attribute, dataset_id or "", observed_at],
    )
    if cursor.rowcount:
        await record_pending_async(conn, [(tenant, observed_at, observed_at + MICROSECOND)])
    return cursor.rowcount > 0


async def delete_instance(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    observed_at: datetime,
    dataset_id: str | None,
) -> bool:
    """Delete one instance (clause 5.6.16); False if there was none."""
    cursor = await conn.execute(
        "DELETE FROM observations WHERE tenant = %s AND entity_id = %s AND attribute = %s"
        " AND dataset_id = %s AND observed_at = %s",
        [tenant, entity_id, attribute, dataset_id or "", observed_at],
    )
    if cursor.rowcount:
        await record_pending_async(conn, [(tenant, observed_at, observed_at + MICROSECOND)])
    return cursor.rowcount > 0


# --- instanceId -------------------------------------------------------------------------------


def _series_digest(entity_id: str, attribute: str) -> bytes:
    return hashlib.blake2b(f"{entity_id}\n{attribute}".encode(), digest_size=6).digest()


def _encode(micros: int, tail: bytes) -> str:
    payload = micros.to_bytes(8, "big", signed=True) + tail
    return INSTANCE_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def instance_id(
    entity_id: str, attribute: str, dataset_id: str | None, observed_at: datetime
) -> str:
    """The instanceId of the instance with this primary key (see the module docstring)."""
    micros = (observed_at - _EPOCH) // MICROSECOND
    return _encode(micros, _series_digest(entity_id, attribute) + (dataset_id or "").encode())


def instance_ids(
    entity_id: str, attribute: str, dataset_id: str | None, times: np.ndarray
) -> list[str]:
    """`instance_id` for every time of a series (datetime64 in UTC)."""
    tail = _series_digest(entity_id, attribute) + (dataset_id or "").encode()
    micros = np.asarray(times, dtype="datetime64[us]").view(np.int64)
    return [_encode(value, tail) for value in micros.tolist()]


def parse_instance_id(instance: str, entity_id: str, attribute: str) -> tuple[datetime, str]:
    """(observedAt, datasetId) of an instanceId of this entity's attribute; ValueError if not."""
    if not instance.startswith(INSTANCE_PREFIX):
        raise ValueError(f"not an instanceId of this service: {instance!r}")
    text = instance[len(INSTANCE_PREFIX) :]
    try:
        padded = text + "=" * (-len(text) % 4)
        payload = base64.b64decode(padded, altchars=b"-_", validate=True)
        micros = int.from_bytes(payload[:8], "big", signed=True)
        observed_at = _EPOCH + timedelta(microseconds=micros)
        dataset_id = payload[14:].decode("utf-8")
    except (binascii.Error, ValueError, OverflowError) as error:
        raise ValueError(f"malformed instanceId {instance!r}") from error
    if len(payload) < 14 or payload[8:14] != _series_digest(entity_id, attribute):
        raise ValueError(f"{instance!r} is not an instance of {attribute} of {entity_id}")
    if instance_id(entity_id, attribute, dataset_id, observed_at) != instance:
        raise ValueError(f"malformed instanceId {instance!r}")  # not in canonical form
    return observed_at, dataset_id
