"""The hysteresis state machine of one rule on one entity: normal → pending → firing → normal.

A condition kind (alerts/conditions.py) turns readings into evaluation points: a time, a
value, whether the point breaches the level and whether it clears it (they never both hold;
a point may do neither, e.g. a value between clear level and level). Then:

- normal → pending at the first breaching point (`since` = its time);
- pending → firing at the first point, still breaching without a break, at least
  `min_duration` after `since` (at once when min_duration is 0): "raised";
- pending → normal at the first point that does not breach;
- firing → normal at the first clearing point: "resolved" (points between the clear level
  and the level keep the alert open: that is the hysteresis).

Rather than stepping through every point, the machine jumps with searchsorted from one
possible change to the next, so a quiet batch costs a few numpy calls per entity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerts.state import Change, RuleState
from alerts.times import from_microseconds, to_microseconds


@dataclass(frozen=True, slots=True)
class Event:
    """A change found by the machine, by index into the evaluation points."""

    change: Change
    index: int
    value: float
    peak: float
    raised_at_us: int


@dataclass(frozen=True, slots=True)
class Points:
    """Evaluation points of one rule on one entity, in time order."""

    times: np.ndarray  # int64 epoch µs
    values: np.ndarray  # float64, finite
    breach: np.ndarray  # bool
    clear: np.ndarray  # bool


def _next(indices: np.ndarray, start: int, end: int) -> int:
    """The first of the sorted `indices` at or after `start`, else `end`."""
    position = int(np.searchsorted(indices, start))
    return int(indices[position]) if position < len(indices) else end


def run(
    state: RuleState, points: Points, min_duration_us: int, higher_is_worse: bool
) -> list[Event]:
    """Advance `state` over `points`; the raised and resolved events, in order."""
    size = len(points.times)
    if size == 0 or (state.status == "normal" and not points.breach.any()):
        return []
    times, values = points.times, points.values
    breaching = np.flatnonzero(points.breach)
    calm = np.flatnonzero(~points.breach)
    clearing = np.flatnonzero(points.clear)
    since = None if state.since is None else to_microseconds(state.since)
    raised = None if state.raised_at is None else to_microseconds(state.raised_at)
    peak = state.peak
    peak_at = None if state.peak_at is None else to_microseconds(state.peak_at)
    events: list[Event] = []
    status = state.status
    index = 0
    while index < size:
        if status == "normal":
            index = _next(breaching, index, size)
            if index == size:
                break
            status, since = "pending", int(times[index])
        if status == "pending":
            assert since is not None
            broken = _next(calm, index, size)
            due = max(index, int(np.searchsorted(times, since + min_duration_us)))
            if due >= broken:
                if broken == size:
                    break
                status, since, index = "normal", None, broken
                continue
            status, raised = "firing", int(times[due])
            peak, peak_at = float(values[due]), raised
            events.append(Event("raised", due, peak, peak, raised))
            index = due + 1
        # firing: the peak follows the points up to the first clearing one.
        assert raised is not None and peak is not None
        end = _next(clearing, index, size)
        if end > index:
            segment = values[index:end]
            worst = int(np.argmax(segment) if higher_is_worse else np.argmin(segment))
            candidate = float(segment[worst])
            if (candidate > peak) if higher_is_worse else (candidate < peak):
                peak, peak_at = candidate, int(times[index + worst])
        if end == size:
            break
        events.append(Event("resolved", end, float(values[end]), peak, raised))
        status, since, raised, peak, peak_at = "normal", None, None, None, None
        state.reported_peak = None
        index = end + 1
    state.status = status
    state.since = None if since is None else from_microseconds(since)
    state.raised_at = None if raised is None else from_microseconds(raised)
    state.peak = peak
    state.peak_at = None if peak_at is None else from_microseconds(peak_at)
    if events and events[-1].change == "raised":
        state.reported_peak = events[-1].peak
    return events


def worsened(state: RuleState, higher_is_worse: bool) -> bool:
    """Whether a firing state's peak is worse than the last one reported."""
    if state.status != "firing" or state.peak is None:
        return False
    if state.reported_peak is None:
        return True
    return state.peak > state.reported_peak if higher_is_worse else state.peak < state.reported_peak
