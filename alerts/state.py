"""Where a rule stands for one entity (`RuleState`), and the changes it reports (`Transition`).

States are keyed by `StateKey` (tenant, rule id, entity id), the key of the alert_states
table; `RuleState.to_json` is what that table stores as jsonb and `RuleState.from_json` reads
it back, so a restarted worker goes on exactly where the last committed batch left it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from alerts.times import iso

Status = Literal["normal", "pending", "firing"]
Change = Literal["raised", "updated", "resolved"]
#: (tenant, rule id, entity id).
StateKey = tuple[str, str, str]
STATE_VERSION = 1
_STATUSES = ("normal", "pending", "firing")
_TIME_FIELDS = ("since", "raised_at", "peak_at", "last_time")
_NUMBER_FIELDS = ("peak", "reported_peak", "last_value", "speed", "occupancy")


@dataclass(eq=False)
class RuleState:
    """One rule for one entity: its status and what its kind needs from earlier batches."""

    status: Status = "normal"
    #: pending: when the condition began to hold (min_duration counts from here).
    since: datetime | None = None
    #: firing: when the open alert was raised.
    raised_at: datetime | None = None
    #: firing: the worst value of the open alert, and when it was seen.
    peak: float | None = None
    peak_at: datetime | None = None
    #: The peak last reported in a raised or updated transition ("updated" only when worse).
    reported_peak: float | None = None
    #: The newest reading taken into account, and its value; silence rules keep here the
    #: newest reading that counted as a sign of life (or the first one seen).
    last_time: datetime | None = None
    last_value: float | None = None
    #: congestion: the latest speed and occupancy.
    speed: float | None = None
    occupancy: float | None = None
    #: window: the readings that a later window can still hold (epoch µs, value).
    window_times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    window_values: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleState) and self.to_json() == other.to_json()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (times ISO 8601 UTC; the window buffer in epoch microseconds)."""
        data: dict[str, Any] = {"version": STATE_VERSION, "status": self.status}
        for name in _TIME_FIELDS:
            moment = getattr(self, name)
            data[name] = None if moment is None else iso(moment)
        for name in _NUMBER_FIELDS:
            number = getattr(self, name)
            # jsonb has no NaN or infinity.
            data[name] = None if number is None or not math.isfinite(number) else float(number)
        if len(self.window_times):
            data["window"] = {
                "times_us": [int(moment) for moment in self.window_times],
                "values": [float(value) for value in self.window_values],
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleState:
        """The state that to_json wrote; ValueError if `data` is not one."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"alert state version {data.get('version')!r} is not supported")
        status = data.get("status")
        if status not in _STATUSES:
            raise ValueError(f"alert state status {status!r} is not one of {_STATUSES}")
        state = cls(status=status)
        for name in _TIME_FIELDS:
            text = data.get(name)
            setattr(state, name, None if text is None else datetime.fromisoformat(text))
        for name in _NUMBER_FIELDS:
            number = data.get(name)
            setattr(state, name, None if number is None else float(number))
        window = data.get("window")
        if window:
            state.window_times = np.asarray(window["times_us"], dtype=np.int64)
            state.window_values = np.asarray(window["values"], dtype=np.float64)
            if len(state.window_times) != len(state.window_values):
                raise ValueError("alert state window has times and values of different lengths")
        return state


@dataclass(frozen=True)
class Transition:
    """An alert of a rule on an entity was raised, got worse (updated) or was resolved."""

    rule_id: str
    tenant: str
    entity_id: str
    change: Change
    #: The observation time that caused the change (aware UTC); for a silence rule, when the
    #: silence grew longer than silent_for.
    at: datetime
    #: The value that caused it: the reading, statistic, rate, speed, or seconds of silence.
    value: float
    #: The worst value of the alert so far (equal to value when raised).
    peak: float
    #: Human-readable: "pm25 27.4 > 25 for 10 min".
    detail: str
    severity: str
    category: str
    sub_category: str
    #: When the alert was raised (equal to `at` for raised): the Alert's validFrom.
    raised_at: datetime
