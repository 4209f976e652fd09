"""The refresh of the rollups (docs/temporal.md): recompute the quiet hours of pending ranges
(storage/rollups.py records them and plans which hours are quiet).

On plain PostgreSQL the hours are recomputed from `observations` into `observation_rollups`
in one transaction with the local days that hold them (storage/temporal_days.py) and the
hour packs of their UTC days (storage/hour_packs.py). On TimescaleDB the continuous
aggregates are refreshed over the late quiet hours, hours first, then the days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from storage.hour_packs import repack_days
from storage.rollups import (
    HOUR,
    TENANT_LOCK_CLASS,
    TimeRange,
    as_columns,
    floor_hour,
    plan_refresh,
)
from storage.temporal_days import (
    daily_zone_for_share,
    merge_ranges,
    recompute_days,
    refresh_daily_aggregate,
)

#: The session lock of the one refresher of TimescaleDB's continuous aggregates.
_CAGG_LOCK_CLASS = 0x63616767  # "cagg"

_INSERT_REMAINDER = """
INSERT INTO rollup_pending (tenant, from_ts, to_ts, recorded_at)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
"""
_CLAIM = """
SELECT id, tenant, from_ts, to_ts, recorded_at, now() FROM rollup_pending
ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_READ = """
SELECT id, tenant, from_ts, to_ts, recorded_at, now() FROM rollup_pending ORDER BY id LIMIT %s
"""
_DELETE_PENDING = "DELETE FROM rollup_pending WHERE id = ANY(%s)"
_TRY_LOCK_TENANT = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"
_KIND = """
SELECT to_regclass('observation_rollups') IS NOT NULL,
       to_regclass('observations_hourly') IS NOT NULL
"""
_DELETE_ROLLUPS = """
DELETE FROM observation_rollups WHERE tenant = %(tenant)s AND bucket >= %(from)s AND bucket < %(to)s
"""
# date_bin with a UTC origin: hours in UTC whatever the session's TimeZone, as time_bucket.
_RECOMPUTE = """
INSERT INTO observation_rollups (tenant, entity_id, entity_type, attribute, dataset_id, bucket,
    observation_count, value_count, value_sum, value_min, value_max, value_sum_squares)
SELECT tenant, entity_id, min(entity_type), attribute, dataset_id,
       date_bin('1 hour', observed_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       count(*), count(value_num), sum(value_num), min(value_num), max(value_num),
       sum(value_num * value_num)
FROM observations
WHERE tenant = %(tenant)s AND observed_at >= %(from)s AND observed_at < %(to)s
GROUP BY tenant, entity_id, attribute, dataset_id, bucket
"""
# The recompute reads every row of whole hours of a tenant: in physical order (bitmap scans)
# into a hash aggregate. The planner's estimates for the newest hours are stale (autoanalyze
# lags behind ingest) and make it pick an index scan and an on-disk sort instead: 4x slower,
# measured on 1.6M rows. An hour of a busy tenant is thousands of groups: the default 4 MB
# of work_mem spills the hash aggregate to disk (2x slower).
_RECOMPUTE_SETTINGS = """
SELECT set_config('work_mem', '64MB', true), set_config('enable_sort', 'off', true),
       set_config('enable_indexscan', 'off', true)
"""
_REFRESH_CAGG = (
    "CALL refresh_continuous_aggregate('observations_hourly', %s::timestamptz, %s::timestamptz)"
)


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    tenant: str
    start: datetime
    end: datetime
    recorded_at: datetime


def _by_tenant(rows: Sequence[tuple[Any, ...]]) -> dict[str, list[_Pending]]:
    groups: dict[str, list[_Pending]] = defaultdict(list)
    for row in rows:
        groups[row[1]].append(_Pending(*row[:5]))
    return dict(sorted(groups.items()))


def _stamped(pending: Sequence[_Pending]) -> list[tuple[datetime, datetime, datetime]]:
    return [(p.start, p.end, p.recorded_at) for p in pending]


