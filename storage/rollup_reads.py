"""Hourly rollups, and per-period summaries computed in SQL, for the temporal API's
aggregations (docs/temporal.md, "Choosing the path"): many series in one flat table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection, sql

from storage.temporal_arrays import fetch_arrays, selection
from storage.temporal_series import RollupSeries, SeriesKey

_ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}


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
    where, params = selection(tenant, entity_ids, attributes, start, end, "bucket")
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
    where, params = selection(tenant, entity_ids, attributes, start, end, "observed_at")
    binned = sql.SQL(_BINNED).format(where=where)
    return await _summary_table(conn, binned, [stride, start, *params])


async def _summary_table(
    conn: AsyncConnection[Any], summaries: sql.Composable, params: list[Any]
) -> RollupTable:
    query = sql.SQL(_ROLLUP_TABLE).format(hours=summaries)
    rows = await fetch_arrays(conn, query, params)
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
