"""Hourly and daily rollups, and per-period summaries computed in SQL, for the temporal API's
aggregations (docs/temporal.md, "Choosing the path"): many series in one flat table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection, sql

from storage.hour_packs import fetch_packed_table
from storage.rollup_table import (
    ALL_FLOATS,
    EMPTY,
    FLOAT_COLUMNS,
    RollupTable,
    number_series,
    sorted_table,
)
from storage.temporal_arrays import LARGE_READ, fetch_arrays, selection, work_mem_for
from storage.temporal_series import RollupSeries, SeriesKey

_ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}
_DAILY_TABLES = {"postgres": "observation_daily_rollups", "timescaledb": "observations_daily"}
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

#: A half-open time range; None for an open bound.
OpenRange = tuple[datetime | None, datetime | None]


#: The rows of one rollup table in a time range, in the summary columns.
_ROLLUP_ROWS = (
    "SELECT entity_id, attribute, dataset_id, bucket,"
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
    "timescaledb": "SELECT entity_id, attribute, dataset_id, bucket, sum(n) AS n,"
    " sum(numbers) AS numbers, sum(total) AS total,"
    " sum(squares) AS squares, min(lowest) AS lowest, max(highest) AS highest"
    " FROM ({rows}) AS parts GROUP BY entity_id, attribute, dataset_id, bucket",
}
#: One answer row: the series sorted (arrays of their keys), then every bucket's series
#: number and columns as one array each, and the zone of the daily rollups (checked in this
#: statement's snapshot: the days read are days of that zone). Only the series are sorted
#: here, by their text keys; the buckets are sorted by (series number, time) in numpy.
#: Sorting 24,000 buckets by their text keys took PostgreSQL 25-50 ms (a common prefix
#: defeats abbreviated keys), numbering them through a hash join a few. Used when the
#: request names no attributes.
_ROLLUP_TABLE = """
WITH hours AS MATERIALIZED ({hours}),
series AS MATERIALIZED (
  SELECT entity_id, attribute, dataset_id,
         row_number() OVER (ORDER BY entity_id, attribute, dataset_id) - 1 AS number
  FROM hours GROUP BY entity_id, attribute, dataset_id)
SELECT keys.*, flat.*, (SELECT zone FROM daily_rollup_zone) FROM
  (SELECT array_agg(entity_id ORDER BY number), array_agg(attribute ORDER BY number),
          array_agg(dataset_id ORDER BY number)
   FROM series) AS keys,
  (SELECT array_agg(series.number), array_agg(bucket), array_agg(n::int8),
          array_agg(numbers::int8), {floats}
   FROM hours JOIN series USING (entity_id, attribute, dataset_id)) AS flat
"""
#: The same answer when the request names its attributes: each bucket gets the positions of
#: its entity (a hash join with the request's list) and of its attribute (array_position in
#: the request's few) and its datasetId only where it is not the default; numpy numbers the
#: series. Nothing wide is materialized, grouped or sorted: half the time of _ROLLUP_TABLE
#: for 1,000 series x 24 hours (25 against 50 ms, measured).
_KEYED_TABLE = """
WITH entities AS (
  SELECT entity_id, position FROM unnest(%b::text[]) WITH ORDINALITY AS e(entity_id, position))
SELECT array_agg(entities.position), array_agg(array_position(%b::text[], attribute)::int8),
       array_agg(dataset_id <> ''), array_agg(dataset_id) FILTER (WHERE dataset_id <> ''),
       array_agg(bucket), array_agg(n::int8), array_agg(numbers::int8), {floats},
       (SELECT zone FROM daily_rollup_zone)
FROM ({hours}) AS hours JOIN entities USING (entity_id)
"""
#: The same summary columns computed in SQL over raw rows, one bucket per fixed period
#: (`date_bin`, PostgreSQL 14+; core PostgreSQL, so on TimescaleDB too).
_BINNED = (
    "SELECT entity_id, attribute, dataset_id, date_bin(%s, observed_at, %s) AS bucket,"
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
    of `zone`, so the days would be other days than the caller's. Named attributes of one
    range of hours on plain PostgreSQL are read from their hour packs (storage/hour_packs.py).
    """
    if backend_name == "postgres" and attributes is not None and len(hours) == 1 and not days:
        ((start, end),) = hours
        return await fetch_packed_table(conn, tenant, entity_ids, attributes, start, end, floats)
    buckets = sum(_span(start, end, HOUR) for start, end in hours) + sum(
        _span(start, end, DAY) for start, end in days
    )
    work_mem = work_mem_for(len(entity_ids) * len(attributes or "a") * buckets)
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
    table, stored_zone = await _summary_table(
        conn, summaries, params, entity_ids, attributes, work_mem, floats
    )
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
    table, _ = await _summary_table(
        conn, binned, [stride, start, *params], entity_ids, attributes, work_mem_for(size), floats
    )
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
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    work_mem: str | None,
    floats: frozenset[str] = ALL_FLOATS,
) -> tuple[RollupTable, str | None]:
    """The summaries of the selected series (`attributes` None: all) as a table, and the
    zone of the daily rollups; float columns not in `floats` are zeros; `work_mem` for large
    reads (storage/temporal_arrays.py)."""
    arrays = sql.SQL(", ").join(
        sql.SQL("array_agg(coalesce({}, 'NaN'))").format(sql.Identifier(name))
        if name in floats
        else sql.SQL("NULL::float8[]")
        for name in FLOAT_COLUMNS
    )
    if attributes is None:
        query = sql.SQL(_ROLLUP_TABLE).format(hours=summaries, floats=arrays)
        rows = await fetch_arrays(conn, query, params, work_mem=work_mem)
        entities, names, datasets, series, *columns, zone = rows[0]
        if entities is None:
            return EMPTY, zone
        keys = list(zip(entities, names, datasets, strict=True))
        return sorted_table(keys, series, columns), zone
    attributes = list(dict.fromkeys(attributes))
    entity_ids = list(dict.fromkeys(entity_ids))
    query = sql.SQL(_KEYED_TABLE).format(hours=summaries, floats=arrays)
    rows = await fetch_arrays(conn, query, [entity_ids, attributes, *params], work_mem=work_mem)
    entity_at, attribute_at, has_dataset, datasets, *columns, zone = rows[0]
    if entity_at is None:
        return EMPTY, zone
    keys, series = number_series(entity_ids, attributes, entity_at, attribute_at,
                                  has_dataset, datasets)  # fmt: skip
    return sorted_table(keys, series, columns), zone


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
        found[key] = RollupSeries(*(c[rows] for c in columns))
    return found
