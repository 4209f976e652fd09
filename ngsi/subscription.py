"""NGSI-LD subscriptions (ETSI GS CIM 009 v1.8, 5.2.12): the model, parsing and rendering.

A `Subscription` is built from its stored document (ngsi/subscription_input.py checks bodies
and writes that form) and the @context it was made with, which is kept as a processed term
table so that it can be rebuilt without fetching anything (the dispatcher runs without a
context resolver). Matching and notifications: ngsi/notification.py. Contract and choices:
docs/subscriptions.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ngsi.context import ActiveContext
from ngsi.entity_output import iso
from ngsi.geo import GeoQuery, parse_geo_query
from ngsi.qast import And, Or, QExpression
from ngsi.qlang import parse_q
from ngsi.subscription_input import (
    ACCEPTS,
    DEFAULT_TRIGGERS,
    expanded_selection,
    read_document,
)
from ngsi.typeselect import TypeSelection, parse_type_selection

ID_PREFIX = "urn:ngsi-ld:Subscription:"
#: entityUpdated is the three attribute triggers together (5.2.12, notificationTrigger).
ENTITY_UPDATED_MEANS = frozenset({"attributeCreated", "attributeUpdated", "attributeDeleted"})


@dataclass(frozen=True, slots=True)
class EntitySelector:
    """One item of `entities`: a type selection of IRIs, and an id or idPattern."""

    types: TypeSelection
    id: str | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where notifications go (5.2.15); receiverInfo pairs become headers (or user
    properties over MQTT), notifierInfo pairs configure the channel (MQTT-QoS, ...)."""

    uri: str
    accept: str = ACCEPTS[0]
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """The status members of NotificationParams (5.2.14), kept by the dispatcher."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_reason: str | None = None

    @property
    def status(self) -> str | None:
        """ "ok" or "failed" after the last attempt; None before the first one."""
        if self.last_notification is None:
            return None
        if self.last_failure is not None and (
            self.last_success is None or self.last_failure >= self.last_success
        ):
            return "failed"
        return "ok"


@dataclass(frozen=True)
class Subscription:
    """A checked subscription: every name is an IRI, in `q` too."""

    tenant: str
    id: str
    entities: tuple[EntitySelector, ...]
    #: Attribute IRIs; None: any attribute.
    watched_attributes: frozenset[str] | None
    #: The triggers as given (or the default), entityUpdated not yet spelled out.
    notification_trigger: frozenset[str]
    q: QExpression | None
    #: Its geoproperty is an IRI.
    geo_q: GeoQuery | None
    #: Attribute IRIs to notify; None: all.
    attributes: frozenset[str] | None
    format: str
    show_changes: bool
    sys_attrs: bool
    endpoint: Endpoint
    throttling: float | None
    time_interval: float | None
    expires_at: datetime | None
    is_active: bool
    lang: str | None
    #: The @context notifications are compacted with (jsonldContext, else the request's).
    context: ActiveContext = field(compare=False, hash=False, repr=False)
    #: The stored form (ngsi/subscription_input.py).
    document: dict[str, Any] = field(compare=False, hash=False, repr=False)
    created_at: datetime | None = None
    modified_at: datetime | None = None
    delivery: DeliveryStatus = DeliveryStatus()

    @property
    def triggers(self) -> frozenset[str]:
        """The notification triggers with entityUpdated spelled out."""
        if "entityUpdated" in self.notification_trigger:
            return (self.notification_trigger - {"entityUpdated"}) | ENTITY_UPDATED_MEANS
        return self.notification_trigger


def mint_id() -> str:
    """A new subscription id."""
    return f"{ID_PREFIX}{uuid.uuid4()}"


def context_terms(context: ActiveContext) -> dict[str, Any]:
    """The processed term table of a context, as JSON, to rebuild it without fetching."""
    # ActiveContext keeps its table private; these three parts are all its lookups use.
    return {
        "vocab": context._vocab,
        "terms": dict(context._expanded),
        "prefixes": sorted(term for _, term in context._prefixes),
    }


def context_from_terms(source: Any, table: dict[str, Any]) -> ActiveContext:
    """The ActiveContext that `context_terms` described."""
    prefixes = set(table.get("prefixes", ()))
    mappings = {
        term: {"@id": iri, "_prefix": term in prefixes}
        for term, iri in table.get("terms", {}).items()
    }
    return ActiveContext(source, mappings, table.get("vocab", ""))


def _stored_moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def subscription_from_document(
    tenant: str,
    document: dict[str, Any],
    context: ActiveContext,
    *,
    created_at: datetime | None = None,
    modified_at: datetime | None = None,
    delivery: DeliveryStatus | None = None,
) -> Subscription:
    """The Subscription of a stored document (already checked by read_document)."""
    notification = document["notification"]
    endpoint = notification["endpoint"]
    geo = document.get("geoQ")
    geo_q = None
    if geo is not None:
        parsed = parse_geo_query(geo["georel"], geo["geometry"], geo["coordinates"])
        geo_q = replace(parsed, geoproperty=geo["geoproperty"]) if parsed else None
    watched = document.get("watchedAttributes")
    attributes = notification.get("attributes")
    return Subscription(
        tenant=tenant,
        id=document["id"],
        entities=tuple(
            EntitySelector(
                parse_type_selection(item["type"]), item.get("id"), item.get("idPattern")
            )
            for item in document.get("entities", ())
        ),
        watched_attributes=frozenset(watched) if watched is not None else None,
        notification_trigger=frozenset(document.get("notificationTrigger", DEFAULT_TRIGGERS)),
        q=expanded_q(parse_q(document["q"]), document["qTerms"]) if "q" in document else None,
        geo_q=geo_q,
        attributes=frozenset(attributes) if attributes is not None else None,
        format=notification.get("format", "normalized"),
        show_changes=notification.get("showChanges", False),
        sys_attrs=notification.get("sysAttrs", False),
        endpoint=Endpoint(
            endpoint["uri"],
            endpoint.get("accept", ACCEPTS[0]),
            tuple((p["key"], p["value"]) for p in endpoint.get("receiverInfo", ())),
            tuple((p["key"], p["value"]) for p in endpoint.get("notifierInfo", ())),
        ),
        throttling=document.get("throttling"),
        time_interval=document.get("timeInterval"),
        expires_at=_stored_moment(document.get("expiresAt")),
        is_active=document.get("isActive", True),
        lang=document.get("lang"),
        context=context,
        document=document,
        created_at=created_at,
        modified_at=modified_at,
        delivery=delivery or DeliveryStatus(),
    )


def parse_subscription(
    body: Any,
    context: ActiveContext,
    tenant: str,
    *,
    now: datetime | None = None,
    notification_context: ActiveContext | None = None,
) -> Subscription:
    """A subscription from a POST body (5.8.1); BadRequestData naming what is wrong.

    Names are expanded with `context`; notifications are compacted with
    `notification_context` (the resolved jsonldContext, if any) or else `context`. Without
    an id in the body one is minted.
    """
    moment = now or datetime.now(UTC)
    document = read_document(body, context.expand, moment)
    document = {"id": document.pop("id", None) or mint_id(), **document}
    return subscription_from_document(tenant, document, notification_context or context)


def update_subscription(
    current: Subscription,
    fragment: Any,
    context: ActiveContext,
    *,
    now: datetime | None = None,
    notification_context: ActiveContext | None = None,
) -> Subscription:
    """`current` updated by a PATCH fragment (5.8.2). The fragment's names are expanded with
    its own context; that context becomes the subscription's only when the request carried
    one (a Link header or a JSON-LD @context) or `notification_context` is given."""
    moment = now or datetime.now(UTC)
    document = read_document(fragment, context.expand, moment, stored=current.document)
    if notification_context is not None:
        kept = notification_context
    elif "jsonldContext" in document or context.source is None:
        kept = current.context
    else:
        kept = context
    return subscription_from_document(
        current.tenant,
        document,
        kept,
        created_at=current.created_at,
        modified_at=moment,
        delivery=current.delivery,
    )


def expanded_q(expression: QExpression, terms: dict[str, str]) -> QExpression:
    """`expression` with its attribute names replaced by their IRIs (qeval then expands
    nothing: evaluate(q, attributes, str))."""
    if isinstance(expression, And | Or):
        return type(expression)(tuple(expanded_q(term, terms) for term in expression.terms))
    path = expression.path
    iris = replace(
        path,
        attribute=terms[path.attribute],
        sub_attributes=tuple(terms[name] for name in path.sub_attributes),
    )
    return replace(expression, path=iris)


def status_of(subscription: Subscription, now: datetime) -> str:
    """ "active", "paused" or "expired" (5.2.12, status)."""
    if not subscription.is_active:
        return "paused"
    if subscription.expires_at is not None and subscription.expires_at <= now:
        return "expired"
    return "active"


def render_subscription(
    subscription: Subscription,
    context: ActiveContext,
    *,
    now: datetime | None = None,
    sys_attrs: bool = False,
) -> dict[str, Any]:
    """The subscription as GET answers it: names compacted with `context`, status members."""
    document = subscription.document
    compact = context.compact
    body: dict[str, Any] = {"id": subscription.id, "type": "Subscription"}
    for member in ("subscriptionName", "description"):
        if member in document:
            body[member] = document[member]
    if subscription.entities:
        body["entities"] = [_selector(item, compact) for item in document["entities"]]
    if "watchedAttributes" in document:
        body["watchedAttributes"] = [compact(name) for name in document["watchedAttributes"]]
    body["notificationTrigger"] = list(document.get("notificationTrigger", DEFAULT_TRIGGERS))
    for member in ("timeInterval", "q"):
        if member in document:
            body[member] = document[member]
    if "geoQ" in document:
        geo = dict(document["geoQ"])
        geo["geoproperty"] = compact(geo["geoproperty"])
        body["geoQ"] = geo
    body["isActive"] = subscription.is_active
    body["notification"] = _notification(subscription, compact)
    for member in ("expiresAt", "throttling", "lang", "jsonldContext"):
        if member in document:
            body[member] = document[member]
    body["status"] = status_of(subscription, now or datetime.now(UTC))
    if sys_attrs:
        body["createdAt"] = iso(subscription.created_at)
        body["modifiedAt"] = iso(subscription.modified_at)
    return body


def _selector(item: dict[str, Any], compact: Any) -> dict[str, Any]:
    selector = {"type": expanded_selection(parse_type_selection(item["type"]), compact)}
    for member in ("id", "idPattern"):
        if member in item:
            selector[member] = item[member]
    return selector


def _notification(subscription: Subscription, compact: Any) -> dict[str, Any]:
    stored = subscription.document["notification"]
    out: dict[str, Any] = {}
    if "attributes" in stored:
        out["attributes"] = [compact(name) for name in stored["attributes"]]
    out["format"] = subscription.format
    out["showChanges"] = subscription.show_changes
    out["sysAttrs"] = subscription.sys_attrs
    out["endpoint"] = stored["endpoint"]
    delivery = subscription.delivery
    if delivery.status is not None:
        out["status"] = delivery.status
    out["timesSent"] = delivery.times_sent
    out["timesFailed"] = delivery.times_failed
    for member, moment in (
        ("lastNotification", delivery.last_notification),
        ("lastSuccess", delivery.last_success),
        ("lastFailure", delivery.last_failure),
    ):
        if moment is not None:
            out[member] = iso(moment)
    if delivery.last_failure_reason is not None and delivery.status == "failed":
        out["lastFailureReason"] = delivery.last_failure_reason
    return out
