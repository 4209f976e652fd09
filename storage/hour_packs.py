"""Hour packs (migration 0019, plain PostgreSQL): a series' 24 hourly rollups of a UTC day in
one row, for reads of many series (docs/temporal.md, "Choosing the path").

The hourly rollups (`observation_rollups`) stay the truth: every refresh that recomputes
hours of a tenant repacks, from them, the UTC days that hold those hours, in the same
transaction, and deleting a series' history deletes its packs with its rollups
(storage/temporal_writes.py). A reader therefore sees packs and hourly rows of one snapshot
agree, and skips the hours of pending ranges in both alike.

Reading 1,000 series for a day takes 2,000 rows (the window straddles two UTC days) instead
of 24,000. A pack's columns are 24 big-endian values as bytes (the binary send format of
bigint and double precision): a read concatenates each column of every pack into one bytea
(string_agg) that numpy reads as rows x 24, and keeps the hours in the window that hold
instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql

from storage.rollup_table import ALL_FLOATS, EMPTY, FLOAT_COLUMNS, RollupTable, number_series
from storage.temporal_arrays import LARGE_READ, fetch_arrays, work_mem_for
from storage.temporal_days import TimeRange, merge_ranges

DAY = timedelta(days=1)
#: The hours of a pack, as offsets from its day.
_SLOTS = np.arange(24) * np.timedelta64(3_600_000_000, "us")

_DELETE_PACKS = """
DELETE FROM observation_hour_packs
WHERE tenant = %(tenant)s AND day >= %(from)s AND day < %(to)s
"""
# Each series' day with its 24 slots, from the hourly rows (0 and NaN in hours without a
# row; stadspuls_hour_bytes, migration 0019, which fills the packs with the same statement).
_PACK_DAYS = """
INSERT INTO observation_hour_packs (tenant, entity_id, attribute, dataset_id, day,
    observation_counts, value_counts, value_sums, value_sums_squares, value_mins, value_maxs)
SELECT tenant, entity_id, attribute, dataset_id, day,
       stadspuls_hour_bytes(slots, counts, 0::int8), stadspuls_hour_bytes(slots, numbers, 0::int8),
       stadspuls_hour_bytes(slots, sums, 'NaN'::float8),
       stadspuls_hour_bytes(slots, squares, 'NaN'::float8),
       stadspuls_hour_bytes(slots, lows, 'NaN'::float8),
       stadspuls_hour_bytes(slots, highs, 'NaN'::float8)
FROM (SELECT tenant, entity_id, attribute, dataset_id, date_trunc('day', bucket, 'UTC') AS day,
             array_agg(extract(hour FROM bucket AT TIME ZONE 'UTC')::int) AS slots,
             array_agg(observation_count) AS counts,
             array_agg(value_count) AS numbers,
             array_agg(coalesce(value_sum, 'NaN')) AS sums,
             array_agg(coalesce(value_sum_squares, 'NaN')) AS squares,
             array_agg(coalesce(value_min, 'NaN')) AS lows,
             array_agg(coalesce(value_max, 'NaN')) AS highs
      FROM observation_rollups
      WHERE tenant = %(tenant)s AND bucket >= %(from)s AND bucket < %(to)s
      GROUP BY tenant, entity_id, attribute, dataset_id, day) AS days
"""
#: The pack columns behind each summary column (storage/rollup_table.py FLOAT_COLUMNS).
_SOURCES = {
    "total": "value_sums",
    "squares": "value_sums_squares",
    "lowest": "value_mins",
    "highest": "value_maxs",
}
#: One answer row, as storage/rollup_reads.py _KEYED_TABLE but a row per series and day:
#: the entity's position (a hash join with the request's list, which also selects the
#: entities: the list is sent once), the attribute's, the datasetId where not the default,
#: the day, and each bytes column of every pack concatenated (numpy reads rows x 24).
_PACKED_TABLE = """
WITH entities AS (
  SELECT entity_id, position
  FROM unnest(%(entities)b::text[]) WITH ORDINALITY AS e(entity_id, position))
SELECT array_agg(entities.position), array_agg(array_position(%(attributes)b, attribute)::int8),
       array_agg(dataset_id <> ''), array_agg(dataset_id) FILTER (WHERE dataset_id <> ''),
       array_agg(day), string_agg(observation_counts, ''), string_agg(value_counts, ''), {floats}
