"""Upkeep of the daily rollups (migration 0016): local days of one time zone, kept with the
hourly rollups by storage/rollups.py (docs/temporal.md).

On plain PostgreSQL every refresh that recomputes hours of a tenant recomputes, from the
hourly rows, the local days that hold them (`observation_daily_rollups`), in the same
transaction. Summing hours into days is exact because the zone's offsets are whole hours
(configure_daily_rollups refuses other zones). On TimescaleDB the continuous aggregate
`observations_daily` is refreshed over those days after the hourly one. Local days are
computed by PostgreSQL (`date_trunc('day', t, zone)`), the calendar the buckets use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.pq import TransactionStatus

from ngsi.temporal_params import zone_has_whole_hour_offsets

logger = logging.getLogger(__name__)

#: (from, to): a half-open time range.
TimeRange = tuple[datetime, datetime]
HOUR = timedelta(hours=1)

# A refresh that writes days holds the zone row shared: configure_daily_rollups (which
# takes it for update) never interleaves with it.
_ZONE_FOR_SHARE = "SELECT zone FROM daily_rollup_zone FOR SHARE"
_DAYS_OF = """
SELECT date_trunc('day', %(from)s::timestamptz, %(zone)s),
       (date_trunc('day', (%(to)s::timestamptz - interval '1 microsecond') AT TIME ZONE %(zone)s)
        + interval '1 day') AT TIME ZONE %(zone)s
"""
_DELETE_DAYS = """
DELETE FROM observation_daily_rollups
WHERE tenant = %(tenant)s AND bucket >= %(from)s AND bucket < %(to)s
"""
_DAY_SUMS = """
INSERT INTO observation_daily_rollups (tenant, entity_id, entity_type, attribute, dataset_id,
    bucket, observation_count, value_count, value_sum, value_min, value_max, value_sum_squares)
SELECT tenant, entity_id, min(entity_type), attribute, dataset_id,
       date_trunc('day', bucket, %(zone)s) AS day,
       sum(observation_count), sum(value_count), sum(value_sum), min(value_min),
       max(value_max), sum(value_sum_squares)
FROM observation_rollups WHERE {where}
GROUP BY tenant, entity_id, attribute, dataset_id, day
"""
_RECOMPUTE_DAYS = _DAY_SUMS.format(
    where="tenant = %(tenant)s AND bucket >= %(from)s AND bucket < %(to)s"
)
_REBUILD_DAYS = _DAY_SUMS.format(where="true")
_REFRESH_DAILY_CAGG = (
    "CALL refresh_continuous_aggregate('observations_daily', %s::timestamptz, %s::timestamptz)"
)
_HAS_TABLE = "SELECT to_regclass('observation_daily_rollups') IS NOT NULL"


def merge_ranges(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Sorted ranges with overlapping or adjacent ones merged."""
    merged: list[TimeRange] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def daily_zone_for_share(conn: psycopg.Connection[Any]) -> str:
    """The daily rollups' zone, held (FOR SHARE) until the transaction ends."""
    row = conn.execute(_ZONE_FOR_SHARE).fetchone()
    if row is None:
        raise RuntimeError("daily_rollup_zone has no row: migrate")
    return str(row[0])


def days_of(
    conn: psycopg.Connection[Any], zone: str, ranges: Iterable[TimeRange]
) -> list[TimeRange]:
    """The local days of `zone` that hold `ranges`, merged (PostgreSQL's calendar)."""
    days = []
    for start, end in ranges:
        row = conn.execute(_DAYS_OF, {"from": start, "to": end, "zone": zone}).fetchone()
        assert row is not None
        days.append((row[0], row[1]))
    return merge_ranges(days)


def recompute_days(
    conn: psycopg.Connection[Any], tenant: str, zone: str, hours: Sequence[TimeRange]
) -> None:
    """Recompute from the hourly rows the days that hold the just recomputed `hours`."""
    for start, end in days_of(conn, zone, hours):
        bounds = {"tenant": tenant, "from": start, "to": end, "zone": zone}
        conn.execute(_DELETE_DAYS, bounds)
        conn.execute(_RECOMPUTE_DAYS, bounds)


def refresh_daily_aggregate(
    conn: psycopg.Connection[Any], hours: Sequence[TimeRange], realtime_from: datetime
) -> None:
    """TimescaleDB, after refreshing `hours` of observations_hourly: refresh the days that
    hold them. A day bucket is refreshed only when the window covers it whole, so windows
    are whole days; the day of `realtime_from` and later ones are left to real-time
    aggregation over the hours (autocommit: the procedure refuses a transaction block)."""
    if not hours:
        return
    row = conn.execute("SELECT zone FROM daily_rollup_zone").fetchone()
    if row is None:
        return
    zone = str(row[0])
    open_day = days_of(conn, zone, [(realtime_from, realtime_from + HOUR)])[0][0]
    for start, end in days_of(conn, zone, hours):
        if start < open_day:
            conn.execute(_REFRESH_DAILY_CAGG, (start, min(end, open_day)))


def configure_daily_rollups(conn: psycopg.Connection[Any], zone: str) -> bool:
    """Keep the daily rollups in `zone` (STADSPULS_TEMPORAL_TIME_ZONE); True when they were
    rebuilt. On plain PostgreSQL a new zone rebuilds them from the hourly rollups in one
    transaction (a refresh waits meanwhile; readers check the zone in the statement that
    reads days). On TimescaleDB the zone is fixed by the view (migration 0016): another one
    is logged, and calendar aggregations in it use the hourly rollups."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("configure_daily_rollups needs a connection outside any transaction")
    with conn.transaction():
        row = conn.execute("SELECT zone FROM daily_rollup_zone FOR UPDATE").fetchone()
        current = str(row[0]) if row else None
        if current == zone:
            return False
        has_table = conn.execute(_HAS_TABLE).fetchone()
        if not (has_table and has_table[0]):
            logger.warning(
                "the daily rollups (observations_daily) are days of %s; calendar aggregations"
                " in %s use the hourly rollups",
                current,
                zone,
            )
            return False
        if not zone_has_whole_hour_offsets(ZoneInfo(zone)):
            raise ValueError(f"daily rollups need a zone whose offsets are whole hours: {zone}")
        conn.execute("DELETE FROM observation_daily_rollups")
        conn.execute("UPDATE daily_rollup_zone SET zone = %s", [zone])
        conn.execute(_REBUILD_DAYS, {"zone": zone})
    return True
