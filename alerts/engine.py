"""The alert rules at work: on each committed ingest batch, and on the silence timer.

Runs inside the batch's transaction (storage.writer.BatchWriter.write `also`): the states of
the (rule, entity) pairs the batch touches are read locked, advanced by the pure evaluator
(alerts/evaluate.py), and written back together with the Alert entities, their history,
the alert_events and the notifications of the rules' own targets. A batch and what its
alerts did thus commit together; a redelivered batch finds the states already advanced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import psycopg

from ngsi.notification import notification_headers, notification_id
from ngsi.vocabulary import IngestVocabulary
from storage.alert_store import (
    AlertEvent,
    entity_places,
    firing_states,
    last_seen,
    load_rules,
    lock_states,
    record_events,
    rules_revision,
    save_states,
)
from storage.entities import reset_staging, write_entities
from storage.outbox import Notification, enqueue
from storage.subscription_store import load_subscriptions
from storage.writer import insert_observations

from .alert_entities import AlertWriter, alert_attributes, alert_id, alert_notification
from .evaluate import evaluate, evaluate_silence
from .readings import EntityInfo, Readings
from .rules import Rule, SilenceRule, parse_rule
from .state import RuleState, StateKey, Transition
from .targets import MqttTarget, SubscriptionTarget, WebhookTarget

log = logging.getLogger(__name__)

#: Entity types whose vocabulary names a rule's attributes when its scope names no type.
DEFAULT_TYPES = ("AirQualityObserved", "TrafficFlowObserved", "ItemFlowObserved", "Device")


class AlertEngine:
    """The rules of every tenant, expanded to the stored names, kept fresh from alert_rules."""

    def __init__(
        self,
        reload_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._vocabulary = IngestVocabulary()
        self._writer = AlertWriter(self._vocabulary)
        self._checked_at = -float("inf")
        self._revision: Any = None
        #: Rules as written (short names) and as evaluated (IRIs), by (tenant, id).
        self._written: dict[tuple[str, str], Rule] = {}
        self._rules: list[Rule] = []

    def refresh(self, conn: psycopg.Connection) -> None:
        """Reload the rules when they changed (looked at every `reload_seconds`)."""
        if time.monotonic() - self._checked_at < self._reload_seconds:
            return
        self._checked_at = time.monotonic()
        revision = rules_revision(conn)
        if revision == self._revision:
            return
        written: dict[tuple[str, str], Rule] = {}
        for stored in load_rules(conn):
            try:
                written[(stored.tenant, stored.id)] = parse_rule(stored.document, stored.tenant)
            except ValueError as error:
                log.warning("alert rule %s/%s skipped: %s", stored.tenant, stored.id, error)
        self._written = written
        self._rules = [self.expanded(rule) for rule in written.values()]
        self._revision = revision

    def on_batch(self, cursor: psycopg.Cursor, observations: Sequence[tuple[Any, ...]]) -> None:
        """Evaluate the batch's readings; runs in the batch's transaction."""
        conn = cursor.connection
        self.refresh(conn)
        if not self._rules or not observations:
            return
        readings = Readings.from_rows(observations)
        keys = self._touched(readings)
        if not keys:
            return
        states = {key: RuleState.from_json(doc) for key, doc in lock_states(conn, keys).items()}
        entities = self.places(conn, readings)
        changed: set[StateKey] = set()
        transitions = evaluate(self._rules, readings, states, entities, changed)
        save_states(conn, {key: states[key].to_json() for key in changed})
        self.record(cursor, transitions, entities)

    def check_silence(self, conn: psycopg.Connection) -> int:
        """The silence timer: raise alerts for entities silent too long; the transitions."""
        self.refresh(conn)
        now = self._clock()
        tenants = sorted({rule.tenant for rule in self._rules if isinstance(rule, SilenceRule)})
        count = 0
        for tenant in tenants:
            with conn.transaction(), conn.cursor() as cursor:
                seen = last_seen(conn, tenant)
                stored = firing_states(conn, tenant)
                states = {key: RuleState.from_json(doc) for key, doc in stored.items()}
                entities = self.places(conn, None, tenant, list(seen))
                changed: set[StateKey] = set()
                transitions = evaluate_silence(
                    self._rules, seen, states, entities, now, tenant, changed
                )
                save_states(conn, {key: states[key].to_json() for key in changed})
                self.record(cursor, transitions, entities)
                count += len(transitions)
        return count

    def record(
        self,
        cursor: psycopg.Cursor,
        transitions: Sequence[Transition],
        entities: dict[str, EntityInfo],
    ) -> None:
        """Alert entities, their history, alert_events and target notifications."""
        if not transitions:
            return
        conn = cursor.connection
        fragments, rows, events = [], [], []
        outgoing: dict[str, list[Notification]] = {}
        now = self._clock()
        for transition in transitions:
            written = self._written.get((transition.tenant, transition.rule_id))
            name = written.name if written is not None else transition.rule_id
            short = alert_attributes(transition, name, entities.get(transition.entity_id))
            fragment, observations = self._writer.rows(transition, short)
            fragments.append(fragment)
            rows.extend(observations)
            events.append(_event(transition))
            if written is not None and written.notify:
                targets = self._notifications(conn, written, transition, short, now)
                outgoing.setdefault(transition.tenant, []).extend(targets)
        insert_observations(cursor, rows)
        reset_staging(cursor)
        write_entities(cursor, fragments)
        record_events(conn, events)
        for tenant, notifications in outgoing.items():
            enqueue(conn, tenant, notifications)

    def _notifications(
        self,
        conn: psycopg.Connection,
        rule: Rule,
        transition: Transition,
        short: dict[str, Any],
        now: datetime,
    ) -> list[Notification]:
        out = []
        body = alert_notification(transition, short, notification_id(), now)
        json_headers = {"Content-Type": "application/json"}
        for target in rule.notify:
            if isinstance(target, WebhookTarget):
                headers = {**json_headers, **target.headers}
                out.append(Notification(f"rule:{rule.id}", target.webhook, headers, _bytes(body)))
            elif isinstance(target, MqttTarget):
                out.append(Notification(f"rule:{rule.id}", target.mqtt, json_headers, _bytes(body)))
            elif isinstance(target, SubscriptionTarget):
                subscription = _subscription(conn, rule.tenant, target.subscription)
                if subscription is None:
                    log.warning("alert rule %s: no subscription %s", rule.id, target.subscription)
                    continue
                addressed = {**body, "subscriptionId": subscription.id}
                out.append(
                    Notification(
                        subscription.id,
                        subscription.endpoint.uri,
                        notification_headers(subscription),
                        _bytes(addressed),
                    )
                )
        return out

    def expanded(self, rule: Rule) -> Rule:
        """The rule with its attribute and entity type names as ingest stores them."""
        scoped_type = rule.scope.entity_type
        types = (scoped_type,) if scoped_type else DEFAULT_TYPES
        names = {name: self._attribute_iri(types, name) for name in rule.attributes()}
        expanded = rule.with_attribute_names(names)
        if scoped_type:
            expanded = expanded.with_entity_type_names(
                {scoped_type: self._vocabulary.entity_type(scoped_type)}
            )
        return expanded

    def _attribute_iri(self, types: Sequence[str], name: str) -> str:
        fallback = self._vocabulary.attribute(types[0], name)
        for entity_type in types:
            iri = self._vocabulary.attribute(entity_type, name)
            if not iri.startswith("https://uri.etsi.org/ngsi-ld/default-context/"):
                return iri
        return fallback

    def _touched(self, readings: Readings) -> set[StateKey]:
        """The (tenant, rule, entity) states a batch may move: entities with a rule's attribute."""
        keys: set[StateKey] = set()
        for rule in self._rules:
            if not rule.enabled:
                continue
            mask = (readings.tenant == rule.tenant) & np.isin(
                readings.attribute, list(rule.attributes())
            )
            if isinstance(rule, SilenceRule):
                mask = readings.tenant == rule.tenant
            for entity_id in np.unique(readings.entity_id[mask]):
                keys.add((rule.tenant, rule.id, str(entity_id)))
        return keys

    def places(
        self,
        conn: psycopg.Connection,
        readings: Readings | None,
        tenant: str | None = None,
        entity_ids: list[str] | None = None,
    ) -> dict[str, EntityInfo]:
        """Device model and position of the entities, when a rule is scoped by them."""
        if not any(r.scope.device_model or r.scope.area for r in self._rules):
            return {}
        wanted: dict[str, list[str]] = {}
        if readings is not None:
            for tenant_name in np.unique(readings.tenant):
                mask = readings.tenant == tenant_name
                wanted[str(tenant_name)] = [str(e) for e in np.unique(readings.entity_id[mask])]
        elif tenant is not None and entity_ids is not None:
            wanted[tenant] = entity_ids
        places: dict[str, EntityInfo] = {}
        model_key = self._vocabulary.attribute("Device", "refDeviceModel")
        location_key = self._vocabulary.attribute("Device", "location")
        for tenant_name, ids in wanted.items():
            found = entity_places(
                conn, tenant_name, ids, model_key=model_key, location_key=location_key
            )
            for entity_id, (model, location) in found.items():
                places[entity_id] = _info(model, location)
        return places


def _info(model: str | None, location: Any) -> EntityInfo:
    if isinstance(location, dict) and location.get("type") == "Point":
        longitude, latitude = location["coordinates"][:2]
        return EntityInfo(model, float(longitude), float(latitude))
    return EntityInfo(model)


def _event(transition: Transition) -> AlertEvent:
    value = transition.value if np.isfinite(transition.value) else None
    return AlertEvent(
        transition.tenant,
        transition.rule_id,
        transition.entity_id,
        alert_id(transition),
        transition.change,
        transition.at,
        value,
        transition.detail,
    )


def _bytes(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def _subscription(conn: psycopg.Connection, tenant: str, subscription_id: str) -> Any:
    for subscription in load_subscriptions(conn):
        if subscription.tenant == tenant and subscription.id == subscription_id:
            return subscription
    return None
