"""Reads of the observation history for the temporal API (docs/temporal.md).

Reads return numpy arrays per series (tenant, entity_id, attribute, dataset_id), for
ngsi/aggregate.py: one row per series whose columns are arrays (`array_agg`), fetched in
binary and turned into numpy by `frombuffer`, so no Python object is made per reading
(except the values that are not numbers, and only in series that have some). Times are
datetime64[us] in UTC; windows are half-open `[start, end)`, None meaning open.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from storage.temporal_series import RollupSeries, Series, SeriesKey

#: PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_POSTGRES_EPOCH_US = 946_684_800_000_000
_ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}


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


# --- whole windows ----------------------------------------------------------------------------


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


#: fetch_raw's rows of the window, sorted once; the aggregates over them keep that order
#: (no join in between), so none of them sorts again. Only the columns used are carried.
_SORTED_ROWS = (
    "(SELECT entity_id, attribute, dataset_id, observed_at, {columns} FROM observations"
    " WHERE {where} ORDER BY entity_id, attribute, dataset_id, observed_at) AS sorted"
)
_NUMBER_COLUMNS = "entity_type, value_num, value_json IS NOT NULL AS has_json, unit_code"
_OTHER_COLUMNS = "value_json, unit_code"
#: Per series: type, times, numbers (NaN if not), whether there are other values, the unit
#: code and whether it varies. The other values and unit codes are fetched only for the
#: series that need them (`_RAW_OTHERS`): most series hold numbers in one unit.
_RAW_NUMBERS = """
SELECT entity_id, attribute, dataset_id, min(entity_type), array_agg(observed_at),
       array_agg(coalesce(value_num, 'NaN')), bool_or(has_json),
       max(unit_code),
       min(unit_code) IS DISTINCT FROM max(unit_code)
       OR (bool_or(unit_code IS NULL) AND count(unit_code) > 0)
FROM {rows} GROUP BY entity_id, attribute, dataset_id ORDER BY entity_id, attribute, dataset_id
"""
_RAW_OTHERS = """
SELECT entity_id, attribute, dataset_id, array_agg(observed_at),
       CASE WHEN bool_or(value_json IS NOT NULL) THEN array_agg(value_json) END,
       CASE WHEN min(unit_code) IS DISTINCT FROM max(unit_code)
                 OR (bool_or(unit_code IS NULL) AND count(unit_code) > 0)
            THEN array_agg(unit_code) END
