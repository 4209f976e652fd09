"""Per rule kind: readings of one entity → evaluation points for the state machine, and details.

Each function gets the entity's readings of the rule's attributes, in time order and newer
than anything the state has seen, advances what the state keeps for the kind (last reading,
window buffer, latest speed and occupancy) and returns the points (alerts/machine.py).
Points whose value is unknown (a rate without a previous reading, a congestion without
both a speed and an occupancy yet) are left out: they neither breach nor clear.
"""

from __future__ import annotations

import numpy as np

from alerts.durations import describe_duration
from alerts.machine import Points
from alerts.names import short_name
from alerts.rules import CongestionRule, RateRule, ThresholdRule, WindowRule
from alerts.state import Change, RuleState
from alerts.times import duration_microseconds, from_microseconds, to_microseconds

LevelRule = ThresholdRule | WindowRule | RateRule
ConditionRule = LevelRule | CongestionRule
_SYMBOL = {"above": ">", "below": "<"}
_CLEAR_SYMBOL = {"above": "<=", "below": ">="}


def _level_points(rule: LevelRule, times: np.ndarray, metric: np.ndarray) -> Points:
    known = np.isfinite(metric)
    times, metric = times[known], metric[known]
    if rule.operator == "above":
        return Points(times, metric, metric > rule.level, metric <= rule.effective_clear_level)
    return Points(times, metric, metric < rule.level, metric >= rule.effective_clear_level)


def _remember_last(state: RuleState, times: np.ndarray, values: np.ndarray) -> None:
    state.last_time = from_microseconds(int(times[-1]))
    state.last_value = float(values[-1])


def threshold_points(
    rule: ThresholdRule, state: RuleState, times: np.ndarray, values: np.ndarray
) -> Points:
    """Every reading is a point; its value is compared with the level."""
    _remember_last(state, times, values)
    return _level_points(rule, times, values)


def window_statistic(
    statistic: str, times: np.ndarray, values: np.ndarray, window_us: int, first: int
) -> np.ndarray:
    """The statistic over (t - window, t] at the time t of each reading from index `first` on.

    A reading exactly `window` older than t is outside the window; every reading at t itself
    (however many share that time) is inside it.
    """
    at = times[first:]
    low = np.searchsorted(times, at - window_us, side="right")
    high = np.searchsorted(times, at, side="right")
    count = (high - low).astype(np.float64)
    if statistic == "count":
        return count
    # reduceat over interleaved (low, high) bounds reduces each window slice in one call;
    # the padding keeps `high` (which may equal len(values)) a valid index.
    padded = np.append(values, 0.0)
    bounds = np.column_stack([low, high]).ravel()
    reducer = {"min": np.minimum, "max": np.maximum}.get(statistic, np.add)
    reduced = reducer.reduceat(padded, bounds)[::2]
    return reduced / count if statistic == "mean" else reduced


def window_points(
    rule: WindowRule, state: RuleState, times: np.ndarray, values: np.ndarray
) -> Points:
    """A point at each reading: the statistic over the trailing window, with earlier batches."""
    window_us = duration_microseconds(rule.window)
    kept = len(state.window_times)
    all_times = np.concatenate([state.window_times, times])
    all_values = np.concatenate([state.window_values, values])
    metric = window_statistic(rule.statistic, all_times, all_values, window_us, kept)
    # Keep what a window ending at a later reading (never older than the newest) can hold.
    start = int(np.searchsorted(all_times, all_times[-1] - window_us, side="right"))
    state.window_times, state.window_values = all_times[start:], all_values[start:]
    _remember_last(state, times, values)
    return _level_points(rule, times, metric)


