"""alerts/: state across a restart, dry runs, and batches split any way give the same alerts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from alerts.dryrun import dry_run
from alerts.evaluate import evaluate, evaluate_silence
from alerts.rules import Rule
from alerts.state import RuleState, StateKey, Transition
from tests.unit.test_alert_evaluate import (
    AQ,
    JAM,
    NO2,
    PM,
    RATE,
    SILENCE,
    TF,
    Row,
    at,
    make_readings,
    make_rule,
    series,
    summary,
    traffic,
)

# Three batches per case; the middle one ends while the rule is pending or firing.
CASES: dict[str, tuple[dict[str, Any], list[list[Row]]]] = {
    "threshold, pending across batches": (
        {**PM, "min_duration": "PT10M", "clear_level": 20},
        [
            series("pm25", [(0, 30), (4, 31)]),
            series("pm25", [(8, 32), (12, 40), (14, 22)]),
            series("pm25", [(16, 45), (20, 19), (25, 30)]),
        ],
    ),
    "window mean": (
        {**NO2, "min_duration": "PT5M"},
        [
            series("no2", [(0, 150), (10, 260), (20, 250)]),
            series("no2", [(30, 240), (50, 100)]),
            series("no2", [(75, 90), (95, 300), (100, 400)]),
        ],
    ),
    "rate": (
        {**RATE, "absolute": True},
        [
            series("pm25", [(0, 0), (30, 20)]),
            series("pm25", [(60, 10), (90, 30)]),
            series("pm25", [(120, 31)]),
        ],
    ),
    "congestion": (
        {**JAM, "scope": {"entity_type": TF}, "min_duration": "PT2M"},
        [
            traffic([(0, 10, 0.5), (1, 12, None)]),
            traffic([(3, None, 0.6), (5, 25, 0.5)]),
            traffic([(6, 8, 0.7), (9, 40, 0.1)]),
        ],
    ),
    "silence": (
        {**SILENCE, "attribute": "uptime", "below": 0.5},
        [
            series("uptime", [(0, 0.9), (20, 0.1)]),
            series("uptime", [(40, 0.2)]),
            series("uptime", [(50, 0.8), (90, 0.9)]),
        ],
    ),
}


def _replay(
    rule: Rule, batches: Sequence[Sequence[Row]], restart: bool, entity_type: str
) -> tuple[list[Transition], dict[StateKey, RuleState]]:
    states: dict[StateKey, RuleState] = {}
    found: list[Transition] = []
    for batch in batches:
        found += evaluate([rule], make_readings(batch, entity_type=entity_type), states, {})
        if restart:
            # What the alert_states table holds: the jsonb, read back by a new process.
            states = {
                key: RuleState.from_json(json.loads(json.dumps(state.to_json())))
                for key, state in states.items()
            }
    return found, states


@pytest.mark.parametrize("case", list(CASES))
def test_a_restart_between_batches_changes_nothing(case: str) -> None:
    fields, batches = CASES[case]
    rule = make_rule(fields["kind"], **fields)
    entity_type = TF if fields["kind"] == "congestion" else AQ
    single, single_states = _replay(rule, batches, False, entity_type)
    restarted, restarted_states = _replay(rule, batches, True, entity_type)
    assert restarted == single
    assert restarted_states == single_states
    assert {transition.change for transition in single} >= {"raised", "resolved"}


@pytest.mark.parametrize("case", list(CASES))
def test_one_batch_or_several_raise_and_resolve_alike(case: str) -> None:
    fields, batches = CASES[case]
    rule = make_rule(fields["kind"], **fields)
    entity_type = TF if fields["kind"] == "congestion" else AQ
    split, _ = _replay(rule, batches, False, entity_type)
    whole, _ = _replay(rule, [[row for batch in batches for row in batch]], False, entity_type)
    assert [t for t in split if t.change != "updated"] == [
        t for t in whole if t.change != "updated"
    ]


def test_state_json_is_plain_and_checked() -> None:
    rule = make_rule("window", **NO2)
    states: dict[StateKey, RuleState] = {}
    evaluate([rule], make_readings(series("no2", [(0, 300), (30, 250)])), states, {})
    data = states[("", "window", "e1")].to_json()
    assert data == {
        "version": 1,
        "status": "firing",
        "since": "2024-05-01T08:00:00Z",
        "raised_at": "2024-05-01T08:00:00Z",
        "peak": 300.0,
        "peak_at": "2024-05-01T08:00:00Z",
        "reported_peak": 300.0,
        "last_time": "2024-05-01T08:30:00Z",
        "last_value": 250.0,
        "speed": None,
        "occupancy": None,
        "window": {"times_us": [1714550400000000, 1714552200000000], "values": [300.0, 250.0]},
    }
    with pytest.raises(ValueError, match="version 7 is not supported"):
        RuleState.from_json({**data, "version": 7})
    with pytest.raises(ValueError, match="status 'burning' is not one of"):
        RuleState.from_json({**data, "status": "burning"})


PM_HISTORY = series(
    "pm25",
    [(0, 30), (10, 10), (15, 35), (25, 10), (30, 30), (40, 10), (50, 40), (55, 45), (70, 10)],
)


@pytest.mark.parametrize(
    ("fields", "rows", "start", "end", "expected"),
    [
        pytest.param(
            PM,
            PM_HISTORY,
            20,
            60,
            [("e1", 15, 25, 35), ("e1", 30, 40, 30), ("e1", 50, None, 45)],
            id="threshold: episodes over before start are left out; one is still open",
        ),
        pytest.param(
            {**PM, "enabled": False, "level": 38},
            PM_HISTORY,
            0,
            80,
            [("e1", 50, 70, 45)],
            id="a disabled rule is replayed as if it were on",
        ),
        pytest.param(
            {**NO2, "window": "PT30M"},
            series("no2", [(0, 400), (20, 100), (40, 100)]),
            20,
            60,
            [("e1", 0, 40, 400)],
            id="window: readings before start fill the window",
        ),
        pytest.param(
            SILENCE,
            series("pm25", [(0, 1), (10, 1), (60, 1)], "e1") + series("pm25", [(0, 1)], "e2"),
            0,
            100,
            [("e2", 30, None, 6000), ("e1", 40, 60, 3000), ("e1", 90, None, 2400)],
            id="silence: gaps, and one still going on at end",
        ),
    ],
)
def test_dry_run(
    fields: dict[str, Any],
    rows: list[Row],
    start: float,
    end: float,
    expected: list[tuple[Any, ...]],
) -> None:
    rule = make_rule(fields["kind"], **fields)
    result = dry_run(rule, make_readings(rows), {}, at(start), at(end))
    minute = timedelta(minutes=1)
    found = [
        (
            episode.entity_id,
            (episode.raised_at - at(0)) / minute,
            None if episode.resolved_at is None else (episode.resolved_at - at(0)) / minute,
            episode.peak,
        )
        for episode in result.episodes
    ]
    assert found == expected
    assert result.times_fired == len(expected)


def test_silence_timer_between_batches_matches_a_replay() -> None:
    rule = make_rule("silence", **SILENCE)
    states: dict[StateKey, RuleState] = {}
    live = evaluate([rule], make_readings(series("pm25", [(0, 1)])), states, {})
    live += evaluate_silence([rule], {"e1": (AQ, at(0))}, states, {}, at(35), "")
    live += evaluate([rule], make_readings(series("pm25", [(50, 1)])), states, {})
    replayed = dry_run(rule, make_readings(series("pm25", [(0, 1), (50, 1)])), {}, at(0), at(50))
    assert summary(live) == [("raised", 30, 2100, 2100), ("resolved", 50, 3000, 3000)]
    assert [(e.raised_at, e.resolved_at, e.peak) for e in replayed.episodes] == [
        (at(30), at(50), 3000)
    ]
