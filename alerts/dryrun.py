"""Dry run: replay one rule over stored history and say how often and when it would have fired.

The rule runs from a fresh state through the same evaluator as live, over every reading up to
`end` (so readings before `start` fill a window or give a rate its previous reading: fetch
from `start - window` for a window rule). Episodes that were over before `start` are left
out; one still open at `end` has no resolved_at. A silence rule also runs the timer once at
`end`, so a silence still going on then counts too; the silence clock of an entity starts
at its first reading, and entities without any reading are not seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from alerts.evaluate import evaluate, evaluate_silence
from alerts.readings import EntityInfo, Readings
from alerts.rules import Rule, SilenceRule
from alerts.state import RuleState, StateKey
from alerts.times import from_microseconds, to_microseconds


@dataclass
class Episode:
    """One alert the rule would have raised on an entity."""

    entity_id: str
    raised_at: datetime
    resolved_at: datetime | None
    peak: float


@dataclass
class DryRun:
    """What a rule would have done between start and end."""

    times_fired: int
    episodes: list[Episode] = field(default_factory=list)


def dry_run(
    rule: Rule,
    readings: Readings,
    entities: Mapping[str, EntityInfo],
    start: datetime,
    end: datetime,
) -> DryRun:
    """Replay `rule` (enabled or not) over `readings` up to `end`; its episodes from `start` on."""
    rule = rule.model_copy(update={"enabled": True})
    history = readings.take(readings.microseconds <= to_microseconds(end))
    states: dict[StateKey, RuleState] = {}
    transitions = evaluate([rule], history, states, entities)
    if isinstance(rule, SilenceRule):
        transitions += evaluate_silence(
            [rule], _last_seen(history, rule), states, entities, end, rule.tenant
        )
    open_episodes: dict[str, Episode] = {}
    episodes: list[Episode] = []
    for transition in transitions:
        if transition.change == "raised":
            episode = Episode(transition.entity_id, transition.at, None, transition.peak)
            open_episodes[transition.entity_id] = episode
            episodes.append(episode)
        else:
            episode = open_episodes[transition.entity_id]
            episode.peak = transition.peak
            if transition.change == "resolved":
                episode.resolved_at = transition.at
                del open_episodes[transition.entity_id]
    for (_, _, entity_id), state in states.items():
        if entity_id in open_episodes and state.peak is not None:
            open_episodes[entity_id].peak = state.peak
    shown = [
        episode
        for episode in episodes
        if episode.resolved_at is None or episode.resolved_at >= start
    ]
    shown.sort(key=lambda episode: (episode.raised_at, episode.entity_id))
    return DryRun(len(shown), shown)


def _last_seen(history: Readings, rule: Rule) -> dict[str, tuple[str, datetime]]:
    """Newest observed_at and type per entity of the rule's tenant."""
    chosen = history.take(history.tenant == rule.tenant)
    seen: dict[str, tuple[str, datetime]] = {}
    if not len(chosen):
        return seen
    order = np.argsort(chosen.microseconds, kind="stable")
    for entity_id, entity_type, moment in zip(
        chosen.entity_id[order], chosen.entity_type[order], chosen.microseconds[order], strict=True
    ):
        seen[entity_id] = (entity_type, from_microseconds(int(moment)))
    return seen