FROM {rows} GROUP BY entity_id, attribute, dataset_id
"""


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
    rows = sql.SQL(_SORTED_ROWS).format(columns=sql.SQL(_NUMBER_COLUMNS), where=where)
    found = await _fetch_arrays(conn, sql.SQL(_RAW_NUMBERS).format(rows=rows), params)
    series = {
        (entity, attribute, dataset): Series(kind, times, values, None, unit_code, None)
        for entity, attribute, dataset, kind, times, values, _, unit_code, _ in found
    }
    wanted = [row[:3] for row in found if row[6] or row[8]]
    if not wanted:
        return series
    entities, names, datasets = (list(column) for column in zip(*wanted, strict=True))
    where, params = _selection(tenant, entities, names, start, end, "observed_at")
    where = sql.SQL(
        "{} AND (entity_id, attribute, dataset_id) IN"
        " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
    ).format(where)
    rows = sql.SQL(_SORTED_ROWS).format(columns=sql.SQL(_OTHER_COLUMNS), where=where)
    others = await _fetch_arrays(
        conn, sql.SQL(_RAW_OTHERS).format(rows=rows), [*params, entities, names, datasets]
    )
    parts = [series.get(row[:3]) for row in others]
    if len(others) != len(wanted) or any(
        part is None or not np.array_equal(part.times, row[3])
        for part, row in zip(parts, others, strict=True)
    ):
        # Written to between the two statements: read it all in one.
        return await _fetch_raw_whole(conn, tenant, entity_ids, attributes, start, end)
    for part, (_, _, _, _, values, unit_codes) in zip(parts, others, strict=True):
        assert part is not None
        part.others = values
        if unit_codes:
            part.unit_code, part.unit_codes = None, unit_codes
    return series


async def _fetch_raw_whole(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, Series]:
    """fetch_raw in one statement, every array at once."""
    where, params = _selection(tenant, entity_ids, attributes, start, end, "observed_at")
    query = sql.SQL(
        "SELECT entity_id, attribute, dataset_id, {arrays} FROM observations WHERE {where}"
        " GROUP BY entity_id, attribute, dataset_id ORDER BY entity_id, attribute, dataset_id"
    ).format(arrays=sql.SQL(_SERIES_ARRAYS), where=where)
    rows = await _fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): _series(row[3:]) for row in rows}


@dataclass(frozen=True, slots=True)
class RollupTable:
    """Hourly rollups of many series in flat arrays, sorted by series then hour (NaN where an
    hour has no number): row i belongs to `keys[series[i]]`."""

    keys: list[SeriesKey]
    entity_types: list[str]
    series: np.ndarray  # int64, index into keys
    buckets: np.ndarray  # datetime64[us], the start of each UTC hour
    observation_counts: np.ndarray  # int64, every instance
    value_counts: np.ndarray  # int64, the numeric ones, which the rest summarize
    sums: np.ndarray
    sum_squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


#: One row per series and hour, sorted by series then hour. The continuous aggregate has a
#: row per entity type as well, so it is grouped again per hour; `observation_rollups` has
#: one row per series and hour (its primary key).
_ROLLUP_HOURS = {
    "postgres": "SELECT entity_id, attribute, dataset_id, entity_type, bucket,"
    " observation_count AS n, value_count AS numbers, value_sum AS total,"
    " value_sum_squares AS squares, value_min AS lowest, value_max AS highest"
    " FROM {table} WHERE {where} ORDER BY entity_id, attribute, dataset_id, bucket",
    "timescaledb": "SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,"
    " bucket, sum(observation_count) AS n, sum(value_count) AS numbers,"
    " sum(value_sum) AS total, sum(value_sum_squares) AS squares,"
    " min(value_min) AS lowest, max(value_max) AS highest"
    " FROM {table} WHERE {where} GROUP BY entity_id, attribute, dataset_id, bucket"
    " ORDER BY entity_id, attribute, dataset_id, bucket",
}
#: One answer row: the series (sorted as the hours) and their row counts, then every hour's
#: columns as one array each. The hours are sorted once; the aggregates over the materialized
#: CTE take its rows in that order (no join in between), so none of them sorts again.
_ROLLUP_TABLE = """
WITH hours AS MATERIALIZED ({hours}),
series AS (SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,
                  count(*)::int8 AS size
           FROM hours GROUP BY entity_id, attribute, dataset_id
           ORDER BY entity_id, attribute, dataset_id)
SELECT keys.*, flat.* FROM
  (SELECT array_agg(entity_id), array_agg(attribute), array_agg(dataset_id),
          array_agg(entity_type), array_agg(size) FROM series) AS keys,
  (SELECT array_agg(bucket), array_agg(n::int8), array_agg(numbers::int8),
          array_agg(coalesce(total, 'NaN')), array_agg(coalesce(squares, 'NaN')),
          array_agg(coalesce(lowest, 'NaN')), array_agg(coalesce(highest, 'NaN'))
   FROM hours) AS flat
"""


#: The same summary columns computed in SQL over raw rows, one bucket per fixed period
#: (`date_bin`, PostgreSQL 14+; core PostgreSQL, so on TimescaleDB too).
_BINNED = (
    "SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,"
    " date_bin(%s, observed_at, %s) AS bucket,"
    " count(*) AS n, count(value_num) AS numbers, sum(value_num) AS total,"
    " sum(value_num * value_num) AS squares, min(value_num) AS lowest,"
    " max(value_num) AS highest FROM observations WHERE {where}"
    " GROUP BY entity_id, attribute, dataset_id, bucket"
    " ORDER BY entity_id, attribute, dataset_id, bucket"
)


async def fetch_rollup_table(
    conn: AsyncConnection[Any],
    backend_name: str,
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> RollupTable:
    """Hourly rollups with start <= bucket < end of every series, in one table."""
    table = sql.Identifier(_ROLLUP_TABLES[backend_name])
    where, params = _selection(tenant, entity_ids, attributes, start, end, "bucket")
    hours = sql.SQL(_ROLLUP_HOURS[backend_name]).format(table=table, where=where)
    return await _summary_table(conn, hours, params)


async def fetch_binned_table(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime,
    end: datetime,
    stride: timedelta,
) -> RollupTable:
    """Raw rows summarized per `stride` from `start` in SQL (the fixed periods of an
    aggregation that hourly rollups cannot answer), in the rollup table's shape."""
    where, params = _selection(tenant, entity_ids, attributes, start, end, "observed_at")
    binned = sql.SQL(_BINNED).format(where=where)
    return await _summary_table(conn, binned, [stride, start, *params])


