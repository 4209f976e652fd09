"""ngsi/temporal_tiers.py: which days the daily rollups answer, which hours the hourly ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ngsi.aggregate import period_edges
from ngsi.temporal_params import parse_duration
from ngsi.temporal_tiers import is_local_midnight, plan_tiers

BRUSSELS = ZoneInfo("Europe/Brussels")


def utc(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def edges(start: datetime, end: datetime, period: str, zone: ZoneInfo = BRUSSELS) -> np.ndarray:
    return period_edges(start, end, parse_duration(period), zone)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(3, 28, 23), True),  # Sunday 29 March (23 hours) begins at 23:00 UTC
        (utc(3, 29, 22), True),  # Monday 30 March, summer time: 22:00 UTC
        (utc(3, 29, 23), False),
        (utc(10, 24, 22), True),  # Sunday 25 October (25 hours)
        (utc(10, 25, 23), True),
    ],
)
def test_local_midnights(moment, expected):
    assert is_local_midnight(moment, BRUSSELS) is expected


def test_a_year_of_days_is_one_run_of_days():
    start, end = datetime(2025, 11, 22, 23, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC)
    plan = plan_tiers(edges(start, end, "P1D"), BRUSSELS, [])
    assert plan is not None
    assert (plan.days, plan.hours, len(plan.day_starts)) == ([(start, end)], [], 365)


@pytest.mark.parametrize(
    ("period", "zone"),
    [("PT1H", BRUSSELS), ("PT6H", BRUSSELS), ("P1D", ZoneInfo("UTC"))],
)
def test_periods_that_cut_days_read_hours_only(period, zone):
    # An edge inside every Brussels day: no day belongs to a single period.
    assert plan_tiers(edges(utc(3, 27, 23), utc(4, 2, 22), period, zone), BRUSSELS, []) is None


def test_cut_ends_and_pending_days_are_read_by_the_hour():
    start, end = utc(3, 27, 5), utc(3, 31, 23)  # Saturday 06:00 ... Wednesday 01:00 local
    pending = [(utc(3, 29, 8), utc(3, 29, 9))]  # an hour of Sunday 29 March, not refreshed
    plan = plan_tiers(edges(start, end, "P1D"), BRUSSELS, pending)
    assert plan is not None
    assert plan.days == [(utc(3, 27, 23), utc(3, 28, 23)), (utc(3, 29, 22), utc(3, 31, 22))]
    assert plan.hours == [
        (start, utc(3, 27, 23)),
        (utc(3, 28, 23), utc(3, 29, 22)),  # the 23-hour Sunday, with a pending hour
        (utc(3, 31, 22), end),
    ]
    assert plan.holds_days_of(np.array(["2026-03-28T23:00", "2026-03-29T22:00"], "datetime64[us]"))
    # A day bucket the database placed elsewhere (another calendar): not the planned days.
    assert not plan.holds_days_of(np.array(["2026-03-30T00:00"], "datetime64[us]"))


def test_too_many_ranges_read_hours_only():
    start = utc(1, 1)
    pending = [(start + timedelta(days=d, hours=12), start + timedelta(days=d, hours=13))
               for d in range(0, 60, 2)]  # fmt: skip
    assert plan_tiers(edges(start, start + timedelta(days=60), "P1D"), BRUSSELS, pending) is None
