"""From committed entity changes to notifications in the outbox, in one transaction each round.

The triggers of storage/migrations/0010_notifications.sql log every change of a subscribed
tenant's entities; each round takes the oldest of them, matches them against the active
subscriptions (ngsi/notification.py), renders one notification per subscription and round,
puts those in the outbox and forgets the changes, all in one transaction: a crash anywhere
leaves either the changes or the notifications, never neither.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from ngsi.notification import (
    matches,
    notification_headers,
    notification_id,
    render_notification,
    selects,
)
from ngsi.subscription import Subscription
from storage.entity_store import StoredEntity
from storage.outbox import (
    EntityChange,
    Notification,
    delete_changes,
    enqueue,
    fetch_changes,
    fetch_tenant_entities,
)
from storage.subscription_store import load_subscriptions, subscription_revision

log = logging.getLogger(__name__)

#: The most entities one notification carries; a larger round is split.
ENTITIES_PER_NOTIFICATION = 100


def changed_attributes(change: EntityChange) -> frozenset[str]:
    """The attribute names whose value differs between before and after the change."""
    after = change.entity.attributes if change.entity is not None else {}
    before = change.previous.attributes if change.previous is not None else {}
    names = set(after) | set(before)
    return frozenset(name for name in names if after.get(name) != before.get(name))


class Dispatcher:
    """Matches changes with subscriptions and fills the outbox; call `run_once` in a loop."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        *,
        batch: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._connect = connect
        self._connection: psycopg.Connection | None = None
        self._batch = batch
        self._clock = clock
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._revision: int | None = None
        #: When each subscription last produced a notification (throttling, timeInterval).
        self._last_sent: dict[tuple[str, str], datetime] = {}

    def subscriptions(self) -> dict[str, list[Subscription]]:
        """The live subscriptions by tenant, reloaded whenever one was changed."""
        conn = self._conn()
        with conn.transaction():
            revision = subscription_revision(conn)
            if revision != self._revision:
                by_tenant: dict[str, list[Subscription]] = defaultdict(list)
                for subscription in load_subscriptions(conn):
                    by_tenant[subscription.tenant].append(subscription)
                self._subscriptions = dict(by_tenant)
                self._revision = revision
        return self._subscriptions

    def run_periodic(self) -> int:
        """Notify the periodic (timeInterval) subscriptions that are due; how many were."""
        now = self._clock()
        due = [
            subscription
            for tenant_subscriptions in self.subscriptions().values()
            for subscription in tenant_subscriptions
            if subscription.time_interval and self._due(subscription, now)
        ]
        conn = self._conn()
        for subscription in due:
            with conn.transaction():
                entities = [
                    entity
                    for entity in fetch_tenant_entities(conn, subscription.tenant)
                    if selects(subscription, entity, now)
                ]
                notifications = []
                for start in range(0, len(entities), ENTITIES_PER_NOTIFICATION):
                    chunk = entities[start : start + ENTITIES_PER_NOTIFICATION]
                    body = render_notification(subscription, chunk, {}, now, notification_id())
                    notifications.append(_notification(subscription, body))
                enqueue(conn, subscription.tenant, notifications)
            self._last_sent[(subscription.tenant, subscription.id)] = now
        return len(due)

    def _due(self, subscription: Subscription, now: datetime) -> bool:
        last = self._last_sent.get((subscription.tenant, subscription.id))
        if last is None:
            last = subscription.delivery.last_notification
        interval = timedelta(seconds=subscription.time_interval or 0)
        return last is None or now - last >= interval

    def run_once(self) -> int:
        """Dispatch one round of changes; the number of changes taken (0: nothing waits)."""
        subscriptions = self.subscriptions()
        conn = self._conn()
        with conn.transaction():
            changes = fetch_changes(conn, self._batch)
            if not changes:
                return 0
            now = self._clock()
            for tenant, tenant_changes in _by_tenant(changes).items():
                notifications = self._notifications(
                    subscriptions.get(tenant, ()), tenant_changes, now
                )
                enqueue(conn, tenant, notifications)
            delete_changes(conn, [change.position for change in changes])
        return len(changes)

    def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _conn(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def _notifications(
        self, subscriptions: Iterable[Subscription], changes: list[EntityChange], now: datetime
    ) -> list[Notification]:
        out: list[Notification] = []
        changed = [changed_attributes(change) for change in changes]
        for subscription in subscriptions:
            if subscription.time_interval:
                continue  # periodic: notified on its timer, not on changes
            hits = [
                change
                for change, names in zip(changes, changed, strict=True)
                if matches(subscription, change.entity, change.previous, names, now)
            ]
            if not hits or self._throttled(subscription, now):
                continue
            out.extend(self._render(subscription, hits, now))
            self._last_sent[(subscription.tenant, subscription.id)] = now
        return out

    def _throttled(self, subscription: Subscription, now: datetime) -> bool:
        """NGSI-LD throttling: the minimal period between two notifications of a subscription."""
        if not subscription.throttling:
            return False
        last = self._last_sent.get((subscription.tenant, subscription.id))
        return last is not None and now - last < timedelta(seconds=subscription.throttling)

    def _render(
        self, subscription: Subscription, hits: list[EntityChange], now: datetime
    ) -> list[Notification]:
        """One notification per run of distinct entities (a second change of an entity in
        the same round starts a new notification, so every state is notified, in order)."""
        out = []
        for group in _runs_of_distinct_entities(hits):
            entities: list[StoredEntity] = []
            previous: dict[str, StoredEntity] = {}
            for change in group:
                entity = change.entity or change.previous
                assert entity is not None  # a change has a before or an after
                entities.append(entity)
                if change.previous is not None:
                    previous[change.entity_id] = change.previous
            body = render_notification(subscription, entities, previous, now, notification_id())
            out.append(_notification(subscription, body))
        return out


def _notification(subscription: Subscription, body: dict[str, Any]) -> Notification:
    return Notification(
        channel=subscription.id,
        endpoint=subscription.endpoint.uri,
        headers=notification_headers(subscription),
        payload=orjson.dumps(body),
    )


def _by_tenant(changes: list[EntityChange]) -> dict[str, list[EntityChange]]:
    grouped: dict[str, list[EntityChange]] = defaultdict(list)
    for change in changes:
        grouped[change.tenant].append(change)
    return grouped


def _runs_of_distinct_entities(hits: list[EntityChange]) -> list[list[EntityChange]]:
    runs: list[list[EntityChange]] = []
    seen: set[str] = set()
    for change in hits:
        if not runs or change.entity_id in seen or len(runs[-1]) >= ENTITIES_PER_NOTIFICATION:
            runs.append([])
            seen = set()
        runs[-1].append(change)
        seen.add(change.entity_id)
    return runs
