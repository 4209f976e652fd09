"""Period edges of the aggregated temporal representation (ETSI GS CIM 009 v1.8, clause
4.5.19.1): fixed periods counted from the window start, calendar periods (days, weeks,
months, years) in a time zone's calendar. Pure; ngsi/aggregate.py explains the semantics.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from ngsi.errors import ErrorType, NgsiError
from ngsi.temporal_params import Duration

MAX_PERIODS = 100_000
HOUR_US = 3_600_000_000


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC)


def to_datetime64(moment: datetime) -> np.datetime64:
    """An aware datetime (naive means UTC) as numpy UTC microseconds."""
    return np.datetime64(as_utc(moment).replace(tzinfo=None), "us")


def too_many_periods(count: float, limit: int) -> NgsiError:
    """TooManyResults (clause 5.5.2): the window holds more periods than we answer."""
    return NgsiError(
        ErrorType.TOO_MANY_RESULTS,
        f"the window holds about {count:.0f} aggregation periods, more than {limit};"
        " use a longer aggrPeriodDuration or a shorter window",
    )


def period_edges(
    start: datetime,
    end: datetime,
    period: Duration,
    zone: ZoneInfo,
    max_periods: int = MAX_PERIODS,
) -> np.ndarray:
    """Period boundaries `[start, ..., end]` as datetime64[us] UTC; empty if end <= start.
    Read-only: answers are cached, as dashboards ask for the same windows again and again."""
    return _cached_edges(as_utc(start), as_utc(end), period, zone, max_periods)


@lru_cache(maxsize=256)
def _cached_edges(
    start: datetime, end: datetime, period: Duration, zone: ZoneInfo, max_periods: int
) -> np.ndarray:
    edges = _period_edges(start, end, period, zone, max_periods)
    edges.flags.writeable = False
    return edges


def _period_edges(
    start: datetime, end: datetime, period: Duration, zone: ZoneInfo, max_periods: int
) -> np.ndarray:
    first, last = to_datetime64(start), to_datetime64(end)
    if last <= first:
        return np.empty(0, dtype="datetime64[us]")
    if period.is_zero:
        return np.array([first, last])
    if not period.is_calendar:
        step = np.timedelta64(period.time_part // timedelta(microseconds=1), "us")
        count = int(-((first - last) // step))
        if count > max_periods:
            raise too_many_periods(count, max_periods)
        return np.append(first + np.arange(count) * step, last)
    return calendar_edges(start, end, period, zone, max_periods)


def calendar_edges(
    start: datetime, end: datetime, period: Duration, zone: ZoneInfo, max_periods: int
) -> np.ndarray:
    """Edges of calendar periods counted in `zone` from the unit that holds `start`."""
    first, last = to_datetime64(start), to_datetime64(end)
    # A day can be 23 h long, so the shortest period is a little under its nominal days.
    shortest = (
        period.years * 365 + period.months * 28 + period.weeks * 7 + period.days
    ) * 23 * 3600 + period.time_part.total_seconds()
    estimate = (last - first) / np.timedelta64(1, "s") / shortest
    if estimate > max_periods:
        raise too_many_periods(estimate, max_periods)
    anchor = truncate_local(as_utc(start).astimezone(zone).replace(tzinfo=None), period)
    if period.years or period.months:
        edges = _month_edges(anchor, first, last, period, zone, max_periods)
    else:
        edges = _day_edges(anchor, first, last, period, zone, max_periods)
    if len(edges) > max_periods:
        raise too_many_periods(len(edges), max_periods)
    return np.append(edges, last)


def _month_edges(
    anchor: datetime,
    first: np.datetime64,
    last: np.datetime64,
    period: Duration,
    zone: ZoneInfo,
    max_periods: int,
) -> np.ndarray:
    """The edges before `last` of periods with months or years, one by one (few of them)."""
    edges = [first]
    for k in range(1, max_periods + 2):
        try:
            local = shift_local(anchor, period, k)
        except (OverflowError, ValueError):
            break  # past year 9999, so past any end
        moment = local.replace(tzinfo=zone).astimezone(UTC) + k * period.time_part
        edge = to_datetime64(moment)
        if edge >= last:
            break
        if edge > edges[-1]:
            edges.append(edge)
    return np.array(edges, dtype="datetime64[us]")


#: Local days numpy may step to: datetime (the zone's offsets) ends at year 9999.
_LAST_LOCAL_DAY = np.datetime64("9999-12-31", "us")
_SECOND_US = 1_000_000
#: More than any UTC offset, so a local time never lies further than this from UTC.
_MAX_OFFSET_US = 15 * HOUR_US


def _day_edges(
    anchor: datetime,
    first: np.datetime64,
    last: np.datetime64,
    period: Duration,
    zone: ZoneInfo,
    max_periods: int,
) -> np.ndarray:
    """`_month_edges` for periods of weeks and days, vectorized: a year of days costs one
    utcoffset call per day instead of a loop of datetime arithmetic (docs/temporal.md)."""
    step_days = period.weeks * 7 + period.days
    time_us = period.time_part // timedelta(microseconds=1)
    origin = np.datetime64(anchor, "us")
    step_us = step_days * 24 * HOUR_US + time_us
    # Edge k is at least local day k minus the largest offset: no k past this one is needed.
    span = int((last - origin).astype(np.int64)) + _MAX_OFFSET_US
    count = min(max_periods + 1, max(span // step_us + 2, 1))
    steps = np.arange(1, count + 1, dtype=np.int64)
    local = origin + (steps * step_days).astype("timedelta64[D]")
    inside = local <= _LAST_LOCAL_DAY
    steps, local = steps[inside], local[inside]
    offsets = [zone.utcoffset(moment) for moment in local.tolist()]
    offset_us = np.array(
        [round(offset.total_seconds() * _SECOND_US) if offset else 0 for offset in offsets],
        dtype=np.int64,
    )
    candidates = (local - offset_us.astype("timedelta64[us]")) + (steps * time_us).astype(
        "timedelta64[us]"
    )
    # As a loop would: stop at the first edge at or past `last`, and keep an edge only when
    # it is later than every one before it (a zone's jump can make local days collide).
    beyond = np.flatnonzero(candidates >= last)
    if len(beyond):
        candidates = candidates[: beyond[0]]
    before = np.maximum.accumulate(np.concatenate(([first], candidates)))[:-1]
    return np.concatenate(([first], candidates[candidates > before]))


def truncate_local(local: datetime, period: Duration) -> datetime:
    """The start of the calendar unit (week, day, month, year) that holds wall time `local`."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period.weeks:
        return midnight - timedelta(days=midnight.weekday())
    if period.days:
        return midnight
    if period.months:
        return midnight.replace(day=1)
    return midnight.replace(month=1, day=1)


def shift_local(anchor: datetime, period: Duration, k: int) -> datetime:
    """Wall time `anchor` plus k times the calendar part of `period` (month ends clamped)."""
    months = anchor.month - 1 + k * (period.years * 12 + period.months)
    year, month = anchor.year + months // 12, months % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    days = k * (period.weeks * 7 + period.days)
    return anchor.replace(year=year, month=month, day=day) + timedelta(days=days)
