"""Hourly and daily rollups, and per-period summaries computed in SQL, for the temporal API's
aggregations (docs/temporal.md, "Choosing the path"): many series in one flat table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection, sql

from storage.temporal_arrays import fetch_arrays, selection
from storage.temporal_series import RollupSeries, SeriesKey

_ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}
_DAILY_TABLES = {"postgres": "observation_daily_rollups", "timescaledb": "observations_daily"}
#: Reads of about this many rows or more sort with more memory than the default 4 MB.
LARGE_READ = 10_000
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

#: A half-open time range; None for an open bound.
OpenRange = tuple[datetime | None, datetime | None]


@dataclass(frozen=True, slots=True)
class RollupTable:
    """Rollups of many series in flat arrays, sorted by series then bucket (NaN where a
    bucket has no number): row i belongs to `keys[series[i]]`. A bucket is a UTC hour, or
    a local day of the daily rollups' zone where the reader asked for days."""

    keys: list[SeriesKey]
    entity_types: list[str]
    series: np.ndarray  # int64, index into keys
    buckets: np.ndarray  # datetime64[us], the start of each hour (or day)
    observation_counts: np.ndarray  # int64, every instance
    value_counts: np.ndarray  # int64, the numeric ones, which the rest summarize
    sums: np.ndarray
    sum_squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


#: The rows of one rollup table in a time range, in the summary columns.
_ROLLUP_ROWS = (
    "SELECT entity_id, attribute, dataset_id, entity_type, bucket,"
    " observation_count AS n, value_count AS numbers, {floats} FROM {table} WHERE {where}"
)
#: The rollup tables' float column behind each summary column.
_SOURCES = {
    "total": "value_sum",
    "squares": "value_sum_squares",
    "lowest": "value_min",
    "highest": "value_max",
}
#: One row per series and bucket, in no order. The continuous aggregates have a row per
#: entity type as well, so they are grouped again per bucket; `observation_rollups` has one
#: row per series and hour (its primary key).
_ROLLUP_HOURS = {
    "postgres": "{rows}",
    "timescaledb": "SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,"
    " bucket, sum(n) AS n, sum(numbers) AS numbers, sum(total) AS total,"
    " sum(squares) AS squares, min(lowest) AS lowest, max(highest) AS highest"
    " FROM ({rows}) AS parts GROUP BY entity_id, attribute, dataset_id, bucket",
}
#: One answer row: the series sorted (arrays of their keys), then every bucket's series
#: number and columns as one array each, and the zone of the daily rollups (checked in this
#: statement's snapshot: the days read are days of that zone). Only the series are sorted
#: here, by their text keys; the buckets are sorted by (series number, time) in numpy.
#: Sorting 24,000 buckets by their text keys took PostgreSQL 25-50 ms (a common prefix
#: defeats abbreviated keys), numbering them through a hash join a few.
_ROLLUP_TABLE = """
WITH hours AS MATERIALIZED ({hours}),
series AS MATERIALIZED (
  SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,
         row_number() OVER (ORDER BY entity_id, attribute, dataset_id) - 1 AS number
  FROM hours GROUP BY entity_id, attribute, dataset_id)
SELECT keys.*, flat.*, (SELECT zone FROM daily_rollup_zone) FROM
  (SELECT array_agg(entity_id ORDER BY number), array_agg(attribute ORDER BY number),
          array_agg(dataset_id ORDER BY number), array_agg(entity_type ORDER BY number)
   FROM series) AS keys,
  (SELECT array_agg(series.number), array_agg(bucket), array_agg(n::int8),
          array_agg(numbers::int8), {floats}
   FROM hours JOIN series USING (entity_id, attribute, dataset_id)) AS flat
"""
#: The float columns in RollupTable order, and the methods that need each: a column no
#: requested method needs is not collected (NULL, zeros in numpy).
FLOAT_COLUMNS = {
    "total": frozenset({"sum", "avg", "stddev"}),
    "squares": frozenset({"sumsq", "stddev"}),
    "lowest": frozenset({"min"}),
    "highest": frozenset({"max"}),
}
ALL_FLOATS = frozenset(FLOAT_COLUMNS)


def float_columns(methods: Iterable[str]) -> frozenset[str]:
    """The float columns the rollup-servable `methods` need."""
    wanted = set(methods)
    return frozenset(name for name, needs in FLOAT_COLUMNS.items() if needs & wanted)


