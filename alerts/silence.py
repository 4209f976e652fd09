"""Silence rules: an entity sent no sign of life for longer than `silent_for`.

A sign of life is a reading of the rule's `attribute` (any attribute when none is named)
whose value is not below `below` (when given; a non-numeric value counts). The state keeps
in `last_time` the newest sign of life, or the first reading ever seen when none was good.

- The timer (`check`, through alerts.evaluate.evaluate_silence) raises when `now` is more
  than silent_for after that time; the alert is dated at the moment the silence passed
  silent_for, its value the seconds of silence so far.
- A sign of life (`observe`, in the ingest path) resolves a firing alert. A gap longer than
  silent_for between two signs of life that no timer saw (the service was down, or a replay)
  is raised and resolved at once, so every silence is recorded exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from alerts.durations import describe_duration
from alerts.names import short_name
from alerts.rules import SilenceRule
from alerts.state import Change, RuleState
from alerts.times import duration_microseconds, from_microseconds, to_microseconds


@dataclass(frozen=True, slots=True)
class SilenceEvent:
    """A raised or resolved silence; value and peak in seconds of silence."""

    change: Change
    at_us: int
    value: float
    peak: float
    raised_at_us: int


def observe(
    rule: SilenceRule, state: RuleState, times: np.ndarray, values: np.ndarray
) -> list[SilenceEvent]:
    """Advance a silence state over an entity's readings (time order, none older than it)."""
    limit = duration_microseconds(rule.silent_for)
    alive = times if rule.below is None else times[~(values < rule.below)]
    reference = to_microseconds(state.last_time) if state.last_time is not None else None
    if reference is None:
        # The clock starts at the first reading ever seen, good or not.
        reference = int(times[0])
        state.last_time = from_microseconds(reference)
    if not len(alive):
        return []
    events: list[SilenceEvent] = []
    moments = np.concatenate([[reference], alive])
    gaps = np.diff(moments)
    first = 0
    if state.status == "firing":
        assert state.raised_at is not None
        gap = float(gaps[0]) / 1e6
        peak = max(gap, state.peak or 0.0)
        raised = to_microseconds(state.raised_at)
        events.append(SilenceEvent("resolved", int(alive[0]), gap, peak, raised))
        state.status, state.raised_at, state.peak, state.peak_at = "normal", None, None, None
        state.reported_peak = None
        first = 1
    for index in np.flatnonzero(gaps[first:] > limit) + first:
        gap = float(gaps[index]) / 1e6
        raised = int(moments[index]) + limit
        events.append(SilenceEvent("raised", raised, limit / 1e6, limit / 1e6, raised))
        events.append(SilenceEvent("resolved", int(moments[index + 1]), gap, gap, raised))
    state.last_time = from_microseconds(int(alive[-1]))
    state.last_value = float(values[-1])
    return events


def check(
    rule: SilenceRule, state: RuleState, last_seen: datetime, now: datetime
) -> SilenceEvent | None:
    """The timer: raise when the entity is silent for longer than silent_for at `now`."""
    reference = to_microseconds(last_seen)
    if state.last_time is not None:
        known = to_microseconds(state.last_time)
        # Without an attribute any reading is a sign of life, and last_seen knows them all;
        # with one, only the state knows which readings were good.
        reference = max(reference, known) if rule.attribute is None else known
    silent = to_microseconds(now) - reference
    limit = duration_microseconds(rule.silent_for)
    if silent <= limit:
        return None
    seconds = silent / 1e6
    if state.status == "firing":
        state.peak = max(state.peak or 0.0, seconds)
        return None
    raised = reference + limit
    state.status = "firing"
    state.last_time = from_microseconds(reference)
    state.raised_at = state.peak_at = from_microseconds(raised)
    state.peak = state.reported_peak = seconds
    return SilenceEvent("raised", raised, seconds, seconds, raised)


def describe(rule: SilenceRule, change: Change, value: float) -> str:
    """The detail of a silence transition."""
    name = None if rule.attribute is None else short_name(rule.attribute)
    what = "no reading" if name is None else f"no reading of {name}"
    if rule.below is not None:
        what += f" at or above {rule.below:g}"
    limit = describe_duration(rule.silent_for)
    silent = describe_duration(timedelta(seconds=value))
    if change == "resolved":
        return f"{what} for {silent} (limit {limit}): a reading arrived"
    return f"{what} for {silent} (limit {limit})"
