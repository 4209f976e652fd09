"""Upkeep of the hourly and daily rollups: pending ranges, their refresh, and what readers
must read raw.

Every transaction that changes `observations` records the time ranges it touched, per
tenant, in `rollup_pending` (`record_pending`). `refresh_rollups` (storage/rollup_refresh.py)
recomputes the hours of those ranges from the raw rows and removes them: on plain PostgreSQL
into `observation_rollups` (DELETE + INSERT ... SELECT ... GROUP BY per merged range), on
TimescaleDB by refreshing the continuous aggregate `observations_hourly` over late ranges.
Recomputing from the raw rows makes it idempotent: redelivered and late readings are counted
exactly once. Readers use a rollup hour only when no pending range of its tenant overlaps
it (`pending_overlaps`); otherwise they read that hour raw (docs/temporal.md).

Hour packs (a series' 24 hours of a UTC day in one row; migration 0019) are repacked on plain
PostgreSQL by the refresh that recomputes their hours (storage/hour_packs.py).

Daily rollups (one time zone, `daily_rollup_zone`; migration 0016) are kept with the hourly
ones: on plain PostgreSQL the refresh that recomputes hours also recomputes, from the hourly
rows, every local day that holds them (`observation_daily_rollups`); on TimescaleDB it
refreshes the continuous aggregate `observations_daily` over those days. Readers use a day
only when no pending range of its tenant overlaps it, so a day is never read while some of
its hours wait for their refresh.

An hour is recomputed once it has been quiet (no range recorded for it) for `settle`: the
current hour, which every ingest batch touches, is then recomputed once, shortly after it
ends, rather than every few seconds (readers read it raw meanwhile, as TimescaleDB's
real-time aggregation does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import AsyncConnection

from storage.temporal_days import (
    merge_ranges,
)

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)

#: (tenant, from, to): a half-open range of observed times of one tenant.
TenantRange = tuple[str, datetime, datetime]
#: (from, to): a half-open time range.
TimeRange = tuple[datetime, datetime]

#: Advisory lock class (two-int4 keys, a space apart from the one-int8 schema lock): per
#: tenant (key 2: hashtext(tenant)) around changes to its rows of observation_rollups.
TENANT_LOCK_CLASS = 0x726F6C6C  # "roll"


#: A batch whose readings of one tenant span more than this is recorded as the runs of hours
#: it really touches (one device with a wrong clock must not make the refresh recompute
#: years); below it, one range from the oldest to the newest reading.
MAX_SINGLE_RANGE = timedelta(hours=3)

_TENANT = itemgetter(0)
_OBSERVED_AT = itemgetter(5)  # ObservationRow.observed_at

_INSERT_PENDING = """
INSERT INTO rollup_pending (tenant, from_ts, to_ts)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])
"""
_OVERLAPS = """
SELECT from_ts, to_ts FROM rollup_pending
WHERE tenant = %s AND to_ts > %s AND from_ts < %s
"""
LOCK_TENANT = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_STATE = """
SELECT (SELECT zone FROM daily_rollup_zone), pending.from_ts, pending.to_ts
FROM (SELECT 1) AS one LEFT JOIN rollup_pending AS pending
  ON pending.tenant = %s AND pending.to_ts > %s AND pending.from_ts < %s
"""


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_of(start: datetime, end: datetime) -> TimeRange:
    """The whole UTC hours a half-open range touches, as a half-open range."""
    return floor_hour(start), floor_hour(end - MICROSECOND) + HOUR


def tenant_ranges(rows: Sequence[Sequence[Any]]) -> list[TenantRange]:
    """Per tenant, the range of observed times of rows in ObservationRow order (cheap: C loops)."""
    if not rows:
        return []
    tenants = set(map(_TENANT, rows))
    groups: dict[str, list[datetime]]
    if len(tenants) == 1:
        groups = {tenants.pop(): list(map(_OBSERVED_AT, rows))}
    else:
        groups = defaultdict(list)
        for row in rows:
            groups[row[0]].append(row[5])
    ranges: list[TenantRange] = []
    for tenant in sorted(groups):
        times = groups[tenant]
        first, last = min(times), max(times)
        if last - first <= MAX_SINGLE_RANGE:
            ranges.append((tenant, first, last + MICROSECOND))
        else:
            hours = {floor_hour(moment) for moment in times}
            ranges.extend((tenant, *run) for run in merge_ranges((h, h + HOUR) for h in hours))
    return ranges


def clip_ranges(
    ranges: Iterable[TenantRange], bounds: dict[str, tuple[datetime, datetime]]
) -> list[TenantRange]:
    """`ranges` cut to each tenant's [oldest, newest] written; tenants without bounds dropped."""
    clipped: list[TenantRange] = []
    for tenant, start, end in ranges:
        if tenant in bounds:
            oldest, newest = bounds[tenant]
            start, end = max(start, oldest), min(end, newest + MICROSECOND)
            if start < end:
                clipped.append((tenant, start, end))
    return clipped


