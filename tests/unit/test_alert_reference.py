"""alerts/: a few hundred thousand readings × tens of rules against a plain Python reference.

The vectorised evaluator runs over the whole random data set, in batches with shuffled and
late readings, with the silence timer between batches; a random sample of (rule, entity)
pairs is then replayed reading by reading by the reference below and must give the same
transitions. No timing is asserted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from shapely.geometry import Point, shape

from alerts.evaluate import evaluate, evaluate_silence
from alerts.readings import EntityInfo, Readings
from alerts.rules import CongestionRule, Rule, SilenceRule, WindowRule, parse_rule
from alerts.state import RuleState, StateKey, Transition
from alerts.times import duration_microseconds, from_microseconds, to_microseconds
from tests.unit.test_alert_evaluate import AQ, SQUARE, TF

SECOND = 1_000_000
TENANTS = ("gent", "leuven")
MODELS = ("sds011", "telraam", "loop")
#: (time µs, attribute, value) of one rule and entity in one batch, in batch order.
Rows = list[tuple[int, str, float]]
Outcome = tuple[str, int, float, float]


def _rules() -> list[Rule]:
    """Twenty-odd rules of every kind and scope, for both tenants."""
    aq, tf = {"entity_type": AQ}, {"entity_type": TF}
    base = {"category": "environment", "sub_category": "airPollution"}
    specs: list[dict[str, Any]] = [
        {"kind": "threshold", "attribute": "pm25", "operator": "above", "level": 32},
        {
            "kind": "threshold",
            "attribute": "pm25",
            "operator": "above",
            "level": 30,
            "clear_level": 26,
            "min_duration": "PT10M",
            "scope": {"device_model": "sds011"},
        },
        {
            "kind": "threshold",
            "attribute": "pm25",
            "operator": "below",
            "level": 18,
            "clear_level": 20,
            "scope": {"area": SQUARE},
        },
        {
            "kind": "threshold",
            "attribute": "no2",
            "operator": "above",
            "level": 60,
            "scope": {"area": SQUARE, "entity_type": AQ},
            "min_duration": "PT3M",
        },
        {
            "kind": "window",
            "attribute": "no2",
            "statistic": "mean",
            "window": "PT1H",
            "operator": "above",
            "level": 52,
            "clear_level": 50,
        },
        {
            "kind": "window",
            "attribute": "no2",
            "statistic": "max",
            "window": "PT10M",
            "operator": "above",
            "level": 62,
        },
        {
            "kind": "window",
            "attribute": "pm25",
            "statistic": "min",
            "window": "PT15M",
            "operator": "below",
            "level": 20,
        },
        {
            "kind": "window",
            "attribute": "pm25",
            "statistic": "count",
            "window": "PT10M",
            "operator": "below",
            "level": 7,
            "clear_level": 8,
        },
        {
            "kind": "window",
            "attribute": "no2",
            "statistic": "sum",
            "window": "PT5M",
            "operator": "above",
            "level": 330,
            "min_duration": "PT2M",
        },
        {"kind": "rate", "attribute": "pm25", "operator": "above", "level": 300},
        {
            "kind": "rate",
            "attribute": "no2",
            "operator": "below",
            "level": 0.5,
            "absolute": True,
            "clear_level": 1,
            "per": "PT1M",
            "min_duration": "PT5M",
        },
        {
            "kind": "congestion",
            "speed_below": 42,
            "occupancy_above": 0.55,
            "speed_clear": 46,
            "occupancy_clear": 0.5,
            "scope": tf,
        },
        {
            "kind": "congestion",
            "speed_below": 40,
            "occupancy_above": 0.5,
            "min_duration": "PT4M",
            "scope": {"device_model": "loop"},
        },
        {"kind": "silence", "silent_for": "PT9M"},
        {
            "kind": "silence",
            "silent_for": "PT5M",
            "attribute": "pm25",
            "below": 22,
            "scope": {"device_model": "sds011"},
        },
    ]
    rules = []
    for tenant in TENANTS:
        for number, spec in enumerate(specs):
            data = {"id": f"r{number}", "name": f"rule {number}", "scope": aq, **base, **spec}
            rules.append(parse_rule(data, tenant))
    return rules


def _data(random: np.random.Generator, entities: int, steps: int) -> tuple[Readings, dict]:
    """Smooth random series for AQ and traffic entities; some stop early, some values missing."""
    infos: dict[str, EntityInfo] = {}
    columns: dict[str, list[np.ndarray]] = defaultdict(list)
    for number in range(entities):
        entity_id = f"urn:e{number}"
        traffic = number % 3 == 0
        infos[entity_id] = EntityInfo(
            "loop" if traffic and number % 4 < 2 else MODELS[number // 2 % 2],
            float(random.uniform(3.68, 3.76)),
            float(random.uniform(51.03, 51.08)),
        )
        length = steps // 2 if number % 17 == 0 else steps
        gaps = random.choice(
            [0, 30, 60, 60, 60, 90, 120], size=length, p=[0.02, 0.1, 0.6, 0.1, 0.1, 0.05, 0.03]
        )
        gaps[random.random(length) < 0.003] = 700  # a silence now and then
        times = (np.cumsum(gaps) + random.integers(0, 60)) * SECOND + 1_714_550_400 * SECOND
        attributes = ("averageVehicleSpeed", "occupancy") if traffic else ("pm25", "no2")
        for attribute, (middle, spread, width) in zip(
            attributes,
            [(45, 9, 40), (0.5, 0.08, 25)] if traffic else [(25, 6, 30), (50, 8, 10)],
            strict=True,
        ):
            noise = np.convolve(random.normal(size=length + width), np.ones(width), "valid")
            values = middle + spread * noise[:length] / math.sqrt(width)
            values[random.random(length) < 0.01] = np.nan
            keep = random.random(length) < 0.97  # not every attribute in every message
            columns["entity_id"].append(np.full(keep.sum(), entity_id, dtype=object))
            columns["attribute"].append(np.full(keep.sum(), attribute, dtype=object))
            columns["type"].append(np.full(keep.sum(), TF if traffic else AQ, dtype=object))
            columns["tenant"].append(np.full(keep.sum(), TENANTS[number % 2], dtype=object))
            columns["time"].append(times[keep])
            columns["value"].append(values[keep])
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    readings = Readings.from_columns(
        joined["tenant"],
        joined["entity_id"],
        joined["type"],
        joined["attribute"],
        joined["time"],
        joined["value"],
    )
    return readings, infos


def _batches(random: np.random.Generator, readings: Readings, count: int) -> list[Readings]:
    """Contiguous slices of time, shuffled inside, with a few readings held back (late)."""
    order = np.argsort(readings.microseconds, kind="stable")
    bounds = np.linspace(0, len(order), count + 1).astype(int)
    slices = [order[bounds[i] : bounds[i + 1]] for i in range(count)]
    batches = []
    held = np.empty(0, dtype=np.int64)
    for part in slices:
        late = random.random(len(part)) < 0.005
        chosen = np.concatenate([held, part[~late]])
        held = part[late]
        batches.append(readings.take(random.permutation(chosen)))
    batches[-1] = Readings.from_columns(
        *(
            np.concatenate([getattr(batches[-1], name), getattr(readings.take(held), name)])
            for name in ("tenant", "entity_id", "entity_type", "attribute", "observed_at", "value")
        )
    )
    return batches


def _rows_by_entity(batch: Readings) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = defaultdict(list)
    for index, entity_id in enumerate(batch.entity_id.tolist()):
        rows[entity_id].append(index)
    return {entity_id: np.array(indices) for entity_id, indices in rows.items()}


def _in_scope(rule: Rule, entity_id: str, entity_type: str, info: EntityInfo) -> bool:
    scope = rule.scope
    if scope.entity_type is not None and entity_type != scope.entity_type:
        return False
    if scope.entity is not None:
        return entity_id == scope.entity
    if scope.device_model is not None:
        return info.device_model == scope.device_model
    if scope.area is not None:
        return shape(scope.area).intersects(Point(info.longitude, info.latitude))
    return True


def _statistic(name: str, inside: list[float]) -> float:
    if name == "mean":
        return sum(inside) / len(inside)
    if name == "sum":
        return sum(inside)
    if name == "count":
        return float(len(inside))
    return min(inside) if name == "min" else max(inside)


class Reference:
    """One rule on one entity, one reading at a time: the obvious way, for comparison."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.status, self.since, self.raised = "normal", 0, 0
        self.peak = self.reported = math.nan
        self.peak_at = 0
        self.last: int | None = None
        self.last_value = math.nan
        self.buffer: list[tuple[int, float]] = []
        self.speed = self.occupancy = math.nan
        self.out: list[Outcome] = []

    def batch(self, rows: Rows) -> None:
        rows = sorted(rows, key=lambda row: row[0])
        rows = [row for row in rows if self.last is None or row[0] >= self.last]
        if not rows:
            return
        if isinstance(self.rule, SilenceRule):
            self._silence(rows)
            return
        for time, metric, other in self._points(rows):
            self._step(time, metric, other)
        self.last, self.last_value = rows[-1][0], rows[-1][2]
        if self.status == "firing" and self._worse(self.peak, self.reported):
            self.out.append(("updated", self.peak_at, self.peak, self.peak))
            self.reported = self.peak

    def _points(self, rows: Rows) -> list[tuple[int, float, float]]:
        rule = self.rule
        if isinstance(rule, CongestionRule):
            points = []
            for index, (time, attribute, value) in enumerate(rows):
                if attribute == rule.speed_attribute:
                    self.speed = value
                else:
                    self.occupancy = value
                last_of_time = index == len(rows) - 1 or rows[index + 1][0] != time
                if last_of_time and not math.isnan(self.speed + self.occupancy):
                    points.append((time, self.speed, self.occupancy))
            return points
        if isinstance(rule, WindowRule):
            width = duration_microseconds(rule.window)
            everything = self.buffer + [(time, value) for time, _, value in rows]
            points = []
            for time, _, _ in rows:
                inside = [value for moment, value in everything if time - width < moment <= time]
                points.append((time, _statistic(rule.statistic, inside), math.nan))
            self.buffer = [item for item in everything if item[0] > rows[-1][0] - width]
            return points
        if rule.kind == "rate":
            points, previous = [], None if self.last is None else (self.last, self.last_value)
            for time, _, value in rows:
                if previous is not None and time > previous[0]:
                    rate = (
                        (value - previous[1])
                        / (time - previous[0])
                        * duration_microseconds(rule.per)
                    )
                    points.append((time, abs(rate) if rule.absolute else rate, math.nan))
                previous = (time, value)
            return points
        return [(time, value, math.nan) for time, _, value in rows]

    def _worse(self, value: float, than: float) -> bool:
        rule = self.rule
        assert not isinstance(rule, SilenceRule)
        if math.isnan(than):
            return True
        if isinstance(rule, CongestionRule) or rule.operator == "below":
            return value < than
        return value > than

    def _judge(self, metric: float, other: float) -> tuple[bool, bool]:
        rule = self.rule
        if isinstance(rule, CongestionRule):
            breach = metric < rule.speed_below and other > rule.occupancy_above
            clear = metric >= rule.effective_speed_clear or other <= rule.effective_occupancy_clear
            return breach, clear
        assert not isinstance(rule, SilenceRule)
        if rule.operator == "above":
            return metric > rule.level, metric <= rule.effective_clear_level
        return metric < rule.level, metric >= rule.effective_clear_level

    def _step(self, time: int, metric: float, other: float) -> None:
        rule = self.rule
        assert not isinstance(rule, SilenceRule)
        breach, clear = self._judge(metric, other)
        if self.status == "normal" and breach:
            self.status, self.since = "pending", time
        if self.status == "pending":
            if not breach:
                self.status = "normal"
            elif time - self.since >= duration_microseconds(rule.min_duration):
                self.status, self.raised = "firing", time
                self.peak = self.reported = metric
                self.peak_at = time
                self.out.append(("raised", time, metric, metric))
        elif self.status == "firing":
            if clear:
                self.out.append(("resolved", time, metric, self.peak))
                self.status, self.peak, self.reported = "normal", math.nan, math.nan
            elif self._worse(metric, self.peak):
                self.peak, self.peak_at = metric, time

    def _silence(self, rows: Rows) -> None:
        rule = self.rule
        assert isinstance(rule, SilenceRule)
        limit = duration_microseconds(rule.silent_for)
        if self.last is None:
            self.last = rows[0][0]
        for time, _, value in rows:
            if rule.below is not None and value < rule.below:
                continue
            gap = time - self.last
            if self.status == "firing":
                self.out.append(("resolved", time, gap / SECOND, max(gap / SECOND, self.peak)))
                self.status = "normal"
            elif gap > limit:
                self.out.append(("raised", self.last + limit, limit / SECOND, limit / SECOND))
                self.out.append(("resolved", time, gap / SECOND, gap / SECOND))
            self.last = time

    def timer(self, last_seen: int, now: int) -> None:
        rule = self.rule
        assert isinstance(rule, SilenceRule)
        if self.last is None:
            reference = last_seen
        else:
            reference = max(self.last, last_seen) if rule.attribute is None else self.last
        silent, limit = now - reference, duration_microseconds(rule.silent_for)
        if silent <= limit:
            return
        if self.status == "firing":
            self.peak = max(self.peak, silent / SECOND)
            return
        self.status, self.last, self.peak = "firing", reference, silent / SECOND
        self.out.append(("raised", reference + limit, silent / SECOND, silent / SECOND))


