"""alerts/evaluate.py: every rule kind, scopes, tenants and ordering, table-driven."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from alerts.conditions import window_statistic
from alerts.evaluate import evaluate, evaluate_silence, retire_rule
from alerts.readings import EntityInfo, Readings
from alerts.rules import Rule, parse_rule
from alerts.state import RuleState, StateKey, Transition

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
AQ = "AirQualityObserved"
TF = "TrafficFlowObserved"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]],
}
#: A reading: (entity, attribute, minute after T0, value); entity type AQ, tenant "".
Row = tuple[str, str, float, float | None]


def at(minute: float) -> datetime:
    """T0 plus `minute` minutes."""
    return T0 + timedelta(minutes=minute)


def make_rule(kind: str, /, **fields: Any) -> Rule:
    """A rule of `kind` (tenant '', scope: entity type AQ) with `fields` on top."""
    data: dict[str, Any] = {
        "id": fields.pop("id", kind),
        "name": kind,
        "kind": kind,
        "scope": {"entity_type": AQ},
        "category": "environment",
        "sub_category": "airPollution",
    }
    data.update(fields)
    return parse_rule(data)


def make_readings(
    rows: Sequence[Row],
    tenant: str = "",
    entity_type: str = AQ,
    types: dict[str, str] | None = None,
) -> Readings:
    """Readings from (entity, attribute, minute, value) rows."""
    return Readings.from_rows(
        (
            tenant,
            entity,
            (types or {}).get(entity, entity_type),
            attribute,
            "",
            at(minute),
            value,
            None,
            None,
        )
        for entity, attribute, minute, value in rows
    )


def series(
    attribute: str, points: Sequence[tuple[float, float | None]], entity: str = "e1"
) -> list[Row]:
    """Rows of one entity and attribute from (minute, value) pairs."""
    return [(entity, attribute, minute, value) for minute, value in points]


def summary(transitions: Sequence[Transition]) -> list[tuple[str, float, float, float]]:
    """(change, minute, value, peak) of each transition."""
    return [
        (
            transition.change,
            (transition.at - T0) / timedelta(minutes=1),
            round(transition.value, 9),
            round(transition.peak, 9),
        )
        for transition in transitions
    ]


def run(
    rule: Rule,
    rows: Sequence[Row],
    states: dict[StateKey, RuleState] | None = None,
    entities: dict[str, EntityInfo] | None = None,
) -> list[Transition]:
    """Evaluate one rule over one batch."""
    return evaluate([rule], make_readings(rows), {} if states is None else states, entities or {})


PM = {"kind": "threshold", "attribute": "pm25", "operator": "above", "level": 25}


@pytest.mark.parametrize(
    ("fields", "points", "expected"),
    [
        pytest.param(
            {},
            [(0, 20), (5, 30), (10, 26), (15, 24)],
            [("raised", 5, 30, 30), ("resolved", 15, 24, 30)],
            id="above raises and resolves",
        ),
        pytest.param({}, [(0, 25), (5, 25)], [], id="equal to the level does not fire"),
        pytest.param(
            {"clear_level": 20},
            [(0, 30), (5, 20)],
            [("raised", 0, 30, 30), ("resolved", 5, 20, 30)],
            id="equal to the clear level resolves",
        ),
        pytest.param(
            {"clear_level": 20},
            [(0, 30), (5, 22), (10, 24.9), (15, 21), (20, 19)],
            [("raised", 0, 30, 30), ("resolved", 20, 19, 30)],
            id="hysteresis: dips between clear level and level keep it open",
        ),
        pytest.param(
            {"operator": "below", "level": 10, "clear_level": 12},
            [(0, 15), (5, 8), (10, 11), (15, 12)],
            [("raised", 5, 8, 8), ("resolved", 15, 12, 8)],
            id="below raises and resolves",
        ),
        pytest.param(
            {"min_duration": "PT10M"},
            [(0, 30), (5, 30), (8, 20), (10, 30), (15, 31)],
            [],
            id="min duration: a short spike does not fire",
        ),
        pytest.param(
            {"min_duration": "PT10M"},
            [(0, 30), (5, 31), (10, 27), (15, 33)],
            [("raised", 10, 27, 27), ("updated", 15, 33, 33)],
            id="min duration: pending, then firing when it is reached",
        ),
        pytest.param(
            {"min_duration": "PT10M"},
            [(0, 30), (9, 30), (11, 30)],
            [("raised", 11, 30, 30)],
            id="min duration: fires at the first reading past it",
        ),
        pytest.param(
            {},
            [(0, 30), (5, 40), (10, 50), (15, 45)],
            [("raised", 0, 30, 30), ("updated", 10, 50, 50)],
            id="a worse peak is reported once per batch",
        ),
        pytest.param(
            {},
            [(0, 30), (5, 10), (10, 35), (15, 10)],
            [("raised", 0, 30, 30), ("resolved", 5, 10, 30)]
            + [("raised", 10, 35, 35), ("resolved", 15, 10, 35)],
            id="two episodes in one batch",
        ),
    ],
)
def test_threshold(
    fields: dict[str, Any], points: list[tuple[float, float]], expected: list[tuple[Any, ...]]
) -> None:
    rule = make_rule("threshold", **{**PM, **fields})
    assert summary(run(rule, series("pm25", points))) == expected


def test_threshold_across_batches_reports_a_worse_peak_once_per_batch() -> None:
    rule = make_rule("threshold", **PM)
    states: dict[StateKey, RuleState] = {}
    batches = [[(0, 30)], [(5, 28)], [(10, 40), (15, 45)], [(20, 44)], [(25, 10)]]
    found = [summary(run(rule, series("pm25", batch), states)) for batch in batches]
    assert found == [
        [("raised", 0, 30, 30)],
        [],
        [("updated", 15, 45, 45)],
        [],
        [("resolved", 25, 10, 45)],
    ]
    assert states[("", "threshold", "e1")].status == "normal"


def test_transitions_carry_the_rule_and_a_detail() -> None:
    rule = make_rule("threshold", **PM, min_duration="PT10M", severity="high")
    (raised,) = run(rule, series("pm25", [(0, 27.4), (10, 27.4)]))
    assert (raised.rule_id, raised.entity_id, raised.tenant) == ("threshold", "e1", "")
    assert (raised.severity, raised.category, raised.sub_category) == (
        "high",
        "environment",
        "airPollution",
    )
    assert raised.detail == "pm25 27.4 > 25 for 10 min"
    assert raised.at == raised.raised_at == at(10)
    assert raised.at.tzinfo is not None


NO2 = {
    "kind": "window",
    "attribute": "no2",
    "statistic": "mean",
    "window": "PT1H",
    "operator": "above",
    "level": 200,
}


@pytest.mark.parametrize(
    ("fields", "points", "expected"),
    [
        pytest.param(
            {},
            [(0, 400), (60, 100)],
            [("raised", 0, 400, 400), ("resolved", 60, 100, 400)],
            id="a reading exactly one window old is outside it",
        ),
        pytest.param(
            {},
            [(0, 400), (59, 100)],
            [("raised", 0, 400, 400)],
            id="a reading just under one window old is inside it",
        ),
        pytest.param(
            {},
            [(0, 150), (20, 250), (40, 230), (70, 100), (90, 100)],
            [("raised", 40, 210, 210), ("resolved", 70, 193.333333333, 210)],
            id="hourly mean: 150, 200 (not above), 210, then 580/3 clears",
        ),
        pytest.param(
            {"statistic": "max", "window": "PT30M", "level": 300},
            [(0, 350), (20, 100), (31, 100)],
            [("raised", 0, 350, 350), ("resolved", 31, 100, 350)],
            id="max over 30 minutes",
        ),
        pytest.param(
            {"statistic": "count", "level": 2, "window": "PT10M"},
            [(0, 1), (1, 1), (2, 1), (20, 1)],
            [("raised", 2, 3, 3), ("resolved", 20, 1, 3)],
            id="count of readings",
        ),
        pytest.param(
            {"statistic": "mean", "window": "P1D", "level": 50, "attribute": "pm10"},
            [(hour * 60, 60) for hour in range(24)] + [(24 * 60, 20), (25 * 60, 20)],
            [("raised", 0, 60, 60)],
            id="PM10 daily mean stays above 50 as the oldest hour leaves",
        ),
    ],
)
def test_window(
    fields: dict[str, Any], points: list[tuple[float, float]], expected: list[tuple[Any, ...]]
) -> None:
    rule = make_rule("window", **{**NO2, **fields})
    assert summary(run(rule, series(rule.attributes()[0], points))) == expected


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("mean", [1, 1.5, 2, 3.5, 3.5]),
        ("sum", [1, 3, 6, 14, 14]),
        ("min", [1, 1, 1, 2, 2]),
        ("max", [1, 2, 3, 5, 5]),
        ("count", [1, 2, 3, 4, 4]),
    ],
)
def test_window_statistics_over_the_half_open_window(statistic: str, expected: list[float]) -> None:
    minutes = np.array([0, 10, 20, 60, 60]) * 60_000_000
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # At minute 60 the window (0, 60] drops the reading at 0 and holds both readings at 60.
    found = window_statistic(statistic, minutes, values, 60 * 60_000_000, 0)
    assert found.tolist() == expected


RATE = {"kind": "rate", "attribute": "pm25", "operator": "above", "level": 10}


@pytest.mark.parametrize(
    ("fields", "points", "expected"),
    [
        pytest.param(
            {},
            [(0, 0), (30, 10), (60, 12)],
            [("raised", 30, 20, 20), ("resolved", 60, 4, 20)],
            id="rising 20 per hour",
        ),
        pytest.param(
            {"operator": "below", "level": -10},
            [(0, 50), (30, 40), (60, 40)],
            [("raised", 30, -20, -20), ("resolved", 60, 0, -20)],
            id="falling 20 per hour",
        ),
        pytest.param(
            {"absolute": True},
            [(0, 50), (30, 40), (60, 55)],
            [("raised", 30, 20, 20), ("updated", 60, 30, 30)],
            id="absolute: the size of the change",
        ),
        pytest.param(
            {"per": "PT1M", "level": 1},
            [(0, 0), (30, 60)],
            [("raised", 30, 2, 2)],
            id="per minute",
        ),
        pytest.param({}, [(0, 100)], [], id="one reading has no rate"),
        pytest.param(
            {},
            [(0, 0), (30, 0), (30, 100), (40, 0)],
            [],
            id="readings at the same time have no rate between them",
        ),
    ],
)
def test_rate(
    fields: dict[str, Any], points: list[tuple[float, float]], expected: list[tuple[Any, ...]]
) -> None:
    rule = make_rule("rate", **{**RATE, **fields})
    assert summary(run(rule, series("pm25", points))) == expected


def test_rate_uses_the_previous_batch() -> None:
    rule = make_rule("rate", **RATE)
    states: dict[StateKey, RuleState] = {}
    assert run(rule, series("pm25", [(0, 0)]), states) == []
    assert summary(run(rule, series("pm25", [(30, 10)]), states)) == [("raised", 30, 20, 20)]


JAM = {"kind": "congestion", "speed_below": 20, "occupancy_above": 0.3, "speed_clear": 30}
SPEED, OCCUPANCY = "averageVehicleSpeed", "occupancy"


def traffic(points: Sequence[tuple[float, float | None, float | None]]) -> list[Row]:
    """Rows of a traffic sensor from (minute, speed, occupancy); None leaves one out."""
    rows: list[Row] = []
    for minute, speed, occupancy in points:
        if speed is not None:
            rows.append(("loop", SPEED, minute, speed))
        if occupancy is not None:
            rows.append(("loop", OCCUPANCY, minute, occupancy))
    return rows


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param([(0, 10, 0.5)], [("raised", 0, 10, 10)], id="slow and full"),
        pytest.param([(0, 10, 0.1)], [], id="slow alone does not fire"),
        pytest.param([(0, 50, 0.5)], [], id="full alone does not fire"),
        pytest.param(
            [(0, 10, 0.5), (5, 25, 0.5), (10, 8, 0.6), (15, 35, 0.5)],
            [("raised", 0, 10, 10), ("resolved", 15, 35, 8)],
            id="hysteresis on speed",
        ),
        pytest.param(
            [(0, 10, 0.5), (5, 10, 0.2)],
            [("raised", 0, 10, 10), ("resolved", 5, 10, 10)],
            id="occupancy clears",
        ),
        pytest.param(
            [(0, 10, None), (5, None, 0.5)],
            [("raised", 5, 10, 10)],
            id="the latest speed pairs with a later occupancy",
        ),
        pytest.param(
            [(0, 50, 0.5), (5, 10, 0.1)],
            [],
            id="a speed and an occupancy of one time are judged together",
        ),
    ],
)
def test_congestion(
    points: list[tuple[float, float | None, float | None]], expected: list[tuple[Any, ...]]
) -> None:
    rule = make_rule("congestion", **JAM, scope={"entity_type": TF})
    found = evaluate([rule], make_readings(traffic(points), entity_type=TF), {}, {})
    assert summary(found) == expected


def test_congestion_detail_names_both_conditions() -> None:
    rule = make_rule("congestion", **JAM, scope={"entity_type": TF})
    (raised,) = evaluate([rule], make_readings(traffic([(0, 12, 0.45)]), entity_type=TF), {}, {})
    assert raised.detail == "averageVehicleSpeed 12 < 20 and occupancy 0.45 > 0.3"


SILENCE = {"kind": "silence", "silent_for": "PT30M"}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(29, [], id="not yet"),
        pytest.param(30, [], id="exactly silent_for is not longer than it"),
        pytest.param(31, [("raised", 30, 1860, 1860)], id="raised, dated when it passed"),
    ],
)
def test_silence_timer(now: float, expected: list[tuple[Any, ...]]) -> None:
    rule = make_rule("silence", **SILENCE)
    found = evaluate_silence([rule], {"e1": (AQ, at(0))}, {}, {}, at(now), "")
    assert summary(found) == expected


def test_silence_timer_raises_once_and_a_reading_resolves() -> None:
    rule = make_rule("silence", **SILENCE)
    states: dict[StateKey, RuleState] = {}
    last_seen = {"e1": (AQ, at(0)), "e2": (AQ, at(40))}
    raised = evaluate_silence([rule], last_seen, states, {}, at(45), "")
    assert [(t.entity_id, t.change) for t in raised] == [("e1", "raised")]
    assert evaluate_silence([rule], last_seen, states, {}, at(50), "") == []
    assert set(states) == {("", "silence", "e1")}
    resolved = run(rule, series("temperature", [(55, 20.0)]), states)
    assert summary(resolved) == [("resolved", 55, 3300, 3300)]
    assert resolved[0].raised_at == at(30)
    assert states[("", "silence", "e1")].status == "normal"


@pytest.mark.parametrize(
    ("fields", "rows", "expected"),
    [
        pytest.param(
            {},
            series("pm25", [(0, 1), (40, 1), (50, 1)]),
            [("raised", 30, 1800, 1800), ("resolved", 40, 2400, 2400)],
            id="a gap no timer saw is raised and resolved",
        ),
        pytest.param(
            {},
            series("pm25", [(0, 1)]) + series("status", [(25, None)]) + series("pm25", [(50, 1)]),
            [],
            id="a reading that is not a number is a sign of life",
        ),
        pytest.param(
            {"attribute": "uptime", "below": 0.5, "silent_for": "PT1H"},
            series("uptime", [(0, 0.9), (30, 0.2), (60, 0.3), (90, 0.8)]),
            [("raised", 60, 3600, 3600), ("resolved", 90, 5400, 5400)],
            id="Telraam uptime below 0.5 is no sign of life",
        ),
        pytest.param(
            {"attribute": "uptime", "silent_for": "PT1H"},
            series("uptime", [(0, 0.9)]) + series("count", [(30, 5), (70, 5)]),
            [],
            id="other attributes do not count when one is named",
        ),
    ],
)
def test_silence_in_the_ingest_path(
    fields: dict[str, Any], rows: list[Row], expected: list[tuple[Any, ...]]
) -> None:
    rule = make_rule("silence", **{**SILENCE, **fields})
    assert summary(run(rule, rows)) == expected


def test_silence_timer_with_an_attribute_trusts_the_state() -> None:
    rule = make_rule("silence", **SILENCE, attribute="uptime", below=0.5)
    states: dict[StateKey, RuleState] = {}
    run(rule, series("uptime", [(0, 0.9), (20, 0.1), (40, 0.1)]), states)
    # The entity sent readings until minute 40, but none was a sign of life after 0.
    found = evaluate_silence([rule], {"e1": (AQ, at(40))}, states, {}, at(41), "")
    assert summary(found) == [("raised", 30, 2460, 2460)]
    assert found[0].detail == "no reading of uptime at or above 0.5 for 41 min (limit 30 min)"


ENTITIES = {
    "inside": EntityInfo("sds011", 3.72, 51.05),
    "edge": EntityInfo("sds011", 3.70, 51.05),
    "outside": EntityInfo("other", 4.35, 50.85),
}


@pytest.mark.parametrize(
    ("scope", "fired"),
    [
        ({"entity": "outside"}, {"outside"}),
        ({"device_model": "sds011"}, {"inside", "edge"}),
        ({"device_model": "none-such"}, set()),
        ({"entity_type": AQ}, {"inside", "edge", "outside"}),
        ({"entity_type": TF}, {"unknown"}),
        ({"area": SQUARE}, {"inside", "edge"}),
        ({"area": SQUARE, "entity_type": TF}, set()),
        ({"area": SQUARE, "entity_type": AQ}, {"inside", "edge"}),
        ({"device_model": "sds011", "entity_type": TF}, set()),
    ],
)
def test_scopes(scope: dict[str, Any], fired: set[str]) -> None:
    rule = make_rule("threshold", **PM, scope=scope)
    rows = [(entity, "pm25", 0, 30.0) for entity in ("inside", "edge", "outside", "unknown")]
    readings = make_readings(rows, types={"unknown": TF})
    found = evaluate([rule], readings, {}, ENTITIES)
    assert {transition.entity_id for transition in found} == fired


def test_silence_timer_scopes() -> None:
    rule = make_rule("silence", **SILENCE, scope={"area": SQUARE})
    last_seen = {entity: (AQ, at(0)) for entity in ("inside", "edge", "outside", "unknown")}
    found = evaluate_silence([rule], last_seen, {}, ENTITIES, at(60), "")
    assert {transition.entity_id for transition in found} == {"inside", "edge"}
    assert evaluate_silence([rule], last_seen, {}, ENTITIES, at(60), "another") == []


def test_several_rules_and_tenants_in_one_batch() -> None:
    rules = [
        make_rule("threshold", **PM, id="pm", tenant="gent"),
        make_rule("threshold", **{**PM, "level": 35}, id="pm", tenant="antwerpen"),
        make_rule("window", **NO2, id="no2", tenant="gent"),
        make_rule("threshold", **PM, id="off", tenant="gent", enabled=False),
    ]
    rows = series("pm25", [(0, 30), (5, 40)]) + series("no2", [(0, 250)])
    readings = Readings.from_rows(
        (tenant, entity, AQ, attribute, "", at(minute), value, None, None)
        for tenant in ("gent", "antwerpen", "brugge")
        for entity, attribute, minute, value in rows
    )
    states: dict[StateKey, RuleState] = {}
    changed: set[StateKey] = set()
    found = evaluate(rules, readings, states, {}, changed)
    assert [(t.tenant, t.rule_id, t.change, t.value) for t in found] == [
        ("gent", "no2", "raised", 250),
        ("gent", "pm", "raised", 30),
        ("antwerpen", "pm", "raised", 40),
        ("gent", "pm", "updated", 40),
    ]
    assert (
        set(states)
        == changed
        == {("gent", "pm", "e1"), ("antwerpen", "pm", "e1"), ("gent", "no2", "e1")}
    )


def test_readings_out_of_order_in_one_batch() -> None:
    rule = make_rule("window", **NO2, min_duration="PT5M")
    rows = series("no2", [(minute, 150 + 10 * minute) for minute in range(0, 30, 3)], "a")
    rows += series("no2", [(minute, 300 - 10 * minute) for minute in range(0, 30, 3)], "b")
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert run(rule, shuffled) == run(rule, rows)
    assert len(run(rule, rows)) >= 2


def test_late_readings_are_ignored_and_equal_times_taken() -> None:
    rule = make_rule("threshold", **PM)
    states: dict[StateKey, RuleState] = {}
    assert run(rule, series("pm25", [(0, 10), (10, 10)]), states) == []
    assert run(rule, series("pm25", [(5, 100)]), states) == []
    assert summary(run(rule, series("pm25", [(10, 100)]), states)) == [("raised", 10, 100, 100)]


def test_readings_from_rows_keep_numbers_only() -> None:
    rows = [
        ("t", "e", "T", "a", "", at(0), 1.5, None, "GQ"),
        ("t", "e", "T", "b", "ds", at(1), None, "text", None),
        ("t", "e", "T", "c", "", datetime(2024, 5, 1, 8, 2), True, None, None),
    ]
    readings = Readings.from_rows(rows)
    assert np.isnan(readings.value[1:]).all() and readings.value[0] == 1.5
    assert readings.observed_at.tolist() == [
        moment.replace(tzinfo=None) for moment in (at(0), at(1), at(2))
    ]
    with pytest.raises(ValueError, match="column entity_id has 1 rows, not 3"):
        Readings(
            readings.tenant,
            readings.entity_id[:1],
            readings.entity_type,
            readings.attribute,
            readings.observed_at,
            readings.value,
        )


def test_nothing_to_do() -> None:
    rule = make_rule("threshold", **PM)
    assert evaluate([rule], Readings.empty(), {}, {}) == []
    assert evaluate([], make_readings(series("pm25", [(0, 30)])), {}, {}) == []
    disabled = make_rule("threshold", **PM, enabled=False)
    assert evaluate([disabled], make_readings(series("pm25", [(0, 30)])), {}, {}) == []


def test_retiring_a_rule_resolves_its_open_alerts() -> None:
    rule = make_rule("threshold", **PM)
    other = make_rule("threshold", **PM, id="other")
    states: dict[StateKey, RuleState] = {}
    rows = series("pm25", [(0, 30)], "e1") + series("pm25", [(0, 10)], "e2")
    evaluate([rule, other], make_readings(rows), states, {})
    found = retire_rule(rule, states, at(5))
    assert [(t.entity_id, t.change, t.value, t.raised_at) for t in found] == [
        ("e1", "resolved", 30, at(0))
    ]
    assert set(states) == {("", "other", "e1"), ("", "other", "e2")}
