"""ngsi/aggregate.py against plain Python references (loops, statistics, zoneinfo arithmetic)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.aggregate import (
    Rollups,
    aggregate,
    combine_rollups,
    combine_series_rollups,
    fill_gaps,
    is_hour_aligned,
    period_edges,
    rollup_hours,
)
from ngsi.errors import ErrorType, NgsiError
from ngsi.temporal_params import ROLLUP_METHODS, parse_duration

BRUSSELS = ZoneInfo("Europe/Brussels")
METHODS = (
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
    "p50",
    "p95",
    "p99.9",
)
ROLLUP_ORDER = tuple(m for m in METHODS if m in ROLLUP_METHODS)
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def as_datetimes(edges: np.ndarray) -> list[datetime]:
    """datetime64[us] edges as aware UTC datetimes."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [epoch + int(e) * US for e in edges.astype(np.int64)]


# --- the references -----------------------------------------------------------------------


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of `day` in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def reference_edges(start: datetime, end: datetime, text: str, zone: ZoneInfo) -> list[datetime]:
    """Edges by enumerating calendar days and testing each one, or by stepping fixed periods."""
    period = parse_duration(text)
    if not period.is_calendar:
        edges, moment = [start], start + period.time_part
        while moment < end:
            edges.append(moment)
            moment += period.time_part
        return [*edges, end]
    first_day = start.astimezone(zone).date()
    boundaries = []
    day = first_day
    while midnight(day, zone) < end:
        if period.days and (day - first_day).days % period.days == 0:
            boundaries.append(midnight(day, zone))
        if period.weeks and day.weekday() == 0:
            monday = first_day - timedelta(days=first_day.weekday())
            if (day - monday).days % (7 * period.weeks) == 0:
                boundaries.append(midnight(day, zone))
        months = (day.year - first_day.year) * 12 + day.month - first_day.month
        if period.months and day.day == 1 and months % period.months == 0:
            boundaries.append(midnight(day, zone))
        years = day.year - first_day.year
        if period.years and (day.month, day.day) == (1, 1) and years % period.years == 0:
            boundaries.append(midnight(day, zone))
        day += timedelta(days=1)
    return [start, *(b for b in boundaries if start < b < end), end]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, written out."""
    ranked = sorted(values)
    position = q / 100 * (len(ranked) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ranked) - 1)
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


def reference(values: list[float], method: str) -> float | int | None:
    """One method over one period's finite values."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len(set(values))
    if not values:
        return None
    if method == "sum":
        return math.fsum(values)
    if method == "avg":
        return statistics.fmean(values)
    if method == "min":
        return min(values)
    if method == "max":
        return max(values)
    if method == "sumsq":
        return math.fsum(v * v for v in values)
    if method == "stddev":
        return statistics.stdev(values) if len(values) > 1 else None
    return percentile(values, float(method[1:]))


def reference_aggregate(
    times: list[datetime], values: list[float], edges: list[datetime], methods: Sequence[str]
) -> dict[str, list[Any]]:
    """Every method per period, one value at a time."""
    result: dict[str, list[Any]] = {m: [] for m in methods}
    for low, high in zip(edges, edges[1:], strict=False):
        inside = [v for t, v in zip(times, values, strict=True) if low <= t < high]
        finite = [v for v in inside if math.isfinite(v)]
        for method in methods:
            result[method].append(reference(finite, method))
    return result


def reference_rollups(times: list[datetime], values: list[float]) -> Rollups:
    """Hourly count, sum, sumsq, min, max per hour, as storage/rollups.py keeps them."""
    hours: dict[datetime, list[float]] = {}
    for moment, value in zip(times, values, strict=True):
        if math.isfinite(value):
            hours.setdefault(moment.replace(minute=0, second=0, microsecond=0), []).append(value)
    keys = sorted(hours)
    return Rollups(
        np.array([k.replace(tzinfo=None) for k in keys], dtype="datetime64[us]"),
        np.array([len(hours[k]) for k in keys]),
        np.array([math.fsum(hours[k]) for k in keys]),
        np.array([math.fsum(v * v for v in hours[k]) for k in keys]),
        np.array([min(hours[k]) for k in keys]),
        np.array([max(hours[k]) for k in keys]),
    )