def _outcomes(transitions: list[Transition]) -> list[Outcome]:
    return [
        (t.change, to_microseconds(t.at), round(t.value, 6), round(t.peak, 6)) for t in transitions
    ]


@pytest.mark.timeout(60)
def test_vectorised_evaluation_matches_the_reference() -> None:
    random = np.random.default_rng(20240501)
    readings, infos = _data(random, entities=110, steps=1100)
    assert len(readings) > 200_000
    rules = _rules()
    batches = _batches(random, readings, count=4)
    states: dict[StateKey, RuleState] = {}
    found: dict[tuple[str, str, str], list[Transition]] = defaultdict(list)
    last_seen: dict[str, dict[str, tuple[str, Any]]] = defaultdict(dict)
    timer_moments = []
    for batch in batches:
        for transition in evaluate(rules, batch, states, infos):
            found[(transition.tenant, transition.rule_id, transition.entity_id)].append(transition)
        for tenant, entity_id, entity_type, moment in zip(
            batch.tenant.tolist(),
            batch.entity_id.tolist(),
            batch.entity_type.tolist(),
            batch.microseconds.tolist(),
            strict=True,
        ):
            known = last_seen[tenant].get(entity_id)
            if known is None or known[1] < moment:
                last_seen[tenant][entity_id] = (entity_type, moment)
        now = int(batch.microseconds.max()) + 2 * 60 * SECOND
        timer_moments.append(now)
        for tenant in TENANTS:
            seen_at = {
                entity_id: (entity_type, from_microseconds(moment))
                for entity_id, (entity_type, moment) in last_seen[tenant].items()
            }
            silent = evaluate_silence(rules, seen_at, states, infos, from_microseconds(now), tenant)
            for transition in silent:
                found[(tenant, transition.rule_id, transition.entity_id)].append(transition)
    assert sum(len(items) for items in found.values()) > 500
    assert {key[1] for key in found} == {rule.id for rule in rules}

    types = dict(zip(readings.entity_id, readings.entity_type, strict=True))
    tenants = dict(zip(readings.entity_id, readings.tenant, strict=True))
    for tenant, rule_id, entity_id in found:
        rule = next(r for r in rules if (r.tenant, r.id) == (tenant, rule_id))
        assert _in_scope(rule, entity_id, types[entity_id], infos[entity_id])
        assert tenants[entity_id] == tenant

    pairs = [
        (rule, entity_id)
        for rule in rules
        for entity_id in sorted(infos)
        if tenants[entity_id] == rule.tenant
        and _in_scope(rule, entity_id, types[entity_id], infos[entity_id])
    ]
    # One entity for every rule, so that every kind and scope is compared, and then some.
    sample = [
        next(pair for pair in pairs[int(random.integers(len(pairs))) :] + pairs if pair[0] is rule)
        for rule in rules
    ]
    sample += [pairs[index] for index in random.choice(len(pairs), size=10, replace=False)]
    by_entity = [_rows_by_entity(batch) for batch in batches]
    for rule, entity_id in sample:
        reference = Reference(rule)
        newest: int | None = None
        for batch, rows_of, now in zip(batches, by_entity, timer_moments, strict=True):
            mine = batch.take(rows_of.get(entity_id, np.empty(0, dtype=np.int64)))
            if len(mine):
                newest = max(newest or 0, int(mine.microseconds.max()))
            chosen = np.ones(len(mine), dtype=bool)
            if rule.attributes():
                chosen &= np.isin(mine.attribute.astype(str), list(rule.attributes()))
            if not isinstance(rule, SilenceRule):
                chosen &= np.isfinite(mine.value)
            rows = list(
                zip(
                    mine.microseconds[chosen].tolist(),
                    mine.attribute[chosen].tolist(),
                    mine.value[chosen].tolist(),
                    strict=True,
                )
            )
            reference.batch(rows)
            if isinstance(rule, SilenceRule) and newest is not None:
                reference.timer(newest, now)
        expected = [(c, t, round(v, 6), round(p, 6)) for c, t, v, p in reference.out]
        found_here = _outcomes(found.get((rule.tenant, rule.id, entity_id), []))
        assert found_here == expected, (rule.tenant, rule.id, entity_id)