def as_columns(ranges: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column (the parameters of an INSERT ... SELECT FROM unnest)."""
    return [list(column) for column in zip(*ranges, strict=True)]


def record_pending(cursor: psycopg.Cursor[Any], ranges: Iterable[TenantRange]) -> None:
    """Record changed ranges, inside the transaction that changed the observations."""
    ranges = list(ranges)
    if ranges:
        cursor.execute(_INSERT_PENDING, as_columns(ranges))


async def record_pending_async(conn: AsyncConnection[Any], ranges: Iterable[TenantRange]) -> None:
    """`record_pending` on an async connection (temporal API writes)."""
    ranges = list(ranges)
    if ranges:
        await conn.execute(_INSERT_PENDING, as_columns(ranges))


async def lock_tenant_rollups_async(conn: AsyncConnection[Any], tenant: str) -> None:
    """Hold, until the transaction ends, the lock refresh_rollups takes on `tenant`'s rollups."""
    await conn.execute(LOCK_TENANT, (TENANT_LOCK_CLASS, tenant))


def _overlap_bounds(start: datetime | None, end: datetime | None) -> tuple[Any, Any]:
    low = floor_hour(start) if start is not None else "-infinity"
    high = floor_hour(end - MICROSECOND) + HOUR if end is not None else "infinity"
    return low, high


def _overlap_hours(rows: Iterable[tuple[datetime, datetime]]) -> list[TimeRange]:
    return merge_ranges(hours_of(start, end) for start, end in rows)


def pending_overlaps(
    conn: psycopg.Connection[Any], tenant: str, start: datetime | None, end: datetime | None
) -> list[TimeRange]:
    """Merged whole hours in [start, end) that pending ranges of `tenant` touch: read them raw."""
    rows = conn.execute(_OVERLAPS, (tenant, *_overlap_bounds(start, end))).fetchall()
    return _overlap_hours(rows)


async def pending_overlaps_async(
    conn: AsyncConnection[Any], tenant: str, start: datetime | None, end: datetime | None
) -> list[TimeRange]:
    """`pending_overlaps` on an async connection."""
    cursor = await conn.execute(_OVERLAPS, (tenant, *_overlap_bounds(start, end)))
    return _overlap_hours(await cursor.fetchall())


async def rollup_state_async(
    conn: AsyncConnection[Any], tenant: str, start: datetime | None, end: datetime | None
) -> tuple[list[TimeRange], str]:
    """`pending_overlaps_async` and the zone of the daily rollups, in one round trip."""
    cursor = await conn.execute(_STATE, (tenant, *_overlap_bounds(start, end)))
    rows = await cursor.fetchall()
    zone = str(rows[0][0])
    return _overlap_hours((low, high) for _, low, high in rows if low is not None), zone


@dataclass(slots=True)
class RefreshPlan:
    """What to do with one tenant's pending ranges: hours to recompute now, ranges to keep."""

    recompute: list[TimeRange] = field(default_factory=list)
    #: (from, to, recorded_at) recorded again: hours still busy, or beyond this call's share.
    remainder: list[tuple[datetime, datetime, datetime]] = field(default_factory=list)


def _merge_stamped(
    ranges: Iterable[tuple[datetime, datetime, datetime]],
) -> list[tuple[datetime, datetime, datetime]]:
    merged: list[tuple[datetime, datetime, datetime]] = []
    for start, end, at in sorted(ranges):
        if merged and start <= merged[-1][1]:
            low, high, newest = merged[-1]
            merged[-1] = (low, max(high, end), max(newest, at))
        else:
            merged.append((start, end, at))
    return merged


def _subtract(ranges: list[TimeRange], holes: list[TimeRange]) -> list[TimeRange]:
    """Sorted disjoint `ranges` minus sorted disjoint `holes`."""
    result: list[TimeRange] = []
    for start, end in ranges:
        for hole_start, hole_end in holes:
            if hole_end <= start or hole_start >= end:
                continue
            if hole_start > start:
                result.append((start, hole_start))
            start = max(start, hole_end)
            if start >= end:
                break
        if start < end:
            result.append((start, end))
    return result


def plan_refresh(
    pending: Iterable[tuple[datetime, datetime, datetime]],
    quiet_before: datetime,
    max_hours: int,
    realtime_from: datetime | None = None,
) -> RefreshPlan:
    """Split one tenant's pending (from, to, recorded_at) into hours to recompute and the rest.

    Hours a range recorded at or after `quiet_before` touches are still busy and are kept
    (merged, with their newest recorded_at, so the quiet clock keeps running); the other
    hours are recomputed, at most `max_hours` of them, the rest kept. Hours from
    `realtime_from` on are dropped: real-time aggregation answers them from raw rows.
    """
    aligned = [(*hours_of(start, end), at) for start, end, at in pending]
    busy = _merge_stamped(r for r in aligned if r[2] >= quiet_before)
    quiet = _merge_stamped(r for r in aligned if r[2] < quiet_before)
    todo = _subtract([(s, e) for s, e, _ in quiet], [(s, e) for s, e, _ in busy])
    if realtime_from is not None:
        todo = _subtract(todo, [(realtime_from, datetime.max.replace(tzinfo=UTC))])
        busy = [(s, min(e, realtime_from), at) for s, e, at in busy if s < realtime_from]
    plan = RefreshPlan(remainder=list(busy))
    budget = max_hours * HOUR
    quiet_at = max((at for _, _, at in quiet), default=quiet_before)
    for start, end in todo:
        share = min(end - start, budget)
        if share > timedelta(0):
            plan.recompute.append((start, start + share))
            budget -= share
        if start + share < end:
            plan.remainder.append((start + share, end, quiet_at))
    return plan
