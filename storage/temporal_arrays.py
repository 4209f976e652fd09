"""Observation history in binary arrays: the shared base of the temporal reads.

A read returns one row per series whose columns are arrays (`array_agg`), fetched in binary
and turned into numpy by `frombuffer`, so no Python object is made per reading. Times are
datetime64[us] in UTC; windows are half-open `[start, end)`, None meaning open.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

#: PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_POSTGRES_EPOCH_US = 946_684_800_000_000


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


class _BoolArrayLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return _array_items(data, "?")


_ARRAY_LOADERS: dict[str, type[Loader]] = {
    "bool": _BoolArrayLoader,
    "float8": _Float8ArrayLoader,
    "int8": _Int8ArrayLoader,
    "timestamptz": _TimestamptzArrayLoader,
}


#: Reads of about this many rows or more sort and hash with more memory than the default 4 MB.
LARGE_READ = 10_000


def work_mem_for(rows: int) -> str | None:
    """The `work_mem` of fetch_arrays for a read of about `rows` rows: 32 MB when large;
    None (the default, and no transaction around the read) otherwise."""
    return "32MB" if rows >= LARGE_READ else None


async def fetch_arrays(
    conn: AsyncConnection[Any],
    query: sql.Composed,
    params: Sequence[Any] | dict[str, Any],
    *,
    work_mem: str | None = None,
) -> list[tuple[Any, ...]]:
    """The rows of `query` with float8, int8, bool and timestamptz arrays as numpy arrays;
    `work_mem` (e.g. "32MB") for this statement only, in a transaction of its own, which
    also keeps the planner from merge joins: the row counts of materialized CTEs are
    guesses, and a merge join sorts by text keys the rows the statement joins to avoid
    sorting them (storage/rollup_reads.py; 10-15 % of a 1,000-series read, measured)."""
    if work_mem is None:
        return await _fetch_arrays(conn, query, params)
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('work_mem', %s, true), set_config('enable_mergejoin', 'off', true)",
            [work_mem],
        )
        return await _fetch_arrays(conn, query, params)


async def _fetch_arrays(
    conn: AsyncConnection[Any], query: sql.Composed, params: Sequence[Any] | dict[str, Any]
) -> list[tuple[Any, ...]]:
    async with conn.cursor(binary=True) as cursor:
        for name, loader in _ARRAY_LOADERS.items():
            info = psycopg.postgres.types[name]
            cursor.adapters.register_loader(info.array_oid, loader)
        # Never a prepared statement: a generic plan does not see the entity ids, and
        # checks `entity_id = ANY($n)` element by element on every row instead of through
        # a hash of the array: 200 ms instead of 76 for 1,000 series (measured).
        await cursor.execute(query, params, binary=True, prepare=False)
        return await cursor.fetchall()


# --- whole windows ----------------------------------------------------------------------------


def selection(
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    time_column: str,
) -> tuple[sql.Composable, list[Any]]:
    """WHERE conditions over `observations` or a rollup table, and their parameters. The id
    list goes in binary (`%b`): psycopg quotes each element of a text array with a regular
    expression, 1.7 ms for 1,000 ids against 0.17 ms in binary (measured)."""
    parts: list[sql.Composable] = [sql.SQL("tenant = %s AND entity_id = ANY(%b)")]
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