FROM observation_hour_packs JOIN entities USING (entity_id)
WHERE tenant = %(tenant)s AND attribute = ANY(%(attributes)b) {window}
"""


def floor_day(moment: datetime) -> datetime:
    """The start of the UTC day holding `moment`."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_holding(hours: Sequence[TimeRange]) -> list[TimeRange]:
    """The UTC days that hold the half-open `hours`, merged."""
    return merge_ranges(
        (floor_day(start), floor_day(end - timedelta(microseconds=1)) + DAY) for start, end in hours
    )


def repack_days(conn: psycopg.Connection[Any], tenant: str, hours: Sequence[TimeRange]) -> None:
    """Repack, from the hourly rows, the days that hold the just recomputed `hours`."""
    for start, end in days_holding(hours):
        bounds = {"tenant": tenant, "from": start, "to": end}
        conn.execute(_DELETE_PACKS, bounds)
        conn.execute(_PACK_DAYS, bounds)


async def fetch_packed_table(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    floats: frozenset[str] = ALL_FLOATS,
) -> RollupTable:
    """The hourly rollups with start <= bucket < end of the named series, from their packs,
    as storage/rollup_reads.py reads them from `observation_rollups`."""
    entity_ids = list(dict.fromkeys(entity_ids))
    attributes = list(dict.fromkeys(attributes))
    params: dict[str, Any] = {"tenant": tenant, "entities": entity_ids, "attributes": attributes}
    window = []
    if start is not None:
        window.append(sql.SQL("AND day >= %(first_day)s"))
        params["first_day"] = floor_day(start)
    if end is not None:
        window.append(sql.SQL("AND day < %(end)s"))
        params["end"] = end
    arrays = sql.SQL(", ").join(
        sql.SQL("string_agg({}, '')").format(sql.Identifier(_SOURCES[name]))
        if name in floats
        else sql.SQL("NULL::bytea")
        for name in FLOAT_COLUMNS
    )
    query = sql.SQL(_PACKED_TABLE).format(floats=arrays, window=sql.SQL(" ").join(window))
    # As large as the hours it unpacks: fetch_arrays then also keeps the planner from a merge
    # join, which sorted 2,000 packs by their ids (15 ms against 8 ms with a hash, measured).
    unpacked = len(entity_ids) * len(attributes) * _days_between(start, end) * 24
    rows = await fetch_arrays(conn, query, params, work_mem=work_mem_for(unpacked))
    entity_at, attribute_at, has_dataset, datasets, days, *packed = rows[0]
    if entity_at is None:
        return EMPTY
    counts = _slots(packed[0], ">i8")
    kinds = (">i8", ">f8", ">f8", ">f8", ">f8")  # value counts, then FLOAT_COLUMNS
    columns = [
        None if data is None else _slots(data, kind)
        for data, kind in zip(packed[1:], kinds, strict=True)
    ]
    keys, row_series = number_series(
        entity_ids, attributes, entity_at, attribute_at, has_dataset, datasets
    )
    # Packs in (series, day) order: their hours, row by row, are then in the table's order.
    order = np.lexsort((days, row_series))
    row_series, days, counts = row_series[order], days[order], counts[order]
    hours = days[:, np.newaxis] + _SLOTS
    inside = counts > 0
    if start is not None:
        inside &= hours >= np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "us")
    if end is not None:
        inside &= hours < np.datetime64(end.astimezone(UTC).replace(tzinfo=None), "us")
    pack_rows, _ = np.nonzero(inside)
    # Only the series with an hour in the window, numbered again (still in key order).
    used, series = np.unique(row_series[pack_rows], return_inverse=True)
    cells = [hours[inside], counts[inside]]
    no_floats = np.zeros(len(pack_rows))
    cells += [no_floats if column is None else column[order][inside] for column in columns]
    return RollupTable([keys[i] for i in used.tolist()], series, *cells)


def _slots(data: bytes, kind: str) -> np.ndarray:
    """Concatenated packs of one column (24 big-endian values each) as rows x 24."""
    return np.frombuffer(data, dtype=kind).reshape(-1, 24).astype(kind.lstrip(">"))


def _days_between(start: datetime | None, end: datetime | None) -> int:
    """How many UTC days of packs a window touches (open windows: many)."""
    if start is None or end is None:
        return LARGE_READ
    return (floor_day(end) - floor_day(start)).days + 1
