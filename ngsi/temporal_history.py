"""The history of selected entities for the temporal routes: instances, capped and paged, and
aggregations on the cheapest correct path (docs/temporal.md, "Choosing the path").

- Instances: the oldest `limit + 1` per series (the newest with lastN), cut by
  ngsi/temporal_paging.py when some series has more than `limit`.
- Aggregations: hourly rollups when every method is one rollups answer, the period is made
  of whole UTC hours in the zone and the window bounds are whole hours; daily rollups for
  the whole local days a period holds, when the request's zone is theirs
  (ngsi/temporal_tiers.py); hours that pending ranges touch are read raw and summarized in
  numpy (`rollup_hours`). Otherwise, or when a
  series holds values that are not numbers, the raw arrays go through `aggregate`.
- Open windows get concrete bounds for the periods: an open start is the start of the UTC
  hour of the oldest instance of the selection, an open end the end of the hour holding the
  later of now and the newest instance. Both are whole hours, so an open window never keeps
  a query off the rollups, and both paths compute the same periods.
- Values that are not numbers are aggregated through codes: the distinct values in sorted
  order (strings, DateTime values by their text, anything else by its canonical JSON), so
  totalCount, distinctCount, min and max come out right for strings and dates; booleans count
  as 0 and 1 (clause 4.5.19.1, table 4.5.19.1-1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from psycopg import AsyncConnection

from ngsi.aggregate import (
    aggregate,
    combine_series_rollups,
    fill_gaps,
    is_hour_aligned,
    period_edges,
    rollup_hours,
)
from ngsi.errors import ErrorType, NgsiError
from ngsi.temporal_output import AggregatedSeries
from ngsi.temporal_paging import cap_backward, cap_forward, cap_periods, content_range
from ngsi.temporal_params import Aggregation, TimeWindow, check_eligible
from ngsi.temporal_tiers import TierPlan, plan_tiers
from ngsi.temporal_values import value_view
from storage.rollup_reads import fetch_binned_table, fetch_tiers
from storage.rollup_table import float_columns
from storage.rollups import HOUR, TimeRange, floor_hour, rollup_state_async
from storage.temporal_reads import fetch_first_n, fetch_last_n, fetch_raw
from storage.temporal_series import Series, SeriesKey

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Methods a kind of value has, but that codes cannot compute (clause 4.5.19.1 leaves their
#: meaning for arrays open); refused with OperationNotSupported.
NOT_COMPUTED = {"Array": {"sum", "avg", "min", "max"}, "Time": {"avg"}}
COUNTS = ("totalCount", "distinctCount")


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """What history one temporal request reads, checked already."""

    window: TimeWindow | None
    #: Attribute IRIs, None for all.
    attributes: tuple[str, ...] | None
    now: datetime
    zone: ZoneInfo
    max_instances: int
    last_n: int | None = None
    aggregation: Aggregation | None = None
    gap_fill: str | None = None
    #: "postgres" (observation_rollups) or "timescaledb" (observations_hourly).
    backend: str = "postgres"

    @property
    def start(self) -> datetime | None:
        """The window start, None when open."""
        return self.window.start if self.window is not None else None

    @property
    def end(self) -> datetime | None:
        """The window end, None when open."""
        return self.window.end if self.window is not None else None

    @property
    def attribute_list(self) -> list[str] | None:
        """The attributes as the store takes them."""
        return list(self.attributes) if self.attributes is not None else None


@dataclass(slots=True)
class InstanceAnswer:
    """The instances of every series, and the Content-Range when they were capped."""

    series: dict[SeriesKey, Series]
    content_range: str | None = None


@dataclass(slots=True)
class AggregatedAnswer:
    """Per series one value per period between `edges`; how it was computed."""

    edges: np.ndarray
    series: dict[SeriesKey, AggregatedSeries]
    content_range: str | None = None
    path: str = "raw"


def as_datetime(moment: np.datetime64) -> datetime:
    """A datetime64 (UTC) as an aware datetime."""
    micros = int(np.asarray(moment, dtype="datetime64[us]").astype(np.int64))
    return EPOCH + timedelta(microseconds=micros)


async def read_instances(
    conn: AsyncConnection[Any], tenant: str, entity_ids: Sequence[str], request: HistoryRequest
) -> InstanceAnswer:
    """The instances in the window (lastN newest, or all), capped per clause 6.3.10."""
    if not entity_ids:
        return InstanceAnswer({})
    limit, last_n = request.max_instances, request.last_n
    args = (conn, tenant, entity_ids, request.attribute_list)
    if last_n is None:
        found = await fetch_first_n(*args, limit + 1, request.start, request.end)
        answer, cut = cap_forward(found, limit)
    else:
        found = await fetch_last_n(*args, min(last_n, limit + 1), request.start, request.end)
        answer, cut = cap_backward(found, limit) if last_n > limit else (found, False)
    if not cut:
        return InstanceAnswer(answer)
    return InstanceAnswer(answer, content_range(answer, request.window, last_n))


def rollups_usable(aggregation: Aggregation, window: TimeWindow | None, zone: ZoneInfo) -> bool:
    """Whether hourly rollups can answer: methods, period and window bounds all fit."""
    if not aggregation.rollups_suffice or not aggregation.period.hour_aligned(zone):
        return False
    bounds = [b for b in (window.start, window.end) if b is not None] if window else []
    return all(bound == floor_hour(bound) for bound in bounds)


async def read_aggregated(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    request: HistoryRequest,
    shown: Callable[[str], str],
) -> AggregatedAnswer:
    """Every series aggregated per period (clause 4.5.19); `shown` names attributes in errors."""
    aggregation = request.aggregation
    if aggregation is None:
        raise ValueError("read_aggregated needs an aggregation")
    if not entity_ids:
        return AggregatedAnswer(np.empty(0, dtype="datetime64[us]"), {})
    if rollups_usable(aggregation, request.window, request.zone):
        answer = await _from_rollups(conn, tenant, entity_ids, request, aggregation)
        if answer is not None:
            return answer
    if sql_bins_usable(aggregation, request):
        answer = await _from_sql_bins(conn, tenant, entity_ids, request, aggregation)
        if answer is not None:
            return answer
    return await _from_raw(conn, tenant, entity_ids, request, aggregation, shown)


def _edges(
    request: HistoryRequest, oldest: np.datetime64 | None, newest: np.datetime64 | None
) -> tuple[np.ndarray, str | None]:
    """The (capped) period edges for the window, open bounds made concrete from the data."""
    aggregation = request.aggregation
    assert aggregation is not None
    start = request.start
    if start is None:
        if oldest is None:
            return np.empty(0, dtype="datetime64[us]"), None
        start = floor_hour(as_datetime(oldest))
    end = request.end
    if end is None:
        latest = max(request.now, as_datetime(newest)) if newest is not None else request.now
        end = floor_hour(latest) + HOUR
    edges = period_edges(start, end, aggregation.period, request.zone)
    return cap_periods(edges, request.max_instances)


def _finish(
    results: dict[str, np.ma.MaskedArray],
    edges: np.ndarray,
    gap_fill: str | None,
    decode: list[Any] | None = None,
) -> dict[str, list[Any]]:
    """Masked results as lists (None where empty), gaps filled, codes decoded."""
    finished = {}
    for method, result in results.items():
        if gap_fill is not None and method not in COUNTS and decode is None:
            result = fill_gaps(edges, result, gap_fill)
        values = result.tolist()
        if decode is not None and method in ("min", "max"):
            values = [None if v is None else decode[int(v)] for v in values]
        finished[method] = values
    return finished


def _finish_rows(
    results: dict[str, np.ma.MaskedArray], edges: np.ndarray, gap_fill: str | None
) -> dict[str, list[list[Any]]]:
    """(series, periods) masked results as one list per series (None where empty), gaps
    filled: one `.tolist()` per method for all series."""
    finished = {}
    for method, result in results.items():
        if gap_fill is not None and method not in COUNTS:
            finished[method] = [fill_gaps(edges, row, gap_fill).tolist() for row in result]
        else:
            finished[method] = result.tolist()
    return finished


def _in_ranges(buckets: np.ndarray, ranges: Sequence[TimeRange]) -> np.ndarray:
    inside = np.zeros(len(buckets), dtype=bool)
    for low, high in ranges:
        low64 = np.datetime64(low.astimezone(UTC).replace(tzinfo=None), "us")
        high64 = np.datetime64(high.astimezone(UTC).replace(tzinfo=None), "us")
        inside |= (buckets >= low64) & (buckets < high64)
    return inside


async def _from_rollups(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    request: HistoryRequest,
    aggregation: Aggregation,
) -> AggregatedAnswer | None:
    """Daily and hourly rollups, pending hours from raw rows; None when rollups cannot
    answer. All series are combined at once (one window gives them the same periods)."""
    attributes, start, end = request.attribute_list, request.start, request.end
    # Pending ranges first: a refresh that ends after this read leaves hours this answer
    # reads raw, never rollups older than the raw rows read.
    pending, daily_zone = await rollup_state_async(conn, tenant, start, end)
    table = None
    args = (conn, request.backend, tenant, entity_ids, attributes)
    floats = float_columns(aggregation.methods)
    tiers = _tiers(request, aggregation, pending, daily_zone)
    if tiers is not None:
        table = await fetch_tiers(*args, tiers.hours, tiers.days, daily_zone, floats)
        if table is not None and not tiers.holds_days_of(table.buckets):
            table = None
    if table is None:
        table = await fetch_tiers(*args, [(start, end)], [], None, floats)
        assert table is not None  # no days asked, so no zone to check
    if (table.observation_counts != table.value_counts).any():
        return None  # values that are not numbers: only the raw path aggregates them
    keys = list(table.keys)
    position = {key: index for index, key in enumerate(keys)}
    keep = ~_in_ranges(table.buckets, pending)
    columns = (table.series, table.buckets, table.value_counts, table.sums, table.sum_squares)
    parts = [tuple(column[keep] for column in (*columns, table.mins, table.maxs))]
    for low, high in pending:
        low = max(low, start) if start is not None else low
        high = min(high, end) if end is not None else high
        raw = await fetch_raw(conn, tenant, entity_ids, attributes, low, high)
        for key, part in raw.items():
            if part.others is not None:
                return None
            if key not in position:
                position[key] = len(keys)
                keys.append(key)
            hours = rollup_hours(part.times, part.values)
            parts.append((np.full(len(hours.buckets), position[key], dtype=np.int64), *hours))
    merged = [np.concatenate(column) for column in zip(*parts, strict=True)]
    series_index, buckets, counts, sums, sum_squares, mins, maxs = merged
    oldest = buckets.min() if len(buckets) else None
    newest = buckets.max() if len(buckets) else None
    edges, cut = _edges(request, oldest, newest)
    if len(edges) and not is_hour_aligned(edges):
        return None
    summaries = (buckets, counts, sums, sum_squares, mins, maxs)
    return _combined(keys, series_index, summaries, edges, cut, request, "rollups")


def _tiers(
    request: HistoryRequest,
    aggregation: Aggregation,
    pending: Sequence[TimeRange],
    daily_zone: str,
) -> TierPlan | None:
    """Days the daily rollups can answer: a closed window, periods of a day or longer, and
    the request's zone the rollups' (docs/temporal.md)."""
    if request.start is None or request.end is None or request.zone.key != daily_zone:
        return None
    if aggregation.period.is_zero or aggregation.period.approximate_days() < 1:
        return None
    edges, _ = _edges(request, None, None)
    return plan_tiers(edges, request.zone, pending)


def _combined(
    keys: Sequence[SeriesKey],
    series_index: np.ndarray,
    columns: tuple[np.ndarray, ...],
    edges: np.ndarray,
    cut: str | None,
    request: HistoryRequest,
    path: str,
) -> AggregatedAnswer:
    """Summaries (hourly, or one per period) of every series combined into the answer."""
    assert request.aggregation is not None
    buckets, counts, sums, sum_squares, mins, maxs = columns
    results = combine_series_rollups(
        series_index,
        len(keys),
        buckets,
        counts,
        sums,
        sum_squares,
        mins,
        maxs,
        edges,
        request.aggregation.methods,
        period_buckets=path == "sql",
    )
    rows = _finish_rows(results, edges, request.gap_fill)
    present = np.flatnonzero(np.bincount(series_index, minlength=len(keys))).tolist()
    series = {
        keys[index]: AggregatedSeries("Property", {m: v[index] for m, v in rows.items()})
        for index in present
    }
    return AggregatedAnswer(edges, series, cut, path)


def sql_bins_usable(aggregation: Aggregation, request: HistoryRequest) -> bool:
    """Whether SQL `date_bin` can summarize each period: a fixed period, a closed window,
    and methods computable from count, sum, sum of squares, min and max."""
    period = aggregation.period
    return (
        aggregation.rollups_suffice
        and not period.is_calendar
        and not period.is_zero
        and request.start is not None
        and request.end is not None
    )


async def _from_sql_bins(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    request: HistoryRequest,
    aggregation: Aggregation,
) -> AggregatedAnswer | None:
    """Each fixed period summarized in SQL (`date_bin` from the window start); None when a
    series holds values that are not numbers (the raw path aggregates those)."""
    edges, cut = _edges(request, None, None)
    if len(edges) < 2:
        return None
    start, end = as_datetime(edges[0]), as_datetime(edges[-1])
    stride = timedelta(seconds=aggregation.period.fixed_seconds)
    table = await fetch_binned_table(
        conn,
        tenant,
        entity_ids,
        request.attribute_list,
        start,
        end,
        stride,
        float_columns(aggregation.methods),
    )
    if (table.observation_counts != table.value_counts).any():
        return None
    summaries = (table.buckets, table.value_counts, table.sums, table.sum_squares,
                 table.mins, table.maxs)  # fmt: skip
    return _combined(table.keys, table.series, summaries, edges, cut, request, "sql")


async def _from_raw(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    request: HistoryRequest,
    aggregation: Aggregation,
    shown: Callable[[str], str],
) -> AggregatedAnswer:
    """Raw arrays through numpy."""
    found = await fetch_raw(
        conn, tenant, entity_ids, request.attribute_list, request.start, request.end
    )
    views = {key: value_view(series) for key, series in found.items()}
    for (_, attribute, _), view in views.items():
        check_eligible(aggregation, view.kind, shown(attribute))
        refused = NOT_COMPUTED.get(view.kind, set()) & set(aggregation.methods)
        if refused:
            raise NgsiError(
                ErrorType.OPERATION_NOT_SUPPORTED,
                f"{', '.join(sorted(refused))} of {view.kind} values ({shown(attribute)!r})"
                " are not computed by this broker",
            )
    oldest = min((s.times[0] for s in found.values() if len(s.times)), default=None)
    newest = max((s.times[-1] for s in found.values() if len(s.times)), default=None)
    edges, cut = _edges(request, oldest, newest)
    series: dict[SeriesKey, AggregatedSeries] = {}
    for key, view in views.items():
        results = aggregate(found[key].times, view.values, edges, aggregation.methods)
        finished = _finish(results, edges, request.gap_fill, view.decode)
        series[key] = AggregatedSeries(view.attribute_type, finished)
    return AggregatedAnswer(edges, series, cut, "raw")
