"""Aggregated temporal representation (ETSI GS CIM 009 v1.8, clause 4.5.19): pure numpy.

Semantics chosen here, and why:
- Periods. Clause 4.5.19.1 only says how long a period is. Fixed periods (`PT15M`, `PT1H`) are
  counted from the window start, as Stellio (`time_bucket(..., origin => timeAt)`) and Scorpio
  (`generate_series(timeAt, ...)`) do and as annex C.5.14 shows (PT4M from 12:00). Calendar
  periods (days, weeks, months, years) follow the calendar of the configured zone: they begin
  at local midnight, on Monday (ISO 8601 weeks), on the 1st of the month or on 1 January, so a
  Brussels day is 23 h on 2026-03-29 and 25 h on 2026-10-25. The first period is cut at the
  window start and the last at the window end, since no data outside the window counts.
  A zero duration is one period spanning the whole window (clause 4.5.19.1).
- Every period is reported: clause 4.5.19 wants "as many array elements as there are periods
  in the time range of the query". An empty period has totalCount and distinctCount 0 (what
  COUNT gives in SQL, as in Scorpio); the other methods have no value there: the result is a
  masked array whose masked entries are 0 underneath and become None with `.tolist()`. The
  caller renders them (null) or drops them. NaN never leaves this module.
- stddev is the sample standard deviation (n - 1), like PostgreSQL's `stddev`, which Stellio
  (`stddev_samp`) and Scorpio (`STDDEV`) use; with fewer than two values it has no value.
- Percentiles (`p50`, `p95`, `p99.9`: Stadspuls extension) interpolate linearly between
  closest ranks, like numpy's default method and PostgreSQL's `percentile_cont`.
- Input values that are NaN or infinite are ignored, as if they had not been observed. Results
  that overflow float64 (sums of values near 1e308) have no value rather than infinity.
- Late data: times need not be sorted; each value is placed by binary search on the edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

# Period edges live in ngsi/temporal_calendar.py; re-exported, as callers import them here.
from ngsi.temporal_calendar import HOUR_US as HOUR_US
from ngsi.temporal_calendar import MAX_PERIODS as MAX_PERIODS
from ngsi.temporal_calendar import as_utc as as_utc
from ngsi.temporal_calendar import calendar_edges as calendar_edges
from ngsi.temporal_calendar import period_edges as period_edges
from ngsi.temporal_calendar import shift_local as shift_local
from ngsi.temporal_calendar import to_datetime64 as to_datetime64
from ngsi.temporal_calendar import too_many_periods as too_many_periods
from ngsi.temporal_calendar import truncate_local as truncate_local
from ngsi.temporal_params import GAP_FILLS, PERCENTILE, ROLLUP_METHODS, SPEC_METHODS


class Rollups(NamedTuple):
    """Hourly summaries of one series, as `observation_rollups` holds them."""

    buckets: np.ndarray  # datetime64[us], the start of each hour (UTC)
    counts: np.ndarray
    sums: np.ndarray
    sumsqs: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


def is_hour_aligned(moments: Any) -> bool:
    """Whether all datetime64 `moments` fall on whole UTC hours."""
    micros = np.asarray(moments, dtype="datetime64[us]").astype(np.int64)
    return bool(np.all(micros % HOUR_US == 0))


def masked(values: np.ndarray, empty: np.ndarray) -> np.ma.MaskedArray:
    """Results with no value where `empty` or not finite; 0 underneath, None in `.tolist()`."""
    mask = empty | ~np.isfinite(values)
    return np.ma.MaskedArray(np.where(mask, 0, values), mask=mask)


def percentile_q(method: str) -> float:
    """The q (0..100) of a `pNN` method; ValueError for other names."""
    if not PERCENTILE.fullmatch(method):
        raise ValueError(f"unknown aggregation method {method!r}")
    return float(method[1:])


def check_methods(methods: Iterable[str], allowed: Iterable[str]) -> None:
    """ValueError for a method this function cannot compute (callers validate first)."""
    known = set(allowed)
    for method in methods:
        if method not in known:
            percentile_q(method)


def period_index(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The period each time falls in, counting from 0; times must be inside the edges."""
    return np.searchsorted(edges, times, side="right") - 1