def refresh_rollups(
    conn: psycopg.Connection[Any],
    *,
    limit: int = 1000,
    settle: timedelta = timedelta(seconds=30),
    max_hours: int = 24,
) -> int:
    """Recompute the quiet hours of up to `limit` pending ranges and commit; the ranges taken.

    Needs an idle connection of its own. Safe to run in several workers at once: pending
    rows are claimed with SKIP LOCKED, and a tenant another worker is refreshing is skipped.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("refresh_rollups needs a connection outside any transaction")
    with conn.transaction():
        row = conn.execute(_KIND).fetchone()
        has_table, has_cagg = row if row else (False, False)
        if has_table:
            return _refresh_table(conn, limit, settle, max_hours)
    if has_cagg:
        return _refresh_continuous_aggregate(conn, limit, settle, max_hours)
    raise RuntimeError("neither observation_rollups nor observations_hourly exists: migrate")


def _refresh_table(
    conn: psycopg.Connection[Any],
    limit: int,
    settle: timedelta,
    max_hours: int,
) -> int:
    """Plain PostgreSQL, inside the caller's transaction: recompute into observation_rollups."""
    rows = conn.execute(_CLAIM, [limit]).fetchall()
    if not rows:
        return 0
    conn.execute(_RECOMPUTE_SETTINGS)
    zone = daily_zone_for_share(conn)
    quiet_before = rows[0][5] - settle
    taken: list[int] = []
    remainder: list[tuple[str, datetime, datetime, datetime]] = []
    for tenant, pending in _by_tenant(rows).items():
        locked = conn.execute(_TRY_LOCK_TENANT, (TENANT_LOCK_CLASS, tenant)).fetchone()
        if not (locked and locked[0]):
            continue  # another worker recomputes this tenant now; its rows stay for later
        plan = plan_refresh(_stamped(pending), quiet_before, max_hours)
        for start, end in plan.recompute:
            bounds = {"tenant": tenant, "from": start, "to": end}
            conn.execute(_DELETE_ROLLUPS, bounds)
            conn.execute(_RECOMPUTE, bounds)
        recompute_days(conn, tenant, zone, plan.recompute)
        repack_days(conn, tenant, plan.recompute)
        taken.extend(p.id for p in pending)
        remainder.extend((tenant, *kept) for kept in plan.remainder)
    if taken:
        conn.execute(_DELETE_PENDING, [taken])
    if remainder:
        conn.execute(_INSERT_REMAINDER, as_columns(remainder))
    return len(taken)


def _refresh_continuous_aggregate(
    conn: psycopg.Connection[Any], limit: int, settle: timedelta, max_hours: int
) -> int:
    """TimescaleDB: refresh observations_hourly over late quiet hours (outside a transaction)."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", [_CAGG_LOCK_CLASS]).fetchone()
        if not (locked and locked[0]):
            return 0  # another worker is refreshing
        try:
            return _refresh_claimed_cagg(conn, limit, settle, max_hours)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", [_CAGG_LOCK_CLASS])
    finally:
        conn.autocommit = autocommit


def _refresh_claimed_cagg(
    conn: psycopg.Connection[Any], limit: int, settle: timedelta, max_hours: int
) -> int:
    rows = conn.execute(_READ, [limit]).fetchall()
    if not rows:
        return 0
    now = rows[0][5]
    # The refresh policy (0002) materializes up to an hour ago: later hours are answered by
    # real-time aggregation from the raw rows, and need nothing.
    realtime_from = floor_hour(now - HOUR)
    windows: list[TimeRange] = []
    remainder: list[tuple[str, datetime, datetime, datetime]] = []
    pending = _by_tenant(rows)
    for tenant, ranges in pending.items():
        plan = plan_refresh(_stamped(ranges), now - settle, max_hours, realtime_from)
        windows.extend(plan.recompute)
        remainder.extend((tenant, *kept) for kept in plan.remainder)
    for start, end in merge_ranges(windows):
        conn.execute(_REFRESH_CAGG, (start, end))
    refresh_daily_aggregate(conn, merge_ranges(windows), realtime_from)
    with conn.transaction():
        conn.execute(_DELETE_PENDING, [[p.id for group in pending.values() for p in group]])
        if remainder:
            conn.execute(_INSERT_REMAINDER, as_columns(remainder))
    return len(rows)
