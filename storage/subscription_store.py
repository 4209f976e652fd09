"""Reads and writes of `subscriptions` (storage/migrations/0009_subscriptions.sql).

The API's router uses `SubscriptionStore` on an async connection; the dispatcher uses the
synchronous functions: `load_subscriptions` (every live subscription of every tenant),
`subscription_revision` (has anything changed since it loaded them?), `any_live_subscription`
and `record_delivery` (the status members of NotificationParams, 5.2.14).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from ngsi.subscription import (
    DeliveryStatus,
    Subscription,
    context_from_terms,
    context_terms,
    subscription_from_document,
)
from ngsi.typeselect import type_names
from storage.entity_store import jsonb

_COLUMNS = (
    "tenant, id, document, context, context_terms, created_at, modified_at, times_sent,"
    " times_failed, last_notification, last_success, last_failure, last_failure_reason"
)
_LIVE = "is_active AND (expires_at IS NULL OR expires_at > now())"


def _row_subscription(row: Sequence[Any]) -> Subscription:
    (tenant, _, document, source, terms, created, modified, *status) = row
    return subscription_from_document(
        tenant,
        document,
        context_from_terms(source, terms),
        created_at=created,
        modified_at=modified,
        delivery=DeliveryStatus(*status),
    )


def watched_types(subscription: Subscription) -> list[str] | None:
    """The entity types (IRIs) the subscription can select, or None for any type.

    A superset: an entity it selects has at least one of them (the change triggers of
    0017_subscription_types.sql record only those entities' changes).
    """
    if not subscription.entities:
        return None
    names: set[str] = set()
    for selector in subscription.entities:
        selected = type_names(selector.types)
        if not selected:
            return None
        names.update(selected)
    return sorted(names)


def _values(subscription: Subscription) -> tuple[Any, ...]:
    """document, context, context_terms, is_active, expires_at, throttling, time_interval,
    watched_types."""
    context = subscription.context
    return (
        jsonb(subscription.document),
        jsonb(context.source) if context.source is not None else None,
        jsonb(context_terms(context)),
        subscription.is_active,
        subscription.expires_at,
        subscription.throttling,
        subscription.time_interval,
        watched_types(subscription),
    )


class SubscriptionStore:
    """The API's access to `subscriptions` on one connection."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def create(self, subscription: Subscription) -> bool:
        """Insert a new subscription; False when its id is taken in its tenant."""
        cursor = await self.conn.execute(
            "INSERT INTO subscriptions (tenant, id, document, context, context_terms,"
            " is_active, expires_at, throttling, time_interval, watched_types)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, id) DO NOTHING",
            (subscription.tenant, subscription.id, *_values(subscription)),
        )
        return cursor.rowcount == 1

    async def get(
        self, tenant: str, subscription_id: str, *, lock: bool = False
    ) -> Subscription | None:
        """One subscription, or None; `lock` holds its row until the transaction ends."""
        query = f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = %s AND id = %s"
        if lock:
            query += " FOR UPDATE"
        cursor = await self.conn.execute(query, (tenant, subscription_id))
        row = await cursor.fetchone()
        return _row_subscription(row) if row else None

    async def page(
        self, tenant: str, limit: int, offset: int = 0, *, count: bool = False
    ) -> tuple[list[Subscription], int | None]:
        """A page of the tenant's subscriptions in id order, and their number if `count`."""
        cursor = await self.conn.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = %s ORDER BY id"
            " LIMIT %s OFFSET %s",
            (tenant, limit, offset),
        )
        page = [_row_subscription(row) for row in await cursor.fetchall()]
        total = None
        if count:
            cursor = await self.conn.execute(
                "SELECT count(*) FROM subscriptions WHERE tenant = %s", (tenant,)
            )
            row = await cursor.fetchone()
            total = int(row[0]) if row else 0
        return page, total

    async def save(self, subscription: Subscription) -> bool:
        """Write back a changed subscription (its definition, not its delivery status);
        False when it no longer exists."""
        cursor = await self.conn.execute(
            "UPDATE subscriptions SET document = %s, context = %s, context_terms = %s,"
            " is_active = %s, expires_at = %s, throttling = %s, time_interval = %s,"
            " watched_types = %s, modified_at = now() WHERE tenant = %s AND id = %s",
            (*_values(subscription), subscription.tenant, subscription.id),
        )
        return cursor.rowcount == 1

    async def delete(self, tenant: str, subscription_id: str) -> bool:
        """Delete a subscription; False when there was none."""
        cursor = await self.conn.execute(
            "DELETE FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, subscription_id)
        )
        return cursor.rowcount == 1


def load_subscriptions(conn: psycopg.Connection[Any]) -> list[Subscription]:
    """Every subscription of every tenant that is active and not expired (database clock),
    ordered by tenant and id."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE {_LIVE} ORDER BY tenant, id"
    ).fetchall()
    return [_row_subscription(row) for row in rows]


def any_live_subscription(conn: psycopg.Connection[Any]) -> bool:
    """Whether any tenant has an active, unexpired subscription (one index probe)."""
    row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM subscriptions WHERE {_LIVE})").fetchone()
    return bool(row and row[0])


def subscription_revision(conn: psycopg.Connection[Any]) -> int:
    """A number that grows whenever a subscription is created, changed or deleted (its
    delivery status aside): reload the subscriptions when it differs from the last one."""
    row = conn.execute("SELECT revision FROM subscription_revision").fetchone()
    return int(row[0]) if row else 0


def record_delivery(
    conn: psycopg.Connection[Any],
    tenant: str,
    subscription_id: str,
    *,
    success: bool,
    at: datetime,
    reason: str | None = None,
) -> bool:
    """Count one notification sent at `at` (5.2.14: timesSent, and timesFailed when it
    failed; lastNotification, then lastSuccess or lastFailure with `reason`); False when
    the subscription is gone. The caller commits."""
    if success:
        statement = (
            "UPDATE subscriptions SET times_sent = times_sent + 1,"
            " last_notification = greatest(last_notification, %(at)s),"
            " last_success = greatest(last_success, %(at)s)"
            " WHERE tenant = %(tenant)s AND id = %(id)s"
        )
    else:
        statement = (
            "UPDATE subscriptions SET times_sent = times_sent + 1,"
            " times_failed = times_failed + 1,"
            " last_notification = greatest(last_notification, %(at)s),"
            " last_failure = greatest(last_failure, %(at)s),"
            " last_failure_reason = CASE WHEN last_failure IS NULL OR last_failure <= %(at)s"
            " THEN %(reason)s ELSE last_failure_reason END"
            " WHERE tenant = %(tenant)s AND id = %(id)s"
        )
    cursor = conn.execute(
        statement, {"at": at, "tenant": tenant, "id": subscription_id, "reason": reason}
    )
    return cursor.rowcount == 1