def assert_matches(
    got: dict[str, np.ma.MaskedArray],
    expected: dict[str, list[Any]],
    values: list[float],
) -> None:
    """Same None pattern, equal counts, close floats; and no NaN anywhere."""
    finite = [v for v in values if math.isfinite(v)]
    scale = 1.0 + math.fsum(abs(v) for v in finite)
    for method, wanted in expected.items():
        array = got[method]
        assert np.isfinite(np.ma.getdata(array)).all(), method
        listed = array.tolist()
        assert len(listed) == len(wanted), method
        for index, (a, b) in enumerate(zip(listed, wanted, strict=True)):
            where = f"{method}[{index}]: {a} != {b}"
            if b is None or isinstance(b, int):
                assert a == b, where
            elif method == "sumsq":
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * scale * scale), where
            elif method == "stddev":
                # Rollups have only count, sum and sumsq: compare variances, whose error is
                # bounded by the rounding of sumsq.
                assert math.isclose(a * a, b * b, rel_tol=1e-7, abs_tol=1e-13 * scale**2), where
            else:
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * scale), where


# --- strategies -----------------------------------------------------------------------------

#: Window lengths that keep every duration to a few hundred periods at most.
SPANS = {
    "PT15M": timedelta(days=2),
    "PT1H": timedelta(days=5),
    "PT3H": timedelta(days=10),
    "PT7M30S": timedelta(hours=20),
    "P1D": timedelta(days=60),
    "P2D": timedelta(days=60),
    "P1W": timedelta(days=150),
    "P1M": timedelta(days=800),
    "P3M": timedelta(days=800),
    "P1Y": timedelta(days=2000),
}
# Around both Brussels DST transitions of 2026 (29 March and 25 October).
STARTS = st.sampled_from(
    [
        utc(2026, 3, 27, 9, 13),
        utc(2026, 3, 28, 23),
        utc(2026, 10, 23, 22),
        utc(2026, 10, 24, 22, 59),
    ]
) | st.datetimes(
    min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 1), timezones=st.just(UTC)
)
# Mostly values on a grid of eighths (exact sums, many repeats for distinctCount), some
# arbitrary ones, and the NaN and infinities that must be ignored.
VALUES = st.one_of(
    st.integers(-16, 16).map(lambda n: n / 8),
    st.integers(-800, 800).map(lambda n: n / 8),
    st.floats(-1000, 1000, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


@dataclass
class Case:
    """A window, a period, and values around the window, late ones included."""

    start: datetime
    end: datetime
    period: str
    times: list[datetime]
    values: list[float]


def later(moment: datetime, microseconds: int) -> datetime:
    """`moment` plus some microseconds."""
    return moment + microseconds * US


@st.composite
def cases(draw: st.DrawFn, periods: Sequence[str], hour_start: bool = False) -> Case:
    """A random case; `hour_start` puts the window on whole hours, as rollups need."""
    period = draw(st.sampled_from(list(periods)))
    start = draw(STARTS).replace(microsecond=0)
    if hour_start:
        start = start.replace(minute=0, second=0)
    # Squared, so that short windows with several values a period are common.
    span = draw(st.floats(0.0, 1.0)) ** 2 * SPANS[period]
    end = start + timedelta(seconds=int(span.total_seconds()))
    if hour_start:
        end = start + timedelta(hours=int(span / timedelta(hours=1)))
    low = (start - timedelta(hours=2)).replace(minute=0, second=0)
    high = end + timedelta(hours=2)
    anywhere = st.integers(0, int((high - low) / US)).map(lambda n: low + n * US)
    # Whole quarter hours from a whole hour hit fixed edges and local midnights exactly.
    on_edges = st.integers(0, int((high - low) / timedelta(minutes=15))).map(
        lambda n: low + n * timedelta(minutes=15)
    )
    moments = st.one_of(anywhere, on_edges, st.sampled_from([start, end]))
    points = draw(st.lists(st.tuples(moments, VALUES), max_size=40))
    # Bursts of values within minutes of each other fill single periods.
    for centre in draw(st.lists(moments, max_size=3)):
        jitter = st.integers(0, 600_000_000).map(partial(later, centre))
        points += draw(st.lists(st.tuples(jitter, VALUES), max_size=20))
    # The order stays random, like late data, and some values share an instant.
    return Case(start, end, period, [t for t, _ in points], [v for _, v in points])


# --- period edges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "period", "lengths"),
    [
        # Brussels days: 23 h on 2026-03-29, 25 h on 2026-10-25; cut at the window.
        (utc(2026, 3, 27, 23), utc(2026, 3, 30, 22), "P1D", [24, 23, 24]),
        (utc(2026, 10, 23, 22), utc(2026, 10, 26, 23), "P1D", [24, 25, 24]),
        (utc(2026, 3, 29, 10), utc(2026, 3, 30, 12), "P1D", [12, 14]),
        (utc(2026, 3, 23, 0), utc(2026, 4, 6, 0), "P1W", [166, 168, 2]),
        (utc(2026, 3, 1, 0), utc(2026, 5, 1, 0), "P1M", [742, 720, 2]),
        (utc(2025, 12, 31, 23), utc(2027, 1, 1, 0), "P1Y", [8760, 1]),
        (utc(2026, 3, 29, 0, 7), utc(2026, 3, 29, 1), "PT15M", [0.25, 0.25, 0.25, 0.25 - 7 / 60]),
        (utc(2026, 3, 29, 0), utc(2026, 4, 1, 0), "PT0S", [72]),
    ],
)
def test_period_edges(start: datetime, end: datetime, period: str, lengths: list[float]) -> None:
    edges = period_edges(start, end, parse_duration(period), BRUSSELS)
    hours = np.diff(edges) / np.timedelta64(1, "h")
    assert hours.tolist() == pytest.approx(lengths)
    assert as_datetimes(edges)[0] == start and as_datetimes(edges)[-1] == end


def test_calendar_periods_start_at_local_boundaries() -> None:
    edges = as_datetimes(
        period_edges(utc(2026, 3, 25, 12), utc(2026, 5, 20), parse_duration("P1M"), BRUSSELS)
    )
    local = [e.astimezone(BRUSSELS) for e in edges[1:-1]]
    assert [(d.month, d.day, d.hour) for d in local] == [(4, 1, 0), (5, 1, 0)]
    weeks = as_datetimes(
        period_edges(utc(2026, 3, 25, 12), utc(2026, 4, 20), parse_duration("P1W"), BRUSSELS)
    )
    assert {e.astimezone(BRUSSELS).strftime("%a %H:%M") for e in weeks[1:-1]} == {"Mon 00:00"}


@pytest.mark.parametrize("period", ["PT1H", "P1D"])
def test_empty_window(period: str) -> None:
    edges = period_edges(utc(2026, 3, 29), utc(2026, 3, 29), parse_duration(period), BRUSSELS)
    assert len(edges) == 0
    result = aggregate([np.datetime64("2026-03-29T00:00", "us")], [1.0], edges, METHODS)
    assert all(len(r) == 0 for r in result.values())


@pytest.mark.parametrize(("period", "days"), [("PT1S", 30), ("P1D", 400)])
def test_too_many_periods(period: str, days: int) -> None:
    with pytest.raises(NgsiError, match="aggregation periods") as raised:
        period_edges(
            utc(2026, 1, 1),
            utc(2026, 1, 1) + timedelta(days=days),
            parse_duration(period),
            BRUSSELS,
            max_periods=300,
        )
    assert raised.value.error_type is ErrorType.TOO_MANY_RESULTS


@settings(max_examples=200, deadline=None)
@given(cases(list(SPANS)))
def test_edges_match_reference(case: Case) -> None:
    edges = period_edges(case.start, case.end, parse_duration(case.period), BRUSSELS)
    if case.end <= case.start:
        assert len(edges) == 0
    else:
        assert as_datetimes(edges) == reference_edges(case.start, case.end, case.period, BRUSSELS)


# --- aggregation ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(list(SPANS)))
def test_aggregate_matches_reference(case: Case) -> None:
    edges = period_edges(case.start, case.end, parse_duration(case.period), BRUSSELS)
    times64 = np.array([t.replace(tzinfo=None) for t in case.times], dtype="datetime64[us]")
    got = aggregate(times64, np.array(case.values, dtype=float), edges, METHODS)
    expected = reference_aggregate(case.times, case.values, as_datetimes(edges), METHODS)
    assert_matches(got, expected, case.values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(["PT1H", "PT3H", "P1D", "P2D", "P1W", "P1M", "P3M", "P1Y"], hour_start=True))
def test_rollups_match_reference(case: Case) -> None:
    edges = period_edges(case.start, case.end, parse_duration(case.period), BRUSSELS)
    assert is_hour_aligned(edges)
    expected = reference_aggregate(case.times, case.values, as_datetimes(edges), ROLLUP_ORDER)
    from_reference = combine_rollups(
        *reference_rollups(case.times, case.values), edges, ROLLUP_ORDER
    )
    assert_matches(from_reference, expected, case.values)
    times64 = np.array([t.replace(tzinfo=None) for t in case.times], dtype="datetime64[us]")
    from_raw = combine_rollups(*rollup_hours(times64, case.values), edges, ROLLUP_ORDER)
    assert_matches(from_raw, expected, case.values)


EDGES = np.array(
    ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T02:00", "2026-03-29T03:00"],
    dtype="datetime64[us]",
)


def test_empty_periods_and_single_value() -> None:
    got = aggregate([np.datetime64("2026-03-29T01:30", "us")], [4.5], EDGES, METHODS)
    assert got["totalCount"].tolist() == [0, 1, 0]
    assert got["distinctCount"].tolist() == [0, 1, 0]
    for method in ("sum", "avg", "min", "max", "p50", "p95", "p99.9"):
        assert got[method].tolist() == [None, 4.5, None], method
    assert got["sumsq"].tolist() == [None, 20.25, None]
    # The sample standard deviation of one value has no value (PostgreSQL stddev gives NULL).
    assert got["stddev"].tolist() == [None, None, None]


def test_late_data_in_any_order() -> None:
    rng = random.Random(7)
    times = np.array(
        [
            np.datetime64("2026-03-29T00:00", "us") + np.timedelta64(rng.randrange(3 * 3600), "s")
            for _ in range(500)
        ]
    )
    values = np.array([rng.choice([1.0, 2.5, 3.0, rng.uniform(-5, 5)]) for _ in range(500)])
    shuffle = np.array(rng.sample(range(500), 500))
    order = np.argsort(times, kind="stable")
    first = aggregate(times[order], values[order], EDGES, METHODS)
    second = aggregate(times[shuffle], values[shuffle], EDGES, METHODS)
    for method in METHODS:
        assert np.allclose(first[method], second[method], rtol=1e-12, atol=1e-12), method


def test_nan_and_infinity_are_ignored() -> None:
    at = np.datetime64("2026-03-29T00:10", "us")
    got = aggregate([at, at, at, at], [1.0, math.nan, math.inf, -math.inf], EDGES, METHODS)
    assert got["totalCount"].tolist() == [1, 0, 0]
    assert got["max"].tolist() == [1.0, None, None]
    all_missing = aggregate([at, at], [math.nan, math.inf], EDGES, METHODS)
    for method in METHODS:
        assert np.isfinite(np.ma.getdata(all_missing[method])).all()
    assert all_missing["avg"].tolist() == [None, None, None]


def test_overflow_has_no_value_never_nan() -> None:
    at = np.datetime64("2026-03-29T00:10", "us")
    got = aggregate([at, at, at], [1e308, 1e308, -1e308], EDGES, METHODS)
    assert got["totalCount"].tolist() == [3, 0, 0]
    assert got["max"].tolist() == [1e308, None, None]
    assert got["sumsq"].tolist() == [None, None, None]
    for method in METHODS:
        assert np.isfinite(np.ma.getdata(got[method])).all(), method


def test_rollups_refuse_unaligned_edges_and_ranked_methods() -> None:
    rollups = rollup_hours([np.datetime64("2026-03-29T00:10", "us")], [1.0])
    shifted = EDGES + np.timedelta64(30, "m")
    with pytest.raises(ValueError, match="whole UTC hours"):
        combine_rollups(*rollups, shifted, ["sum"])
    with pytest.raises(ValueError, match="cannot answer distinctCount"):
        combine_rollups(*rollups, EDGES, ["distinctCount"])


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown aggregation method 'median'"):
        aggregate([], [], EDGES, ["median"])


# --- gap filling (Stadspuls extension) -------------------------------------------------------


def series(*values: float | None) -> np.ma.MaskedArray:
    """A result with None as the empty periods."""
    return np.ma.MaskedArray([v or 0.0 for v in values], mask=[v is None for v in values])


GAPS = np.array(
    [
        "2026-03-29T00:00",
        "2026-03-29T01:00",
        "2026-03-29T02:00",
        "2026-03-29T04:00",
        "2026-03-29T05:00",
        "2026-03-29T06:00",
    ],
    dtype="datetime64[us]",
)


@pytest.mark.parametrize(
    ("method", "values", "expected"),
    [
        ("null", [None, 2.0, None, 8.0, None], [None, 2.0, None, 8.0, None]),
        ("previous", [None, 2.0, None, 8.0, None], [None, 2.0, 2.0, 8.0, 8.0]),
        # Midpoints 1.5 h and 4.5 h; the gap's midpoint is 3 h: 2 + 6 * 1.5 / 3.
        ("linear", [None, 2.0, None, 8.0, None], [None, 2.0, 5.0, 8.0, None]),
        ("linear", [1.0, None, None, None, 5.0], [1.0, 1.8, 3.0, 4.2, 5.0]),
        ("previous", [None, None, None, None, None], [None, None, None, None, None]),
        ("linear", [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]),
    ],
)
def test_fill_gaps(method: str, values: list[float | None], expected: list[float | None]) -> None:
    filled = fill_gaps(GAPS, series(*values), method)
    assert filled.tolist() == pytest.approx(expected)
    assert np.isfinite(np.ma.getdata(filled)).all()


def test_fill_gaps_unknown() -> None:
    with pytest.raises(ValueError, match="unknown gap fill 'zero'"):
        fill_gaps(GAPS, series(1.0, None, 1.0, 1.0, 1.0), "zero")


def test_rollups_refuse_an_hour_twice() -> None:
    rollups = rollup_hours([np.datetime64("2026-03-29T00:10", "us")], [1.0])
    doubled = Rollups(*(np.concatenate([part, part]) for part in rollups))
    with pytest.raises(ValueError, match="more than once"):
        combine_rollups(*doubled, EDGES, ["sum"])


@pytest.mark.parametrize("shuffled", [False, True])
def test_series_rollups_match_one_series_at_a_time(shuffled: bool) -> None:
    generator = np.random.default_rng(7)
    start = np.datetime64("2026-03-28T22:00", "us")
    per_series = []
    for size in (5, 0, 30, 1):
        hours = generator.choice(48, size=size, replace=False)
        times = start + np.sort(hours).astype("timedelta64[h]") + np.timedelta64(5, "m")
        per_series.append(rollup_hours(times, generator.normal(10, 3, size)))
    owner = np.repeat(np.arange(4), [len(r.buckets) for r in per_series])
    columns = Rollups(*(np.concatenate(column) for column in zip(*per_series, strict=True)))
    if shuffled:
        order = generator.permutation(len(owner))
        owner, columns = owner[order], Rollups(*(column[order] for column in columns))
    edges = period_edges(utc(2026, 3, 29), utc(2026, 3, 30, 12), parse_duration("PT3H"), BRUSSELS)
    together = combine_series_rollups(owner, 4, *columns, edges, sorted(ROLLUP_METHODS))
    for index, rollups in enumerate(per_series):
        alone = combine_rollups(*rollups, edges, sorted(ROLLUP_METHODS))
        for method, result in alone.items():
            got = together[method][index]
            assert got.mask.tolist() == result.mask.tolist()
            np.testing.assert_allclose(got.filled(0), result.filled(0), rtol=1e-12)


def test_series_rollups_refuse_an_hour_twice_in_one_series_only() -> None:
    rollups = rollup_hours([np.datetime64("2026-03-29T00:10", "us")], [1.0])
    doubled = Rollups(*(np.concatenate([part, part]) for part in rollups))
    together = combine_series_rollups([0, 1], 2, *doubled, EDGES, ["sum"])
    assert together["sum"].tolist() == [[1.0, None, None], [1.0, None, None]]
    with pytest.raises(ValueError, match="more than once"):
        combine_series_rollups([1, 1], 2, *doubled, EDGES, ["sum"])


def test_naive_datetimes_are_utc() -> None:
    naive = period_edges(
        datetime(2026, 3, 28, 12), datetime(2026, 3, 30), parse_duration("P1D"), BRUSSELS
    )
    aware = period_edges(utc(2026, 3, 28, 12), utc(2026, 3, 30), parse_duration("P1D"), BRUSSELS)
    assert naive.tolist() == aware.tolist()


def reference_calendar_edges(start: datetime, end: datetime, period: str, zone: ZoneInfo):
    """Calendar edges one by one with datetime arithmetic: what the vectorized days must give."""
    duration = parse_duration(period)
    local = start.astimezone(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    if duration.weeks:
        local -= timedelta(days=local.weekday())
    edges = [start]
    for k in range(1, 10_000):
        moment = (local + timedelta(days=k * (duration.weeks * 7 + duration.days))).replace(
            tzinfo=zone
        ).astimezone(UTC) + k * duration.time_part
        if moment >= end:
            break
        if moment > edges[-1]:
            edges.append(moment)
    return np.array([np.datetime64(e.replace(tzinfo=None), "us") for e in [*edges, end]])


@pytest.mark.parametrize(
    "zone",
    ["Europe/Brussels", "America/Havana", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Apia"],
)
@pytest.mark.parametrize("period", ["P1D", "P2D", "P1W", "P1DT6H", "P3DT1H30M"])
def test_day_and_week_edges_match_datetime_arithmetic(zone, period):
    rng = random.Random(f"{zone}{period}")
    for _ in range(20):
        start = utc(2008, 1, 1) + timedelta(seconds=rng.randrange(20 * 365 * 86400))
        end = start + timedelta(seconds=rng.randrange(1, 400 * 86400))
        got = period_edges(start, end, parse_duration(period), ZoneInfo(zone))
        np.testing.assert_array_equal(
            got, reference_calendar_edges(start, end, period, ZoneInfo(zone))
        )


def test_edges_are_cached_and_read_only():
    args = (utc(2026, 1, 1), utc(2026, 12, 31), parse_duration("P1D"), BRUSSELS)
    assert period_edges(*args) is period_edges(*args)
    with pytest.raises(ValueError, match="read-only"):
        period_edges(*args)[0] = np.datetime64("2000-01-01")