def aggregate(
    times: Any, values: Any, edges: Any, methods: Sequence[str]
) -> dict[str, np.ma.MaskedArray]:
    """Every requested method per period from raw `(times, values)`, all methods at once."""
    check_methods(methods, SPEC_METHODS)
    edges = np.asarray(edges, dtype="datetime64[us]")
    periods = max(len(edges) - 1, 0)
    t = np.asarray(times, dtype="datetime64[us]")
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"times {t.shape} and values {v.shape} differ in shape")
    if periods == 0:
        return {m: masked(np.zeros(0), np.zeros(0, dtype=bool)) for m in methods}
    keep = np.isfinite(v) & (t >= edges[0]) & (t < edges[-1])
    t, v = t[keep], v[keep]
    index = period_index(t, edges)
    counts = np.bincount(index, minlength=periods)
    empty = counts == 0
    results: dict[str, np.ma.MaskedArray] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        sums = np.bincount(index, weights=v, minlength=periods)
        means = np.divide(sums, counts, out=np.zeros(periods), where=~empty)
        # One sort by (period, value) serves min, max, distinctCount and percentiles; a
        # period's values are then the run ranked[starts[p]:starts[p] + counts[p]].
        ranks = any(m not in ("totalCount", "sum", "avg", "sumsq", "stddev") for m in methods)
        order = np.lexsort((v, index)) if ranks else np.arange(len(v))
        ranked, ranked_index = v[order], index[order]
        starts = np.cumsum(counts) - counts
        first = np.minimum(starts, max(len(v) - 1, 0))
        last = np.maximum(starts + counts - 1, 0)
        padded = ranked if len(v) else np.zeros(1)
        for method in methods:
            if method == "totalCount":
                results[method] = masked(counts, np.zeros(periods, dtype=bool))
            elif method == "sum":
                results[method] = masked(sums, empty)
            elif method == "avg":
                results[method] = masked(means, empty)
            elif method == "sumsq":
                results[method] = masked(np.bincount(index, v * v, periods), empty)
            elif method == "stddev":
                # Two passes (deviations from the period mean) keep the digits that
                # sumsq - sum**2 / n would cancel away.
                deviations = v - means[index]
                squares = np.bincount(index, deviations * deviations, periods)
                variance = np.divide(squares, counts - 1, out=np.zeros(periods), where=counts > 1)
                results[method] = masked(np.sqrt(variance), counts < 2)
            elif method == "min":
                results[method] = masked(padded[first], empty)
            elif method == "max":
                results[method] = masked(padded[last], empty)
            elif method == "distinctCount":
                new = np.ones(len(v), dtype=bool)
                new[1:] = (ranked[1:] != ranked[:-1]) | (ranked_index[1:] != ranked_index[:-1])
                distinct = np.bincount(ranked_index, new.astype(np.float64), periods)
                results[method] = masked(distinct.astype(np.int64), np.zeros(periods, dtype=bool))
            else:
                results[method] = percentile(ranked, starts, counts, percentile_q(method))
    return results


def percentile(
    ranked: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float
) -> np.ma.MaskedArray:
    """The q-th percentile of each period's sorted run, as numpy's "linear" method."""
    empty = counts == 0
    if len(ranked) == 0:
        return masked(np.zeros(len(counts)), empty)
    position = q / 100 * np.maximum(counts - 1, 0)
    low = np.floor(position).astype(np.int64)
    gamma = position - low
    high = np.minimum(low + 1, np.maximum(counts - 1, 0))
    size = len(ranked) - 1
    below = ranked[np.minimum(starts + low, size)]
    above = ranked[np.minimum(starts + high, size)]
    # numpy's lerp: from the nearer end, so that gamma 0 and 1 give the ranks exactly.
    step = above - below
    value = np.where(gamma >= 0.5, above - step * (1 - gamma), below + step * gamma)
    return masked(value, empty)


def rollup_hours(times: Any, values: Any) -> Rollups:
    """Hourly rollups of raw values, to join DB rollups for hours still pending refresh."""
    t = np.asarray(times, dtype="datetime64[us]")
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    hours = t.astype("datetime64[h]").astype("datetime64[us]")
    buckets, index = np.unique(hours, return_inverse=True)
    size = len(buckets)
    order = np.lexsort((v, index))
    counts = np.bincount(index, minlength=size)
    starts = np.cumsum(counts) - counts
    with np.errstate(over="ignore"):
        return Rollups(
            buckets,
            counts,
            np.bincount(index, v, size),
            np.bincount(index, v * v, size),
            v[order][starts],
            v[order][starts + counts - 1],
        )


def combine_rollups(
    buckets: Any,
    counts: Any,
    sums: Any,
    sumsqs: Any,
    mins: Any,
    maxs: Any,
    edges: Any,
    methods: Sequence[str],
) -> dict[str, np.ma.MaskedArray]:
    """The rollup-servable methods per period from hourly rollups; same answers as `aggregate`."""
    series = np.zeros(len(np.asarray(buckets)), dtype=np.int64)
    combined = combine_series_rollups(
        series, 1, buckets, counts, sums, sumsqs, mins, maxs, edges, methods
    )
    return {method: result[0] for method, result in combined.items()}


