"""Capping temporal answers and the Content-Range of 206 Partial Content (clause 6.3.10): pure.

An answer holds at most `limit` instances per series (attribute and datasetId). When one
series has more, every series of the answer is cut at the same instant, so that no instance
of any attribute falls between two pages:
- forwards (no lastN): the instants before the first instance left out are answered;
  `Content-Range: date-time <range-start>-<range-end>/*` with range-start the window's
  timeAt (after, between) or else the oldest instance answered, range-end the newest one
  answered. Every instance at range-end is in the answer: the next page starts just after it
  (timeAt = range-end plus one microsecond, the precision of observedAt here).
- backwards (lastN above the limit): the instants after the newest instance left out;
  range-start is timeAt (before), endTimeAt (between) or else the newest instance answered,
  range-end the oldest one answered, size the requested lastN. The next page is
  `timerel=before&timeAt=<range-end>` (before excludes timeAt).
Aggregated answers hold at most `limit` periods: the first ones, `Content-Range` from the
first period's start to the last answered period's end (exclusive): the next page starts
at range-end exactly.
This is the table Stellio and other brokers follow for the range bounds; the unit is written
`date-time` as they and the ETSI test suite do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

import numpy as np

from ngsi.temporal_output import iso, iso_times
from ngsi.temporal_params import TimeWindow
from storage.temporal_series import Series, SeriesKey

Answer = dict[SeriesKey, Series]


def sliced(series: Series, part: slice) -> Series:
    """The instances of `series` in a slice of its (sorted) times."""
    return replace(
        series,
        times=series.times[part],
        values=series.values[part],
        others=series.others[part] if series.others is not None else None,
        unit_codes=series.unit_codes[part] if series.unit_codes is not None else None,
    )


def cap_forward(found: Mapping[SeriesKey, Series], limit: int) -> tuple[Answer, bool]:
    """The answer cut before the oldest instance some series cannot fit; whether cut."""
    over = [s.times[limit] for s in found.values() if len(s.times) > limit]
    if not over:
        return dict(found), False
    cut = min(over)
    capped = {}
    for key, series in found.items():
        kept = sliced(series, slice(0, int(np.searchsorted(series.times, cut, side="left"))))
        if len(kept.times):
            capped[key] = kept
    return capped, True


def cap_backward(found: Mapping[SeriesKey, Series], limit: int) -> tuple[Answer, bool]:
    """The answer cut after the newest instance some series cannot fit; whether cut."""
    over = [s.times[-limit - 1] for s in found.values() if len(s.times) > limit]
    if not over:
        return dict(found), False
    cut = max(over)
    capped = {}
    for key, series in found.items():
        start = int(np.searchsorted(series.times, cut, side="right"))
        kept = sliced(series, slice(start, None))
        if len(kept.times):
            capped[key] = kept
    return capped, True


def _extremes(answer: Mapping[SeriesKey, Series]) -> tuple[str, str] | None:
    times = [s.times for s in answer.values() if len(s.times)]
    if not times:
        return None
    oldest = min(t[0] for t in times)
    newest = max(t[-1] for t in times)
    first, last = iso_times(np.array([oldest, newest]))
    return first, last


def _bound(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def content_range(
    answer: Mapping[SeriesKey, Series], window: TimeWindow | None, last_n: int | None
) -> str | None:
    """The Content-Range of a capped instance answer (see the module docstring)."""
    extremes = _extremes(answer)
    if extremes is None:
        return None
    oldest, newest = extremes
    timerel = window.timerel if window is not None else None
    if last_n is None:
        start = _bound(window.start) if window and timerel in ("after", "between") else None
        return f"date-time {start or oldest}-{newest}/*"
    start = _bound(window.end) if window and timerel in ("before", "between") else None
    return f"date-time {start or newest}-{oldest}/{last_n}"


def cap_periods(edges: np.ndarray, limit: int) -> tuple[np.ndarray, str | None]:
    """At most `limit` periods, and the Content-Range when some were left out."""
    if len(edges) - 1 <= limit:
        return edges, None
    kept = edges[: limit + 1]
    first, last = iso_times(np.array([kept[0], kept[-1]]))
    return kept, f"date-time {first}-{last}/*"
