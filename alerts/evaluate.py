"""Rule evaluation: a committed batch of readings (or the silence timer) → alert transitions.

Pure: the caller loads and stores the states (alert_states), records the transitions
(alert_events, Alert entities) and hands them to delivery. Per rule and entity, readings
are taken in observed_at order; a reading older than the newest the state has already
taken into account is ignored (it is stored, but cannot rewrite alerts already reported);
a reading at that same time is taken. The silence timer and the ingest path share the
states: the caller must not run both on one state at the same moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from alerts import machine, silence
from alerts.conditions import (
    ConditionRule,
    congestion_points,
    describe,
    higher_is_worse,
    rate_points,
    threshold_points,
    window_points,
)
from alerts.readings import EntityInfo, Readings
from alerts.rules import (
    RateRule,
    Rule,
    SilenceRule,
    ThresholdRule,
    WindowRule,
)
from alerts.selection import Group, PreparedBatch
from alerts.state import Change, RuleState, StateKey, Transition
from alerts.times import duration_microseconds, from_microseconds, to_microseconds


def evaluate(
    rules: Sequence[Rule],
    readings: Readings,
    states: dict[StateKey, RuleState],
    entities: Mapping[str, EntityInfo],
    changed: set[StateKey] | None = None,
) -> list[Transition]:
    """Advance every enabled rule over a batch; the transitions in time order.

    `states` is updated in place (new keys are added); the keys whose state moved are added
    to `changed` when it is given, for the caller to store. Silence rules resolve here when
    a reading arrives; the timer raises them (evaluate_silence).
    """
    active = [rule for rule in rules if rule.enabled]
    if not active or not len(readings):
        return []
    batch = PreparedBatch(readings, entities)
    transitions: list[Transition] = []
    for rule in active:
        for group in batch.groups(batch.rows(rule)):
            key = (rule.tenant, rule.id, group.entity_id)
            state = states.get(key) or RuleState()
            if state.last_time is not None:
                newer = group.times >= to_microseconds(state.last_time)
                if not newer.all():
                    group = Group(
                        group.entity_id,
                        group.times[newer],
                        group.values[newer],
                        group.attributes[newer],
                    )
                if not len(group.times):
                    continue
            if isinstance(rule, SilenceRule):
                transitions.extend(_observe_silence(rule, state, group))
            else:
                transitions.extend(_advance(rule, state, group, batch))
            states[key] = state
            if changed is not None:
                changed.add(key)
    return sorted(transitions, key=_sort_key)


def _sort_key(transition: Transition) -> tuple[datetime, str, str, str]:
    # The sort is stable: transitions of one rule and entity at one time (a resolve and a
    # raise on two readings that share a time) keep the order they happened in.
    return (transition.at, transition.tenant, transition.rule_id, transition.entity_id)


def _advance(
    rule: ConditionRule, state: RuleState, group: Group, batch: PreparedBatch
) -> list[Transition]:
    others: np.ndarray | None = None
    if isinstance(rule, ThresholdRule):
        points = threshold_points(rule, state, group.times, group.values)
    elif isinstance(rule, WindowRule):
        points = window_points(rule, state, group.times, group.values)
    elif isinstance(rule, RateRule):
        points = rate_points(rule, state, group.times, group.values)
    else:
        is_speed = group.attributes == batch.attribute_code(rule.speed_attribute)
        points, others = congestion_points(rule, state, group.times, group.values, is_speed)
    worse_up = higher_is_worse(rule)
    events = machine.run(state, points, duration_microseconds(rule.min_duration), worse_up)
    transitions = [
        _transition(
            rule,
            group.entity_id,
            event.change,
            int(points.times[event.index]),
            event.value,
            event.peak,
            event.raised_at_us,
            describe(
                rule,
                event.change,
                event.value,
                event.peak,
                float("nan") if others is None else float(others[event.index]),
            ),
        )
        for event in events
    ]
    if machine.worsened(state, worse_up):
        assert state.peak is not None and state.peak_at and state.raised_at
        state.reported_peak = state.peak
        transitions.append(
            _transition(
                rule,
                group.entity_id,
                "updated",
                to_microseconds(state.peak_at),
                state.peak,
                state.peak,
                to_microseconds(state.raised_at),
                describe(rule, "updated", state.peak, state.peak, float("nan")),
            )
        )
    return transitions


def _observe_silence(rule: SilenceRule, state: RuleState, group: Group) -> list[Transition]:
    return [
        _transition(
            rule,
            group.entity_id,
            event.change,
            event.at_us,
            event.value,
            event.peak,
            event.raised_at_us,
            silence.describe(rule, event.change, event.value),
        )
        for event in silence.observe(rule, state, group.times, group.values)
    ]


def _transition(
    rule: Rule,
    entity_id: str,
    change: Change,
    at_us: int,
    value: float,
    peak: float,
    raised_at_us: int,
    detail: str,
) -> Transition:
    return Transition(
        rule_id=rule.id,
        tenant=rule.tenant,
        entity_id=entity_id,
        change=change,
        at=from_microseconds(at_us),
        value=value,
        peak=peak,
        detail=detail,
        severity=rule.severity,
        category=rule.category,
        sub_category=rule.sub_category,
        raised_at=from_microseconds(raised_at_us),
    )


def evaluate_silence(
    rules: Sequence[Rule],
    last_seen: Mapping[str, tuple[str, datetime]],
    states: dict[StateKey, RuleState],
    entities: Mapping[str, EntityInfo],
    now: datetime,
    tenant: str,
    changed: set[StateKey] | None = None,
) -> list[Transition]:
    """The silence timer for one tenant: raise for entities silent longer than silent_for.

    `last_seen` maps each entity id of the tenant to (entity type, its newest observed_at);
    entities absent from it are not checked. A state is added only when an alert is raised.
    """
    watched = [
        rule
        for rule in rules
        if isinstance(rule, SilenceRule) and rule.enabled and rule.tenant == tenant
    ]
    if not watched or not last_seen:
        return []
    entity_ids = np.array(list(last_seen), dtype=object)
    types = np.array([entity_type for entity_type, _ in last_seen.values()], dtype=object)
    infos = [entities.get(entity_id, EntityInfo()) for entity_id in last_seen]
    models = np.array([info.device_model for info in infos], dtype=object)
    longitudes = np.array([np.nan if i.longitude is None else i.longitude for i in infos])
    latitudes = np.array([np.nan if i.latitude is None else i.latitude for i in infos])
    transitions = []
    for rule in watched:
        admitted = rule.scope.entity_mask(entity_ids, models, longitudes, latitudes)
        if rule.scope.entity_type is not None:
            admitted &= types == rule.scope.entity_type
        for entity_id in entity_ids[admitted]:
            key = (tenant, rule.id, str(entity_id))
            state = states.get(key) or RuleState()
            event = silence.check(rule, state, last_seen[entity_id][1], now)
            if state.status != "firing":
                continue
            states[key] = state
            if changed is not None:
                changed.add(key)
            if event is not None:
                transitions.append(
                    _transition(
                        rule,
                        str(entity_id),
                        "raised",
                        event.at_us,
                        event.value,
                        event.peak,
                        event.raised_at_us,
                        silence.describe(rule, "raised", event.value),
                    )
                )
    return sorted(transitions, key=_sort_key)


def retire_rule(rule: Rule, states: dict[StateKey, RuleState], at: datetime) -> list[Transition]:
    """Resolve the open alerts of a rule that is deleted, disabled or changed; drop its states."""
    transitions = []
    for key in [key for key in states if key[0] == rule.tenant and key[1] == rule.id]:
        state = states.pop(key)
        if state.status == "firing" and state.raised_at is not None:
            # A firing state always has a peak; 0.0 only keeps the type (and JSON) sound.
            peak = state.peak if state.peak is not None else 0.0
            transitions.append(
                _transition(
                    rule,
                    key[2],
                    "resolved",
                    to_microseconds(at),
                    peak,
                    peak,
                    to_microseconds(state.raised_at),
                    "the rule was disabled, changed or deleted",
                )
            )
    return sorted(transitions, key=_sort_key)