def combine_series_rollups(
    series: Any,
    size: int,
    buckets: Any,
    counts: Any,
    sums: Any,
    sumsqs: Any,
    mins: Any,
    maxs: Any,
    edges: Any,
    methods: Sequence[str],
    *,
    period_buckets: bool = False,
) -> dict[str, np.ma.MaskedArray]:
    """`combine_rollups` for `size` series at once: the rows of series `series[i]` (0 ..
    size - 1) are combined per period; each result is a (size, periods) masked array.
    `period_buckets`: the buckets are whole periods (SQL `date_bin` summaries), not hours."""
    for method in methods:
        if method not in ROLLUP_METHODS:
            raise ValueError(f"hourly rollups cannot answer {method}")
    edges = np.asarray(edges, dtype="datetime64[us]")
    hours = np.asarray(buckets, dtype="datetime64[us]")
    # A bucket must lie wholly inside one period, or its summary would be split wrongly:
    # hourly rollups need hour-aligned edges; per-period summaries must start on an edge.
    if period_buckets:
        if not np.isin(hours, edges[:-1]).all():
            raise ValueError("per-period summaries must start on period edges")
    elif not is_hour_aligned(edges) or not is_hour_aligned(hours):
        raise ValueError("rollups need period edges and buckets on whole UTC hours")
    periods = max(len(edges) - 1, 0)
    shape = (size, periods)
    if periods == 0 or size == 0:
        return {m: masked(np.zeros(shape), np.zeros(shape, dtype=bool)) for m in methods}
    n = np.asarray(counts, dtype=np.int64)
    keep = (n > 0) & (hours >= edges[0]) & (hours < edges[-1])
    owner = np.asarray(series, dtype=np.int64)[keep]
    hours, n = hours[keep], n[keep]
    columns = [np.asarray(c, dtype=np.float64)[keep] for c in (sums, sumsqs, mins, maxs)]
    moments = hours.astype(np.int64)
    later = (owner[1:] > owner[:-1]) | ((owner[1:] == owner[:-1]) & (moments[1:] >= moments[:-1]))
    if not later.all():
        # Rollups from the DB come sorted; raw rows of pending hours are appended after them.
        order = np.lexsort((moments, owner))
        owner, hours, moments, n = owner[order], hours[order], moments[order], n[order]
        columns = [column[order] for column in columns]
    # Rollups from the DB and from raw rows of pending hours are joined by the caller; an
    # hour given twice would be counted twice.
    if ((owner[1:] == owner[:-1]) & (moments[1:] == moments[:-1])).any():
        raise ValueError("an hour appears more than once in the rollups")
    # One cell per (series, period); sorted rows give non-decreasing cells.
    cell = owner * periods + period_index(hours, edges)
    cells = size * periods
    total = np.bincount(cell, n, cells).astype(np.int64)
    empty = total == 0
    results: dict[str, np.ma.MaskedArray] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.bincount(cell, columns[0], cells)
        ss = np.bincount(cell, columns[1], cells)
        for method in methods:
            value: np.ndarray
            if method == "totalCount":
                value, none = total, np.zeros(cells, dtype=bool)
            elif method == "sum":
                value, none = s, empty
            elif method == "avg":
                value, none = np.divide(s, total, out=np.zeros(cells), where=~empty), empty
            elif method == "sumsq":
                value, none = ss, empty
            elif method == "stddev":
                squares = ss - np.divide(s * s, total, out=np.zeros(cells), where=~empty)
                variance = np.divide(
                    np.maximum(squares, 0), total - 1, out=np.zeros(cells), where=total > 1
                )
                value, none = np.sqrt(variance), total < 2
            else:
                source = columns[2] if method == "min" else columns[3]
                reduce = np.minimum if method == "min" else np.maximum
                value = np.zeros(cells)
                if len(cell):
                    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
                    value[cell[starts]] = reduce.reduceat(source, starts)
                none = empty
            results[method] = masked(value.reshape(shape), none.reshape(shape))
    return results


def fill_gaps(edges: Any, result: np.ma.MaskedArray, method: str) -> np.ma.MaskedArray:
    """Stadspuls extension: periods without a value as null, previous value, or linear."""
    if method not in GAP_FILLS:
        raise ValueError(f"unknown gap fill {method!r}; use one of {', '.join(GAP_FILLS)}")
    mask = np.ma.getmaskarray(result)
    data = np.ma.getdata(result)
    if method == "null" or not mask.any() or mask.all():
        return result
    positions = np.arange(len(data))
    if method == "previous":
        # Last observation carried forward; leading gaps have nothing to carry.
        source = np.maximum.accumulate(np.where(mask, -1, positions))
        return masked(data[np.maximum(source, 0)], source < 0)
    # Linear: each period's value sits at its midpoint, as periods differ in length (DST,
    # months); no extrapolation before the first or after the last value.
    edge_us = np.asarray(edges, dtype="datetime64[us]").astype(np.int64)
    middles = ((edge_us[:-1] - edge_us[0]) + (edge_us[1:] - edge_us[0])) / 2
    known = ~mask
    line = np.interp(middles, middles[known], data[known].astype(np.float64))
    outside = (positions < positions[known][0]) | (positions > positions[known][-1])
    return masked(line, outside)
