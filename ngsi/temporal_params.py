"""Parameters of the NGSI-LD temporal API (ETSI GS CIM 009 v1.8): pure parsing, no clock, no DB.

- `parse_time_window`: `timerel` / `timeAt` / `endTimeAt` / `timeproperty` (clause 4.11, data
  type TemporalQuery of clause 5.2.21) as a half-open UTC window `[start, end)`: `after` is
  inclusive of timeAt, `before` exclusive, `between` includes timeAt and excludes endTimeAt.
- `parse_duration`: `aggrPeriodDuration` as ISO 8601 `P[n]Y[n]M[n]DT[n]H[n]M[n]S` or `P[n]W`
  (clause 4.5.19.1). A zero duration (`PT0S`, `P0D`) is valid there and means one period
  spanning the whole window.
- `parse_aggregation`: `aggrMethods` (clause 4.5.19.1) plus the Stadspuls extension methods
  `pNN` / `pNN.N` (percentiles, 0 < NN < 100), and `aggrPeriodDuration` (default `PT0S`).
- `parse_last_n`: `lastN` (clause 5.2.21: a positive integer); above the configured maximum it
  is TooManyResults, as `limit` above the maximum page size is elsewhere in this API.
- `check_eligible`: tables 4.5.19.1-1..3, raising InvalidRequest as clause 5.7.4.4 says when an
  attribute's values do not admit a requested method.
- `parse_gap_fill`: the Stadspuls gap-filling extension (`null`, `previous`, `linear`).

Every other failure is BadRequestData: clause 5.5.2 defines it for input that does not meet the
requirements of the operation, clause 5.7.4.4 uses it for a missing temporal query, and
Stellio answers the same for each of these parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from ngsi.errors import ErrorType, NgsiError, bad_request, invalid_request

TIMERELS = ("before", "after", "between")
#: Table 5.2.21-1: the Temporal Properties a temporal query may address (clause 4.8).
TIMEPROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")
#: Clause 4.5.19.1, in the order the spec lists them.
SPEC_METHODS = ("avg", "distinctCount", "max", "min", "stddev", "sum", "sumsq", "totalCount")
#: What hourly rollups (count, sum, sumsq, min, max) can answer exactly; docs/temporal.md.
ROLLUP_METHODS = frozenset({"totalCount", "sum", "avg", "min", "max", "stddev", "sumsq"})
#: Stadspuls extension, not in the spec: gap filling of aggregated series.
GAP_FILLS = ("null", "previous", "linear")
MAX_LAST_N = 10_000
#: Longer periods than this are surely a typo and would overflow date arithmetic.
MAX_DURATION_DAYS = 100 * 366

#: Stadspuls extension: `p50`, `p95`, `p99.9`: a percentile with linear interpolation.
PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d)?)")
#: Clause 4.5.19.1: P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W; only seconds take a fraction.
DURATION = re.compile(
    r"P(?:(?P<years>\d{1,9})Y)?(?:(?P<months>\d{1,9})M)?(?:(?P<days>\d{1,9})D)?"
    r"(?:T(?:(?P<hours>\d{1,9})H)?(?:(?P<minutes>\d{1,9})M)?"
    r"(?:(?P<seconds>\d{1,12}(?:[.,]\d{1,6})?)S)?)?"
)
WEEKS = re.compile(r"P(?P<weeks>\d{1,9})W")
#: A DateTime, unlike a date, has `T` between its date and time.
DATE_AND_TIME = re.compile(r"\d[Tt]\d")
#: An unencoded `+` in a query string arrives as a space: `...T10:00:00 02:00`.
SPACE_FOR_PLUS = re.compile(r"(T\d\d(?::?\d\d)*(?:[.,]\d+)?) (\d\d(?::?\d\d)?)$")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A temporal query (clause 4.11) as a half-open UTC window `[start, end)`; None = open."""

    timerel: str | None
    start: datetime | None
    end: datetime | None
    timeproperty: str = "observedAt"

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (aware) matches the temporal query."""
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


def parse_datetime(text: str, name: str) -> datetime:
    """An ISO 8601 date-time (clause 4.6.3) as an aware UTC datetime; without a zone it is UTC."""
    repaired = SPACE_FOR_PLUS.sub(r"\1+\2", text.strip())
    if not DATE_AND_TIME.search(repaired):
        raise bad_request(f"{name} must be a date-time like 2026-03-29T10:00:00Z, not {text!r}")
    try:
        moment = datetime.fromisoformat(repaired)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad_request(f"{name} is not an ISO 8601 date-time: {text!r}") from None


def parse_time_window(
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
) -> TimeWindow | None:
    """The temporal query of clause 4.11; None when none of its parameters is given."""
    if timeproperty is not None and timeproperty not in TIMEPROPERTIES:
        raise bad_request(
            f"timeproperty must be one of {', '.join(TIMEPROPERTIES)}, not {timeproperty!r}"
        )
    prop = timeproperty or "observedAt"
    if timerel is None:
        if time_at is not None or end_time_at is not None:
            raise bad_request("timeAt and endTimeAt need timerel (before, after or between)")
        return None if timeproperty is None else TimeWindow(None, None, None, prop)
    if timerel not in TIMERELS:
        raise bad_request(f"timerel must be before, after or between, not {timerel!r}")
    if time_at is None:
        raise bad_request(f"timerel={timerel} needs timeAt")
    at = parse_datetime(time_at, "timeAt")
    if timerel != "between":
        # Clause 4.11: endTimeAt "is only used for the between relation"; ignoring it would
        # silently answer another window than the caller meant.
        if end_time_at is not None:
            raise bad_request(f"endTimeAt is only used with timerel=between, not {timerel}")
        if timerel == "before":
            return TimeWindow(timerel, None, at, prop)
        return TimeWindow(timerel, at, None, prop)
    if end_time_at is None:
        raise bad_request("timerel=between needs endTimeAt")
    end = parse_datetime(end_time_at, "endTimeAt")
    if end <= at:
        raise bad_request(f"endTimeAt {end_time_at} must be after timeAt {time_at}")
    return TimeWindow(timerel, at, end, prop)


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration as clause 4.5.19.1 allows it; calendar parts follow a time zone."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0.0

    @property
    def is_zero(self) -> bool:
        """Zero length: clause 4.5.19.1 reads it as one period spanning the whole window."""
        return not self.is_calendar and self.time_part == timedelta(0)

    @property
    def is_calendar(self) -> bool:
        """Whether it has years, months, weeks or days, whose length depends on the calendar."""
        return bool(self.years or self.months or self.weeks or self.days)

    @property
    def time_part(self) -> timedelta:
        """The hours, minutes and seconds, rounded to the microsecond numpy edges use."""
        micro = round(self.seconds * 1_000_000)
        return timedelta(hours=self.hours, minutes=self.minutes, microseconds=micro)

    @property
    def fixed_seconds(self) -> float:
        """The length in seconds of a duration without calendar parts."""
        if self.is_calendar:
            raise ValueError(f"{self} has calendar parts and no fixed length")
        return self.time_part.total_seconds()

    def hour_aligned(self, zone: ZoneInfo) -> bool:
        """Whether periods of this length can be built from whole UTC hours in `zone`."""
        part = self.time_part
        if part % timedelta(hours=1):
            return False
        return not self.is_calendar or zone_has_whole_hour_offsets(zone)

    def approximate_days(self) -> float:
        """The length in days with average months and years, for sanity limits only."""
        calendar = self.years * 365.2425 + self.months * 30.436875 + self.weeks * 7 + self.days
        return calendar + self.time_part.total_seconds() / 86400

    def __str__(self) -> str:
        if self.weeks:
            return f"P{self.weeks}W"
        date = "".join(
            f"{value}{unit}"
            for value, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D"))
            if value
        )
        seconds = f"{self.seconds:.6f}".rstrip("0").rstrip(".") + "S" if self.seconds else ""
        hours = f"{self.hours}H" if self.hours else ""
        minutes = f"{self.minutes}M" if self.minutes else ""
        time = hours + minutes + seconds
        if not date and not time:
            return "PT0S"
        return f"P{date}" + (f"T{time}" if time else "")


@lru_cache(maxsize=32)
def zone_has_whole_hour_offsets(zone: ZoneInfo) -> bool:
    """Whether every UTC offset `zone` used from 1970 to 2100 is a whole number of hours."""
    # zoneinfo does not list its transitions; one sample a month sees every offset a zone keeps
    # for more than a few weeks, which is every real one.
    for year in range(1970, 2101):
        for month in range(1, 13):
            offset = datetime(year, month, 15, 12, tzinfo=UTC).astimezone(zone).utcoffset()
            if offset is None or offset % timedelta(hours=1):
                return False
    return True


def parse_duration(text: str) -> Duration:
    """An `aggrPeriodDuration` (clause 4.5.19.1); zero is allowed, negative is not."""
    weeks = WEEKS.fullmatch(text)
    if weeks:
        duration = Duration(weeks=int(weeks["weeks"]))
    else:
        match = DURATION.fullmatch(text)
        if match is None or text in ("P", "PT") or text.endswith("T"):
            raise bad_request(
                f"aggrPeriodDuration must be an ISO 8601 duration like PT15M, P1D, P1M or P1W"
                f" (P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W), not {text!r}"
            )
        parts = {key: value for key, value in match.groupdict().items() if value}
        seconds = float(parts.pop("seconds", "0").replace(",", "."))
        duration = Duration(**{key: int(value) for key, value in parts.items()}, seconds=seconds)
    if duration.approximate_days() > MAX_DURATION_DAYS:
        raise bad_request(f"aggrPeriodDuration {text} is longer than 100 years")
    return duration


@dataclass(frozen=True, slots=True)
class Aggregation:
    """The requested aggregation methods and the period length (zero = whole window)."""

    methods: tuple[str, ...]
    period: Duration

    @property
    def whole_window(self) -> bool:
        """Whether one period spans the whole window (clause 4.5.19.1, duration 0)."""
        return self.period.is_zero

    @property
    def percentiles(self) -> dict[str, float]:
        """The percentile methods (extension) and their q in (0, 100)."""
        return {m: float(m[1:]) for m in self.methods if PERCENTILE.fullmatch(m)}

    @property
    def rollups_suffice(self) -> bool:
        """Whether hourly rollups can answer every method (the period is checked apart)."""
        return set(self.methods) <= ROLLUP_METHODS


def parse_method(name: str) -> str:
    """One aggregation method: a clause 4.5.19.1 name or a Stadspuls `pNN` percentile."""
    if name in SPEC_METHODS:
        return name
    percentile = PERCENTILE.fullmatch(name)
    if percentile and 0 < float(percentile[1]) < 100:
        return name
    raise bad_request(
        f"{name!r} is not an aggregation method: use {', '.join(SPEC_METHODS)}"
        " (clause 4.5.19.1) or a percentile p1..p99.9 such as p50, p95 (Stadspuls extension)"
    )


def parse_aggregation(aggr_methods: str | None, aggr_period_duration: str | None) -> Aggregation:
    """`aggrMethods` (required with aggregatedValues) and `aggrPeriodDuration` (default PT0S)."""
    if aggr_methods is None or not aggr_methods.strip():
        raise bad_request("aggregatedValues needs aggrMethods, e.g. aggrMethods=avg,max")
    methods: list[str] = []
    for item in aggr_methods.split(","):
        method = parse_method(item.strip())
        if method not in methods:
            methods.append(method)
    # Table 5.2.21-1: "If not specified, it defaults to a duration of 0 seconds".
    period = Duration() if aggr_period_duration is None else parse_duration(aggr_period_duration)
    return Aggregation(tuple(methods), period)


def parse_last_n(text: str | None, maximum: int = MAX_LAST_N) -> int | None:
    """`lastN`: a positive integer (clause 5.2.21) up to `maximum` (TooManyResults above)."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or int(stripped) < 1:
        raise bad_request(f"lastN must be a positive integer, not {text!r}")
    value = int(stripped)
    if value > maximum:
        raise NgsiError(
            ErrorType.TOO_MANY_RESULTS, f"lastN {value} is above the maximum of {maximum}"
        )
    return value