#: The same summary columns computed in SQL over raw rows, one bucket per fixed period
#: (`date_bin`, PostgreSQL 14+; core PostgreSQL, so on TimescaleDB too).
_BINNED = (
    "SELECT entity_id, attribute, dataset_id, min(entity_type) AS entity_type,"
    " date_bin(%s, observed_at, %s) AS bucket,"
    " count(*) AS n, count(value_num) AS numbers, sum(value_num) AS total,"
    " sum(value_num * value_num) AS squares, min(value_num) AS lowest,"
    " max(value_num) AS highest FROM observations WHERE {where}"
    " GROUP BY entity_id, attribute, dataset_id, bucket"
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
    table = await fetch_tiers(
        conn, backend_name, tenant, entity_ids, attributes, [(start, end)], [], None
    )
    assert table is not None  # no days asked, so no zone to check
    return table


async def fetch_tiers(
    conn: AsyncConnection[Any],
    backend_name: str,
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    hours: Sequence[OpenRange],
    days: Sequence[tuple[datetime, datetime]],
    zone: str | None,
    floats: frozenset[str] = ALL_FLOATS,
) -> RollupTable | None:
    """Daily rollups with bucket in `days` and hourly ones with bucket in `hours` (disjoint
    ranges) in one table, sorted by series then bucket, with the float columns `floats`
    (float_columns; the others zeros); None when the daily rollups are not (or no longer)
    of `zone`, so the days would be other days than the caller's."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    # Columns no method needs stay NULL: fewer bytes through the statement's every step.
    columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(
            sql.Identifier(source) if name in floats else sql.SQL("NULL::float8"),
            sql.Identifier(name),
        )
        for name, source in _SOURCES.items()
    )
    for tables, ranges in ((_ROLLUP_TABLES, hours), (_DAILY_TABLES, days)):
        name = sql.Identifier(tables[backend_name])
        for start, end in ranges:
            where, part = selection(tenant, entity_ids, attributes, start, end, "bucket")
            parts.append(sql.SQL(_ROLLUP_ROWS).format(floats=columns, table=name, where=where))
            params.extend(part)
    if not parts:
        raise ValueError("a rollup read needs at least one time range")
    rows = sql.SQL(" UNION ALL ").join(parts)
    summaries = sql.SQL(_ROLLUP_HOURS[backend_name]).format(rows=rows)
    buckets = sum(_span(start, end, HOUR) for start, end in hours) + sum(
        _span(start, end, DAY) for start, end in days
    )
    size = len(entity_ids) * len(attributes or "a") * buckets
    table, stored_zone = await _summary_table(conn, summaries, params, size, floats)
    if days and stored_zone != zone:
        return None
    return table


async def fetch_binned_table(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime,
    end: datetime,
    stride: timedelta,
    floats: frozenset[str] = ALL_FLOATS,
) -> RollupTable:
    """Raw rows summarized per `stride` from `start` in SQL (the fixed periods of an
    aggregation that hourly rollups cannot answer), in the rollup table's shape."""
    where, params = selection(tenant, entity_ids, attributes, start, end, "observed_at")
    binned = sql.SQL(_BINNED).format(where=where)
    size = len(entity_ids) * len(attributes or "a") * _span(start, end, stride)
    table, _ = await _summary_table(conn, binned, [stride, start, *params], size, floats)
    return table


def _span(start: datetime | None, end: datetime | None, step: timedelta) -> int:
    """About how many buckets of `step` a range holds (open ones: many)."""
    if start is None or end is None:
        return LARGE_READ
    return max(int((end - start) / step), 1)


async def _summary_table(
    conn: AsyncConnection[Any],
    summaries: sql.Composable,
    params: list[Any],
    size: int,
    floats: frozenset[str] = ALL_FLOATS,
) -> tuple[RollupTable, str | None]:
    """The summaries (about `size` rows) as a table, and the zone of the daily rollups;
    float columns not in `floats` are zeros."""
    arrays = sql.SQL(", ").join(
        sql.SQL("array_agg(coalesce({}, 'NaN'))").format(sql.Identifier(name))
        if name in floats
        else sql.SQL("NULL::float8[]")
        for name in FLOAT_COLUMNS
    )
    query = sql.SQL(_ROLLUP_TABLE).format(hours=summaries, floats=arrays)
    work_mem = "32MB" if size >= LARGE_READ else None
    rows = await fetch_arrays(conn, query, params, work_mem=work_mem)
    entities, names, datasets, types, series, *columns, zone = rows[0]
    if entities is None:
        empty_times = np.empty(0, dtype="datetime64[us]")
        empty_counts = np.empty(0, dtype=np.int64)
        nothing = [np.empty(0) for _ in range(4)]
        empty = RollupTable([], [], empty_counts, empty_times, empty_counts, empty_counts, *nothing)
        return empty, zone
    keys = list(zip(entities, names, datasets, strict=True))
    order = np.lexsort((columns[0], series))
    sorted_columns = [
        column[order] if column is not None else np.zeros(len(order)) for column in columns
    ]
    return RollupTable(keys, list(types), series[order], *sorted_columns), zone


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
