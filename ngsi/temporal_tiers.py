"""Which rollups an aggregation reads: daily rollups for whole local days, hourly ones for
the rest (docs/temporal.md, "Choosing the path"). Pure: no database, no clock.

A day of the daily rollups' zone can stand for its hours when
- it lies wholly inside the window (the first and last edges),
- no period edge falls strictly inside it, so the whole day belongs to one period (true of
  every day for P1D, P1W, P1M, P1Y in that zone; of no day for PT1H or another zone), and
- no pending range (hours not refreshed yet) overlaps it: its hours are then read raw.
The hours outside those days come from the hourly rollups. A year of P1D is 365 rows instead
of 8,760.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ngsi.temporal_calendar import period_edges, to_datetime64
from ngsi.temporal_params import Duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_DAY = Duration(days=1)
#: A read of more time ranges than this takes hours only (one SELECT per range).
MAX_RANGES = 16

#: (from, to): a half-open time range of aware datetimes.
TimeRange = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class TierPlan:
    """Ranges of whole days (daily rollups) and of hours (hourly rollups), disjoint."""

    days: list[TimeRange]
    hours: list[TimeRange]
    #: The start of every day in `days` (datetime64[us] UTC).
    day_starts: np.ndarray

    def holds_days_of(self, buckets: np.ndarray) -> bool:
        """Whether every bucket inside `days` starts one of the planned days: the database's
        calendar of the zone agrees with this one (tzdata versions could differ)."""
        inside = np.zeros(len(buckets), dtype=bool)
        for low, high in self.days:
            inside |= (buckets >= to_datetime64(low)) & (buckets < to_datetime64(high))
        return bool(np.isin(buckets[inside], self.day_starts).all())


def as_datetime(moment: np.datetime64) -> datetime:
    """A datetime64 (UTC) as an aware datetime."""
    micros = int(np.asarray(moment, dtype="datetime64[us]").astype(np.int64))
    return EPOCH + timedelta(microseconds=micros)


def is_local_midnight(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether `moment` is where a day of `zone` begins (as period_edges counts days)."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.replace(tzinfo=zone).astimezone(UTC) == moment.astimezone(UTC)


def _runs(starts: np.ndarray, ends: np.ndarray) -> list[TimeRange]:
    """Consecutive days (µs since 1970) merged into ranges."""
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks - 1, [len(starts) - 1]))
    return [
        (EPOCH + timedelta(microseconds=low), EPOCH + timedelta(microseconds=high))
        for low, high in zip(starts[firsts].tolist(), ends[lasts].tolist(), strict=True)
    ]


def _complement(ranges: Sequence[TimeRange], start: datetime, end: datetime) -> list[TimeRange]:
    """[start, end) minus sorted disjoint `ranges` inside it."""
    rest: list[TimeRange] = []
    for low, high in ranges:
        if low > start:
            rest.append((start, low))
        start = high
    if start < end:
        rest.append((start, end))
    return rest


def plan_tiers(edges: np.ndarray, zone: ZoneInfo, pending: Sequence[TimeRange]) -> TierPlan | None:
    """The days of `zone` that daily rollups can answer for periods `edges`, and the hours
    left to the hourly rollups; None when no day qualifies or the ranges are too many."""
    if len(edges) < 2:
        return None
    first, last = as_datetime(edges[0]), as_datetime(edges[-1])
    bounds = period_edges(first, last, ONE_DAY, zone).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    whole = np.ones(len(starts), dtype=bool)
    whole[0] = is_local_midnight(first, zone)
    whole[-1] &= is_local_midnight(last, zone)
    edge_us = np.asarray(edges, dtype="datetime64[us]").astype(np.int64)
    inner = np.searchsorted(edge_us, ends, "left") - np.searchsorted(edge_us, starts, "right")
    whole &= inner == 0
    for low, high in pending:
        low_us, high_us = (to_datetime64(m).astype(np.int64) for m in (low, high))
        whole &= ~((starts < high_us) & (low_us < ends))
    if not whole.any():
        return None
    days = _runs(starts[whole], ends[whole])
    hours = _complement(days, first, last)
    if len(days) + len(hours) > MAX_RANGES:
        return None
    return TierPlan(days, hours, starts[whole].astype("datetime64[us]"))