async def _summary_table(
    conn: AsyncConnection[Any], summaries: sql.Composable, params: list[Any]
) -> RollupTable:
    query = sql.SQL(_ROLLUP_TABLE).format(hours=summaries)
    rows = await _fetch_arrays(conn, query, params)
    entities, names, datasets, types, sizes, *columns = rows[0]
    if entities is None:
        empty_times = np.empty(0, dtype="datetime64[us]")
        empty_counts = np.empty(0, dtype=np.int64)
        floats = [np.empty(0) for _ in range(4)]
        return RollupTable([], [], empty_counts, empty_times, empty_counts, empty_counts, *floats)
    keys = list(zip(entities, names, datasets, strict=True))
    series = np.repeat(np.arange(len(keys), dtype=np.int64), sizes)
    buckets = columns[0]
    later = (series[1:] != series[:-1]) | (buckets[1:] > buckets[:-1])
    if len(series) != len(buckets) or not later.all():
        raise RuntimeError("rollup rows came back out of order")
    return RollupTable(keys, list(types), series, *columns)


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
    table = await fetch_rollup_table(conn, backend_name, tenant, entity_ids, attributes, start, end)
    offsets = np.cumsum(np.bincount(table.series, minlength=len(table.keys)))
    columns = (
        table.buckets,
        table.observation_counts,
        table.value_counts,
        table.sums,
        table.sum_squares,
        table.mins,
        table.maxs,
    )
    found = {}
    for index, key in enumerate(table.keys):
        rows = slice(int(offsets[index - 1]) if index else 0, int(offsets[index]))
        found[key] = RollupSeries(table.entity_types[index], *(c[rows] for c in columns))
    return found


# --- the n newest or oldest of each series ----------------------------------------------------

#: The series of the entities, found by skipping along the primary key: one index probe
#: per series (from each entity to its next attribute and datasetId) instead of reading every
#: row of the entities. Then each series reads only its n newest (or oldest) rows.
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
#: Each series' n first rows in {direction} order of time, as arrays oldest first.
_END_OF_SERIES = """
SELECT s.entity_id, s.attribute, s.dataset_id, chosen.* FROM series AS s
CROSS JOIN LATERAL (SELECT {arrays} FROM (
  SELECT * FROM observations
  WHERE tenant = %(tenant)s AND entity_id = s.entity_id AND attribute = s.attribute
    AND dataset_id = s.dataset_id
    AND observed_at >= %(start)s::timestamptz AND observed_at < %(end)s::timestamptz
  ORDER BY observed_at {direction} LIMIT %(n)s) AS picked) AS chosen
WHERE chosen.times IS NOT NULL ORDER BY 1, 2, 3
"""


async def _fetch_end(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    n: int,
    start: datetime | None,
    end: datetime | None,
    *,
    newest: bool,
) -> dict[SeriesKey, Series]:
    """Per series the `n` newest (or oldest) instances in [start, end), oldest first."""
    series = _SERIES_OF_ENTITIES if attributes is None else _SERIES_OF_ATTRIBUTES
    query = sql.SQL(series + _END_OF_SERIES).format(
        arrays=sql.SQL(_SERIES_ARRAYS), direction=sql.SQL("DESC" if newest else "ASC")
    )
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
    return await _fetch_end(conn, tenant, entity_ids, attributes, n, start, end, newest=True)


async def fetch_first_n(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    n: int,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, Series]:
    """Per series the `n` oldest instances in [start, end), oldest first (forward paging)."""
    return await _fetch_end(conn, tenant, entity_ids, attributes, n, start, end, newest=False)


# --- about the history ------------------------------------------------------------------------


async def history_entity_type(
    conn: AsyncConnection[Any], tenant: str, entity_id: str
) -> str | None:
    """The entity type of an entity's history, or None when it has none."""
    cursor = await conn.execute(
        "SELECT entity_type FROM observations WHERE tenant = %s AND entity_id = %s LIMIT 1",
        (tenant, entity_id),
    )
    row = await cursor.fetchone()
    return str(row[0]) if row else None


async def rollup_backend(conn: AsyncConnection[Any]) -> str:
    """The backend name fetch_rollups needs: "timescaledb" when `observations_hourly`
    exists, else "postgres" (`observation_rollups`)."""
    cursor = await conn.execute("SELECT to_regclass('observations_hourly') IS NOT NULL")
    row = await cursor.fetchone()
    return "timescaledb" if row and row[0] else "postgres"
