"""Which changes a subscription notifies, and the notification it sends (ETSI GS CIM 009 v1.8,
5.2.12 notificationTrigger, 5.3.1 Notification, 5.8.6 notification behaviour).

Pure: no I/O and no clock (`now` is passed in). The dispatcher detects a change of an entity
(its state before and after, and the attributes the change touched, all in the stored form:
types and attribute names are IRIs), asks `matches` for each live subscription, and renders
the notification of those that match with `render_notification` and `notification_headers`.
Periodic subscriptions (timeInterval) never match a change: the dispatcher selects their
entities with `selects` on its own schedule. Rules chosen where the spec is loose:
docs/subscriptions.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ngsi.context import CORE_CONTEXT_URL, CORE_CONTEXT_URLS, ActiveContext
from ngsi.entity_input import PROPERTY_KINDS
from ngsi.entity_output import Renderer, Representation, iso
from ngsi.geo import entity_matches
from ngsi.qeval import evaluate
from ngsi.subscription import EntitySelector, Subscription
from ngsi.subscription_input import NGSI_LD_NULL
from ngsi.typeselect import AllOf, AnyOf, TypeName, TypeSelection
from storage.entity_store import StoredEntity

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
#: showChanges (5.2.14): the member that carries an attribute kind's previous content.
PREVIOUS_MEMBERS = {
    "Property": "previousValue",
    "GeoProperty": "previousValue",
    "Relationship": "previousObject",
    "LanguageProperty": "previousLanguageMap",
}


def notification_id() -> str:
    """A new notification id."""
    return f"urn:ngsi-ld:Notification:{uuid.uuid4()}"


def is_live(subscription: Subscription, now: datetime) -> bool:
    """Whether the subscription may notify now: active and not expired."""
    expires_at = subscription.expires_at
    return subscription.is_active and (expires_at is None or expires_at > now)


def _type_matches(selection: TypeSelection, types: set[str]) -> bool:
    if isinstance(selection, TypeName):
        return selection.name in types
    if isinstance(selection, AnyOf):
        return any(_type_matches(part, types) for part in selection.alternatives)
    assert isinstance(selection, AllOf)
    return all(_type_matches(part, types) for part in selection.parts)


def _selector_matches(selector: EntitySelector, entity: StoredEntity) -> bool:
    if not _type_matches(selector.types, set(entity.types)):
        return False
    if selector.id is not None:  # 5.2.33: with an id, idPattern is ignored
        return entity.id == selector.id
    # A search, as idPattern is in queries (storage/entity_store.py: PostgreSQL `~`).
    return selector.id_pattern is None or re.search(selector.id_pattern, entity.id) is not None


def _filters_pass(subscription: Subscription, entity: StoredEntity) -> bool:
    """entities, q and geoQ (names in a subscription are IRIs already: expand is `str`)."""
    if subscription.entities and not any(
        _selector_matches(selector, entity) for selector in subscription.entities
    ):
        return False
    if subscription.q is not None and not evaluate(subscription.q, entity.attributes, str):
        return False
    return subscription.geo_q is None or entity_matches(subscription.geo_q, entity.attributes, str)


def selects(subscription: Subscription, entity: StoredEntity, now: datetime) -> bool:
    """Whether a live subscription covers `entity` as it is (entities, q, geoQ): what a
    periodic (timeInterval) subscription notifies on each tick."""
    return is_live(subscription, now) and _filters_pass(subscription, entity)


def alterations(
    entity: StoredEntity | None,
    previous: StoredEntity | None,
    changed_attributes: Iterable[str],
    watched: frozenset[str] | None = None,
) -> set[str]:
    """The notificationTrigger kinds a change is (5.2.12), counting only `watched`
    attributes when given. A created entity also creates each of its attributes (so the
    default triggers notify creations); a deleted one is entityDeleted only."""

    def relevant(names: Iterable[str]) -> set[str]:
        return set(names) if watched is None else set(names) & watched

    if entity is None:
        if previous is None:
            return set()
        return {"entityDeleted"} if watched is None or relevant(previous.attributes) else set()
    if previous is None:
        created = relevant(entity.attributes)
        kinds = {"attributeCreated"} if created else set()
        if watched is None or created:
            kinds.add("entityCreated")
        return kinds
    kinds = set()
    for name in relevant(changed_attributes):
        if name in entity.attributes:
            kinds.add("attributeUpdated" if name in previous.attributes else "attributeCreated")
        elif name in previous.attributes:
            kinds.add("attributeDeleted")
    return kinds


def matches(
    subscription: Subscription,
    entity: StoredEntity | None,
    previous: StoredEntity | None,
    changed_attributes: frozenset[str],
    now: datetime,
) -> bool:
    """Whether a change of one entity (`entity` None: deleted; `previous` None: created;
    `changed_attributes`: attribute IRIs the change touched) notifies `subscription`.

    entities, q and geoQ are tested on the entity as it is now (as it was, for a deletion).
    """
    if not is_live(subscription, now) or subscription.time_interval is not None:
        return False
    subject = entity if entity is not None else previous
    if subject is None:
        return False
    kinds = alterations(entity, previous, changed_attributes, subscription.watched_attributes)
    if not kinds & subscription.triggers:
        return False
    return _filters_pass(subscription, subject)


def _instances(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _with_previous(value: Any, before: Any) -> Any:
    """An attribute with the previous content of each instance (same datasetId) added."""
    earlier = {item.get("datasetId"): item for item in _instances(before)}
    changed = []
    for instance in _instances(value):
        kind = instance.get("type", "Property")
        old = earlier.get(instance.get("datasetId"))
        member = PREVIOUS_MEMBERS.get(kind)
        if old is not None and member is not None and old.get("type", "Property") == kind:
            instance = {**instance, member: old.get(PROPERTY_KINDS[kind])}
        changed.append(instance)
    return changed if isinstance(value, list) else (changed[0] if changed else value)


def _deleted_attribute(before: Any, now: datetime, show_changes: bool) -> Any:
    """An attribute the change deleted: its content is the NGSI-LD Null (5.2.1)."""
    instances = []
    for old in _instances(before):
        kind = old.get("type", "Property")
        member = PROPERTY_KINDS.get(kind, "value")
        null: Any = {"@none": NGSI_LD_NULL} if kind == "LanguageProperty" else NGSI_LD_NULL
        instance = {"type": kind, member: null, "deletedAt": iso(now)}
        if "datasetId" in old:
            instance["datasetId"] = old["datasetId"]
        if show_changes and kind in PREVIOUS_MEMBERS:
            instance[PREVIOUS_MEMBERS[kind]] = old.get(member)
        instances.append(instance)
    return instances if isinstance(before, list) else instances[0]


def _prepared(
    subscription: Subscription, entity: StoredEntity, before: StoredEntity | None, now: datetime
) -> StoredEntity:
    """The entity to render: previous values (showChanges) and deleted attributes added."""
    if before is None:
        return entity
    attributes = dict(entity.attributes)
    if subscription.show_changes:
        for name, value in entity.attributes.items():
            if name in before.attributes:
                attributes[name] = _with_previous(value, before.attributes[name])
    if "attributeDeleted" in subscription.triggers:
        for name, value in before.attributes.items():
            if name not in entity.attributes and _instances(value):
                attributes[name] = _deleted_attribute(value, now, subscription.show_changes)
    return replace(entity, attributes=attributes)


def render_notification(
    subscription: Subscription,
    entities: list[StoredEntity],
    previous: Mapping[str, StoredEntity],
    now: datetime,
    notification_id: str,
) -> dict[str, Any]:
    """The Notification (5.3.1) of `entities` (their current state) for `subscription`.

    `previous` holds, by id, the state before the change where there was one (for
    showChanges and deleted attributes); an id in `previous` with no entity in `entities`
    is an entity the change deleted, notified as id, type and deletedAt. Names are compacted
    with the subscription's @context, which an application/ld+json body also carries.
    """
    representation = Representation(
        format=subscription.format,
        sys_attrs=subscription.sys_attrs,
        lang=subscription.lang,
        attributes=subscription.attributes,
    )
    renderer = Renderer(subscription.context, representation)
    present = {entity.id for entity in entities}
    prepared = [_prepared(subscription, e, previous.get(e.id), now) for e in entities]
    deleted = [
        _deleted_entity(entity, subscription.context, now)
        for entity_id, entity in previous.items()
        if entity_id not in present
    ]
    data: Any
    if subscription.endpoint.accept == GEO_JSON:
        features = [renderer.feature(entity) for entity in prepared]
        features += [_deleted_feature(item) for item in deleted]
        data = {"type": "FeatureCollection", "features": features}
    else:
        data = [renderer.entity(entity) for entity in prepared] + deleted
    body: dict[str, Any] = {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": subscription.id,
        "notifiedAt": iso(now),
        "data": data,
    }
    if subscription.endpoint.accept == JSON_LD:
        context = subscription.context
        body["@context"] = context.source if context.source is not None else CORE_CONTEXT_URL
    return body


def _deleted_entity(entity: StoredEntity, context: ActiveContext, now: datetime) -> dict[str, Any]:
    types = [context.compact(name) for name in entity.types]
    return {
        "id": entity.id,
        "type": types[0] if len(types) == 1 else types,
        "deletedAt": iso(now),
    }


def _deleted_feature(item: dict[str, Any]) -> dict[str, Any]:
    properties = {key: value for key, value in item.items() if key != "id"}
    return {"id": item["id"], "type": "Feature", "geometry": None, "properties": properties}


def context_link_url(context: ActiveContext) -> str:
    """The URL a Link header can name for a context: the context's own URL, the one URL of a
    list besides the core context, else the core context's (a context given inline has no
    URL: such subscriptions should ask for application/ld+json)."""
    source = context.source
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(item, str) for item in source):
        urls = [item for item in source if item not in CORE_CONTEXT_URLS]
        if len(urls) == 1:
            return str(urls[0])
    return CORE_CONTEXT_URL


def notification_headers(subscription: Subscription) -> dict[str, str]:
    """The headers of a notification (6.3.6, 6.3.14): Content-Type, the @context Link for
    JSON and GeoJSON, NGSILD-Tenant for a named tenant, and the endpoint's receiverInfo."""
    accept = subscription.endpoint.accept
    headers = {"Content-Type": accept}
    if accept != JSON_LD:
        url = context_link_url(subscription.context)
        headers["Link"] = f'<{url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'
    if subscription.tenant:
        headers["NGSILD-Tenant"] = subscription.tenant
    for key, value in subscription.endpoint.receiver_info:
        headers[key] = value
    return headers