def rate_points(rule: RateRule, state: RuleState, times: np.ndarray, values: np.ndarray) -> Points:
    """A point at each reading after the first: the change since the previous reading per `per`."""
    if state.last_time is not None and state.last_value is not None:
        previous_times = np.concatenate([[to_microseconds(state.last_time)], times[:-1]])
        previous_values = np.concatenate([[state.last_value], values[:-1]])
    else:
        previous_times = np.concatenate([[times[0]], times[:-1]])
        previous_values = np.concatenate([[np.nan], values[:-1]])
    elapsed = (times - previous_times).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (values - previous_values) / elapsed * duration_microseconds(rule.per)
    rate[elapsed <= 0] = np.nan
    _remember_last(state, times, values)
    return _level_points(rule, times, np.abs(rate) if rule.absolute else rate)


def _carry_forward(given: np.ndarray, values: np.ndarray, seed: float | None) -> np.ndarray:
    """At each row, the value of the latest row where `given` holds (else `seed`, else NaN)."""
    latest = np.maximum.accumulate(np.where(given, np.arange(len(values)), -1))
    carried = values[np.maximum(latest, 0)]
    carried[latest < 0] = np.nan if seed is None else seed
    return carried


def congestion_points(
    rule: CongestionRule,
    state: RuleState,
    times: np.ndarray,
    values: np.ndarray,
    is_speed: np.ndarray,
) -> tuple[Points, np.ndarray]:
    """A point at each reading time: the latest speed (the value) and occupancy (returned too).

    Readings that share a time are taken together, so a speed and an occupancy from one
    message are judged as a pair.
    """
    speed = _carry_forward(is_speed, values, state.speed)
    occupancy = _carry_forward(~is_speed, values, state.occupancy)
    last_of_time = np.append(times[1:] != times[:-1], True)
    known = last_of_time & np.isfinite(speed) & np.isfinite(occupancy)
    state.speed = None if np.isnan(speed[-1]) else float(speed[-1])
    state.occupancy = None if np.isnan(occupancy[-1]) else float(occupancy[-1])
    _remember_last(state, times, values)
    speed, occupancy, times = speed[known], occupancy[known], times[known]
    breach = (speed < rule.speed_below) & (occupancy > rule.occupancy_above)
    clear = (speed >= rule.effective_speed_clear) | (occupancy <= rule.effective_occupancy_clear)
    return Points(times, speed, breach, clear), occupancy


def higher_is_worse(rule: ConditionRule) -> bool:
    """Whether a larger value makes the alert worse (its peak is the maximum)."""
    return not isinstance(rule, CongestionRule) and rule.operator == "above"


def _subject(rule: LevelRule) -> str:
    name = short_name(rule.attribute)
    if isinstance(rule, WindowRule):
        return f"{rule.statistic} of {name} over {describe_duration(rule.window)}"
    if isinstance(rule, RateRule):
        size = "change of " if rule.absolute else "rate of "
        return f"{size}{name} per {describe_duration(rule.per)}"
    return name


def describe(rule: ConditionRule, change: Change, value: float, peak: float, other: float) -> str:
    """The detail of a transition: what was compared with what, and the peak."""
    if isinstance(rule, CongestionRule):
        speed, occupancy = short_name(rule.speed_attribute), short_name(rule.occupancy_attribute)
        if change == "resolved":
            return f"{speed} {value:g}, {occupancy} {other:g}: cleared; lowest {speed} {peak:g}"
        if change == "updated":
            return f"{speed} down to {peak:g} (< {rule.speed_below:g})"
        return (
            f"{speed} {value:g} < {rule.speed_below:g} and {occupancy} {other:g}"
            f" > {rule.occupancy_above:g}{_for(rule)}"
        )
    subject = _subject(rule)
    if change == "resolved":
        return (
            f"{subject} {value:g} {_CLEAR_SYMBOL[rule.operator]} {rule.effective_clear_level:g}:"
            f" cleared; peak {peak:g}"
        )
    if change == "updated":
        return f"{subject} peak {peak:g} {_SYMBOL[rule.operator]} {rule.level:g}"
    return f"{subject} {value:g} {_SYMBOL[rule.operator]} {rule.level:g}{_for(rule)}"


def _for(rule: ConditionRule) -> str:
    return f" for {describe_duration(rule.min_duration)}" if rule.min_duration else ""
