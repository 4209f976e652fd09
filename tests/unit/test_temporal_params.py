"""ngsi/temporal_params.py: temporal query (4.11), durations and methods (4.5.19), lastN."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ngsi.errors import ErrorType, NgsiError
from ngsi.temporal_params import (
    Aggregation,
    Duration,
    TimeWindow,
    check_eligible,
    parse_aggregation,
    parse_duration,
    parse_gap_fill,
    parse_last_n,
    parse_time_window,
    zone_has_whole_hour_offsets,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
T10 = datetime(2026, 3, 29, 10, tzinfo=UTC)
T12 = datetime(2026, 3, 29, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timerel", "time_at", "end_time_at", "timeproperty", "expected"),
    [
        (None, None, None, None, None),
        (None, None, None, "modifiedAt", TimeWindow(None, None, None, "modifiedAt")),
        ("before", "2026-03-29T10:00:00Z", None, None, TimeWindow("before", None, T10)),
        ("after", "2026-03-29T10:00:00Z", None, None, TimeWindow("after", T10, None)),
        (
            "between",
            "2026-03-29T10:00:00Z",
            "2026-03-29T12:00:00Z",
            "observedAt",
            TimeWindow("between", T10, T12),
        ),
        # Offsets are converted to UTC; no zone means UTC.
        ("after", "2026-03-29T12:00:00+02:00", None, None, TimeWindow("after", T10, None)),
        ("after", "2026-03-29T10:00:00", None, None, TimeWindow("after", T10, None)),
        ("after", "20260329T100000Z", None, None, TimeWindow("after", T10, None)),
        # An unencoded `+` in the query string arrives as a space.
        ("after", "2026-03-29T12:00:00 02:00", None, None, TimeWindow("after", T10, None)),
        (
            "before",
            "2026-03-29T10:00:00.250Z",
            None,
            "createdAt",
            TimeWindow("before", None, T10.replace(microsecond=250_000), "createdAt"),
        ),
        (
            "after",
            "2026-03-29T10:00Z",
            None,
            "deletedAt",
            TimeWindow("after", T10, None, "deletedAt"),
        ),
    ],
)
def test_time_window(
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
    expected: TimeWindow | None,
) -> None:
    assert parse_time_window(timerel, time_at, end_time_at, timeproperty) == expected


@pytest.mark.parametrize(
    ("timerel", "time_at", "end_time_at", "timeproperty", "message"),
    [
        ("during", "2026-03-29T10:00:00Z", None, None, "timerel must be before, after or between"),
        ("Before", "2026-03-29T10:00:00Z", None, None, "timerel must be"),
        ("before", None, None, None, "timerel=before needs timeAt"),
        (None, "2026-03-29T10:00:00Z", None, None, "need timerel"),
        (None, None, "2026-03-29T10:00:00Z", None, "need timerel"),
        ("between", "2026-03-29T10:00:00Z", None, None, "needs endTimeAt"),
        ("between", "2026-03-29T10:00:00Z", "2026-03-29T10:00:00Z", None, "must be after"),
        ("between", "2026-03-29T12:00:00Z", "2026-03-29T10:00:00Z", None, "must be after"),
        ("after", "2026-03-29T10:00:00Z", "2026-03-29T12:00:00Z", None, "only used with"),
        ("before", "yesterday", None, None, "must be a date-time"),
        ("before", "2026-03-29", None, None, "must be a date-time"),
        ("before", "2026-13-01T00:00:00Z", None, None, "not an ISO 8601 date-time"),
        ("before", "0001-01-01T00:00:00+01:00", None, None, "not an ISO 8601 date-time"),
        ("between", "2026-03-29T10:00:00Z", "soon", None, "endTimeAt must be a date-time"),
        ("before", "2026-03-29T10:00:00Z", None, "observedat", "timeproperty must be one of"),
        (None, None, None, "updatedAt", "timeproperty must be one of"),
    ],
)
def test_time_window_errors(
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
    message: str,
) -> None:
    with pytest.raises(NgsiError, match=message) as raised:
        parse_time_window(timerel, time_at, end_time_at, timeproperty)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        # Clause 4.11: before excludes timeAt, after includes it, between is [timeAt, endTimeAt).
        (TimeWindow("before", None, T10), T10, False),
        (TimeWindow("before", None, T10), T10.replace(minute=0, second=0, hour=9), True),
        (TimeWindow("after", T10, None), T10, True),
        (TimeWindow("after", T10, None), T10.replace(hour=9), False),
        (TimeWindow("between", T10, T12), T10, True),
        (TimeWindow("between", T10, T12), T12, False),
        (TimeWindow(None, None, None), T12, True),
    ],
)
def test_window_bounds(window: TimeWindow, moment: datetime, inside: bool) -> None:
    assert window.contains(moment) is inside


@pytest.mark.parametrize(
    ("text", "expected", "canonical", "calendar", "fixed", "hour_aligned"),
    [
        ("PT15M", Duration(minutes=15), "PT15M", False, 900.0, False),
        ("PT1H", Duration(hours=1), "PT1H", False, 3600.0, True),
        ("PT90M", Duration(minutes=90), "PT90M", False, 5400.0, False),
        ("PT120M", Duration(minutes=120), "PT120M", False, 7200.0, True),
        ("PT1.5S", Duration(seconds=1.5), "PT1.5S", False, 1.5, False),
        ("PT0,25S", Duration(seconds=0.25), "PT0.25S", False, 0.25, False),
        ("P1D", Duration(days=1), "P1D", True, None, True),
        ("P1W", Duration(weeks=1), "P1W", True, None, True),
        ("P2W", Duration(weeks=2), "P2W", True, None, True),
        ("P1M", Duration(months=1), "P1M", True, None, True),
        ("P1Y", Duration(years=1), "P1Y", True, None, True),
        ("P1DT12H", Duration(days=1, hours=12), "P1DT12H", True, None, True),
        ("P1DT30M", Duration(days=1, minutes=30), "P1DT30M", True, None, False),
        (
            "P1Y2M3DT4H5M6S",
            Duration(years=1, months=2, days=3, hours=4, minutes=5, seconds=6),
            "P1Y2M3DT4H5M6S",
            True,
            None,
            False,
        ),
        # Clause 4.5.19.1: zero is valid and means the whole window.
        ("PT0S", Duration(), "PT0S", False, 0.0, True),
        ("P0D", Duration(), "PT0S", False, 0.0, True),
    ],
)
def test_duration(
    text: str,
    expected: Duration,
    canonical: str,
    calendar: bool,
    fixed: float | None,
    hour_aligned: bool,
) -> None:
    duration = parse_duration(text)
    assert duration == expected
    assert str(duration) == canonical
    assert duration.is_calendar is calendar
    assert duration.hour_aligned(BRUSSELS) is hour_aligned
    if fixed is None:
        with pytest.raises(ValueError, match="calendar parts"):
            _ = duration.fixed_seconds
    else:
        assert duration.fixed_seconds == fixed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1D",
        "-P1D",
        "P-1D",
        "P1.5D",
        "PT1.5H",
        "pt15m",
        "P1W2D",
        "P1Y1W",
        "PT1H30",
        "P1H",
        "PT1D",
        " PT1H",
        "PT0.0000001S",
        "PT15M/P1D",
    ],
)
def test_duration_errors(text: str) -> None:
    with pytest.raises(NgsiError, match="must be an ISO 8601 duration") as raised:
        parse_duration(text)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


def test_duration_too_long() -> None:
    with pytest.raises(NgsiError, match="longer than 100 years"):
        parse_duration("P200Y")


@pytest.mark.parametrize(
    ("zone", "whole_hours"),
    [("Europe/Brussels", True), ("UTC", True), ("Asia/Kolkata", False), ("Asia/Kathmandu", False)],
)
def test_zone_offsets(zone: str, whole_hours: bool) -> None:
    assert zone_has_whole_hour_offsets(ZoneInfo(zone)) is whole_hours
    assert parse_duration("P1D").hour_aligned(ZoneInfo(zone)) is whole_hours
    assert parse_duration("PT1H").hour_aligned(ZoneInfo(zone)) is True


@pytest.mark.parametrize(
    ("methods", "duration", "expected", "percentiles", "rollups"),
    [
        ("avg", None, Aggregation(("avg",), Duration()), {}, True),
        ("avg,max", "PT1H", Aggregation(("avg", "max"), Duration(hours=1)), {}, True),
        (" sum , sum,avg", "P1D", Aggregation(("sum", "avg"), Duration(days=1)), {}, True),
        (
            "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq",
            "P1M",
            Aggregation(
                (
                    "totalCount",
                    "distinctCount",
                    "sum",
                    "avg",
                    "min",
                    "max",
                    "stddev",
                    "sumsq",
                ),
                Duration(months=1),
            ),
            {},
            False,
        ),
        (
            "p50,p85,p95,p99.9,p5",
            "PT15M",
            Aggregation(("p50", "p85", "p95", "p99.9", "p5"), Duration(minutes=15)),
            {"p50": 50.0, "p85": 85.0, "p95": 95.0, "p99.9": 99.9, "p5": 5.0},
            False,
        ),
    ],
)
def test_aggregation(
    methods: str,
    duration: str | None,
    expected: Aggregation,
    percentiles: dict[str, float],
    rollups: bool,
) -> None:
    aggregation = parse_aggregation(methods, duration)
    assert aggregation == expected
    assert aggregation.percentiles == percentiles
    assert aggregation.rollups_suffice is rollups
    assert aggregation.whole_window is (duration is None)


@pytest.mark.parametrize(
    ("methods", "duration", "message"),
    [
        (None, "PT1H", "aggregatedValues needs aggrMethods"),
        ("", "PT1H", "aggregatedValues needs aggrMethods"),
        ("mean", None, "'mean' is not an aggregation method"),
        ("avg,", None, "'' is not an aggregation method"),
        ("Avg", None, "'Avg' is not an aggregation method"),
        ("p0", None, "'p0' is not an aggregation method"),
        ("p100", None, "'p100' is not an aggregation method"),
        ("p99.99", None, "'p99.99' is not an aggregation method"),
        ("P50", None, "'P50' is not an aggregation method"),
        ("p-5", None, "'p-5' is not an aggregation method"),
        ("avg", "PT15", "must be an ISO 8601 duration"),
    ],
)
def test_aggregation_errors(methods: str | None, duration: str | None, message: str) -> None:
    with pytest.raises(NgsiError, match=message) as raised:
        parse_aggregation(methods, duration)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


@pytest.mark.parametrize(
    ("text", "maximum", "expected"),
    [(None, 10, None), ("1", 10, 1), (" 7 ", 10, 7), ("10", 10, 10), ("0010", 10, 10)],
)
def test_last_n(text: str | None, maximum: int, expected: int | None) -> None:
    assert parse_last_n(text, maximum) == expected


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "1e3", "\u0661"])
def test_last_n_errors(text: str) -> None:
    with pytest.raises(NgsiError, match="lastN must be a positive integer") as raised:
        parse_last_n(text)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


def test_last_n_above_maximum() -> None:
    with pytest.raises(NgsiError, match="above the maximum of 10") as raised:
        parse_last_n("11", 10)
    assert raised.value.error_type is ErrorType.TOO_MANY_RESULTS


@pytest.mark.parametrize(
    ("methods", "kind", "ok"),
    [
        ("avg,stddev,sumsq,p95", "Number", True),
        ("sum,avg,stddev", "Boolean", True),
        ("min,max,distinctCount,totalCount", "String", True),
        ("avg", "String", False),
        ("p50", "String", False),
        ("p50", "Boolean", False),
        ("sum,avg,min,max", "Array", True),
        ("stddev", "Array", False),
        ("avg", "Time", True),
        ("avg", "DateTime", False),
        ("totalCount,distinctCount", "Relationship", True),
        ("max", "Relationship", False),
        ("totalCount", "GeoProperty", False),
    ],
)
def test_eligible(methods: str, kind: str, ok: bool) -> None:
    aggregation = parse_aggregation(methods, None)
    if ok:
        check_eligible(aggregation, kind, "speed")
    else:
        with pytest.raises(NgsiError, match="does not apply to attribute 'speed'") as raised:
            check_eligible(aggregation, kind, "speed")
        assert raised.value.error_type is ErrorType.INVALID_REQUEST


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("null", "null"), ("previous", "previous"), ("linear", "linear")],
)
def test_gap_fill(text: str | None, expected: str | None) -> None:
    assert parse_gap_fill(text) == expected


@pytest.mark.parametrize("text", ["", "zero", "Linear", "locf"])
def test_gap_fill_errors(text: str) -> None:
    with pytest.raises(NgsiError, match="gapFill must be one of"):
        parse_gap_fill(text)