#: Tables 4.5.19.1-1 to -3: the methods that apply to each kind of value. Percentiles (the
#: Stadspuls extension) apply to numbers only.
ELIGIBLE: dict[str, frozenset[str]] = {
    "Number": frozenset(SPEC_METHODS),
    "Boolean": frozenset(SPEC_METHODS),
    "String": frozenset({"totalCount", "distinctCount", "min", "max"}),
    "Array": frozenset({"totalCount", "distinctCount", "sum", "avg", "min", "max"}),
    "Object": frozenset({"totalCount", "distinctCount"}),
    "DateTime": frozenset({"totalCount", "distinctCount", "min", "max"}),
    "Date": frozenset({"totalCount", "distinctCount", "min", "max"}),
    "Time": frozenset({"totalCount", "distinctCount", "avg", "min", "max"}),
    "URI": frozenset({"totalCount", "distinctCount"}),
    "Relationship": frozenset({"totalCount", "distinctCount"}),
}


def check_eligible(aggregation: Aggregation, kind: str, attribute: str) -> None:
    """InvalidRequest (clause 5.7.4.4) when a method does not apply to `kind` values."""
    allowed = ELIGIBLE.get(kind, frozenset())
    for method in aggregation.methods:
        numeric_percentile = kind == "Number" and method in aggregation.percentiles
        if method not in allowed and not numeric_percentile:
            raise invalid_request(
                f"aggregation method {method} does not apply to attribute {attribute!r},"
                f" whose values are {kind} (clause 4.5.19.1)"
            )


def parse_gap_fill(text: str | None) -> str | None:
    """The Stadspuls `gapFill` extension: how empty periods are shown (null, previous, linear)."""
    if text is None:
        return None
    if text not in GAP_FILLS:
        raise bad_request(f"gapFill must be one of {', '.join(GAP_FILLS)}, not {text!r}")
    return text
