"""Reads of the observation history for the temporal API (docs/temporal.md).

Reads return numpy arrays per series (tenant, entity_id, attribute, dataset_id), for
ngsi/aggregate.py: one row per series whose columns are arrays (`array_agg`), fetched in
binary and turned into numpy by `frombuffer`, so no Python object is made per reading
(except the values that are not numbers, and only in series that have some). Times are
datetime64[us] in UTC; windows are half-open `[start, end)`, None meaning open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection, sql

from storage.temporal_arrays import fetch_arrays, selection
from storage.temporal_series import Series, SeriesKey

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
    where, params = selection(tenant, entity_ids, attributes, start, end, "observed_at")
    rows = sql.SQL(_SORTED_ROWS).format(columns=sql.SQL(_NUMBER_COLUMNS), where=where)
    found = await fetch_arrays(conn, sql.SQL(_RAW_NUMBERS).format(rows=rows), params)
    series = {
        (entity, attribute, dataset): Series(kind, times, values, None, unit_code, None)
        for entity, attribute, dataset, kind, times, values, _, unit_code, _ in found
    }
    wanted = [row[:3] for row in found if row[6] or row[8]]
    if not wanted:
        return series
    entities, names, datasets = (list(column) for column in zip(*wanted, strict=True))
    where, params = selection(tenant, entities, names, start, end, "observed_at")
    where = sql.SQL(
        "{} AND (entity_id, attribute, dataset_id) IN"
        " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
    ).format(where)
    rows = sql.SQL(_SORTED_ROWS).format(columns=sql.SQL(_OTHER_COLUMNS), where=where)
    others = await fetch_arrays(
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
    where, params = selection(tenant, entity_ids, attributes, start, end, "observed_at")
    query = sql.SQL(
        "SELECT entity_id, attribute, dataset_id, {arrays} FROM observations WHERE {where}"
        " GROUP BY entity_id, attribute, dataset_id ORDER BY entity_id, attribute, dataset_id"
    ).format(arrays=sql.SQL(_SERIES_ARRAYS), where=where)
    rows = await fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): _series(row[3:]) for row in rows}


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
    rows = await fetch_arrays(conn, query, params)
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
