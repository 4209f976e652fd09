"""`/ngsi-ld/v1/subscriptions`: create, query, retrieve, update and delete subscriptions
(ETSI GS CIM 009 v1.8, 5.8.1-5.8.5; HTTP binding 6.10 and 6.11). Model: ngsi/subscription.py.

Every route needs write access to the tenant, reads too: a subscription makes the service
send data to a URI of the caller's choosing, and its receiverInfo may carry credentials
(docs/subscriptions.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import write_access
from ngsi.context import ActiveContext
from ngsi.entity_input import is_uri
from ngsi.errors import ErrorType, NgsiError, bad_request, not_found
from ngsi.routers.common import (
    json_response,
    link_context,
    read_body,
    require_tenant,
    resolver,
    response_type,
    split_list,
    tenant_of,
)
from ngsi.routers.entities import page_size
from ngsi.routers.openapi import errors, request_body, success
from ngsi.subscription import (
    Subscription,
    parse_subscription,
    render_subscription,
    update_subscription,
)
from storage.entity_store import EntityStore
from storage.subscription_store import SubscriptionStore

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Subscriptions"])
Writer = Depends(write_access)
PATH = "/ngsi-ld/v1/subscriptions/"
SUBSCRIPTION: dict[str, Any] = {
    "type": "object",
    "description": "An NGSI-LD Subscription (ETSI GS CIM 009, 5.2.12)",
    "required": ["type", "notification"],
    "properties": {
        "id": {"type": "string", "format": "uri"},
        "type": {"type": "string", "enum": ["Subscription"]},
        "entities": {"type": "array", "items": {"type": "object"}},
        "watchedAttributes": {"type": "array", "items": {"type": "string"}},
        "notificationTrigger": {"type": "array", "items": {"type": "string"}},
        "q": {"type": "string"},
        "geoQ": {"type": "object"},
        "timeInterval": {"type": "number"},
        "throttling": {"type": "number"},
        "expiresAt": {"type": "string", "format": "date-time"},
        "isActive": {"type": "boolean"},
        "notification": {"type": "object"},
    },
}
SUBSCRIPTIONS = {"type": "array", "items": SUBSCRIPTION}
EXAMPLE = {
    "type": "Subscription",
    "entities": [{"type": "AirQualityObserved"}],
    "watchedAttributes": ["pm25"],
    "q": "pm25>25",
    "notification": {
        "format": "normalized",
        "endpoint": {"uri": "https://example.org/notify", "accept": "application/json"},
    },
}


@asynccontextmanager
async def connection_of(request: Request, *, write: bool = False) -> AsyncIterator[Any]:
    """A pooled connection; writes run in one transaction."""
    async with request.app.state.pool.connection() as conn:
        if write:
            async with conn.transaction():
                yield conn
        else:
            yield conn


def subscription_location(subscription_id: str) -> str:
    """The Location of a subscription resource."""
    return PATH + quote(subscription_id, safe="")


def _check_id(subscription_id: str) -> str:
    if not is_uri(subscription_id):
        raise bad_request(f"a subscription id must be a URI, not {subscription_id!r}")
    return subscription_id


async def _notification_context(request: Request, body: Any) -> ActiveContext | None:
    """The resolved jsonldContext of a body, if it names one (5.2.12: notifications are
    compacted with it instead of the request's @context)."""
    if isinstance(body, dict) and isinstance(body.get("jsonldContext"), str):
        url = body["jsonldContext"]
        if url.startswith(("http://", "https://")):
            return await resolver(request).resolve(url)
    return None


def _sys_attrs(options: str | None) -> bool:
    chosen = split_list(options)
    unknown = set(chosen) - {"sysAttrs"}
    if unknown:
        raise bad_request(f"unknown options {sorted(unknown)}; subscriptions offer sysAttrs")
    return "sysAttrs" in chosen


@router.post(
    "/subscriptions",
    status_code=201,
    dependencies=[Writer],
    summary="Create subscription",
    openapi_extra=request_body(SUBSCRIPTION, EXAMPLE),
    responses={
        **success(201, "Created; Location names the new subscription"),
        **errors(400, 401, 403, 409, 413, 415, 503),
    },
)
async def create_subscription(request: Request) -> Response:
    """Create a subscription (5.8.1); 409 AlreadyExists when its id is taken."""
    body, context = await read_body(request)
    tenant = tenant_of(request)
    subscription = parse_subscription(
        body,
        context,
        tenant,
        notification_context=await _notification_context(request, body),
    )
    async with connection_of(request, write=True) as conn:
        await EntityStore(conn).ensure_tenant(tenant)
        if not await SubscriptionStore(conn).create(subscription):
            raise NgsiError(
                ErrorType.ALREADY_EXISTS, f"subscription {subscription.id} already exists"
            )
    request.app.state.known_tenants.add(tenant)
    return Response(status_code=201, headers={"Location": subscription_location(subscription.id)})


@router.get(
    "/subscriptions",
    dependencies=[Writer],
    summary="Query subscriptions",
    responses={
        **success(
            200, "The subscriptions, ordered by id", {"type": "array", "items": SUBSCRIPTION}
        ),
        **errors(400, 401, 403, 404, 406, 503),
    },
)
async def query_subscriptions(
    request: Request,
    limit: Annotated[int | None, Query(ge=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    count: bool = False,
    options: Annotated[str | None, Query()] = None,
) -> Response:
    """The tenant's subscriptions (5.8.4), a page at a time."""
    media_type = response_type(request)
    context = await link_context(request)
    sys_attrs = _sys_attrs(options)
    size = page_size(request, limit, count)
    async with connection_of(request) as conn:
        tenant = await require_tenant(request, EntityStore(conn))
        page, total = await SubscriptionStore(conn).page(tenant, size, offset, count=count)
    now = datetime.now(UTC)
    body = [render_subscription(s, context, now=now, sys_attrs=sys_attrs) for s in page]
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    return json_response(body, request, context, media_type=media_type, headers=headers)


@router.get(
    "/subscriptions/{subscription_id}",
    dependencies=[Writer],
    summary="Retrieve subscription",
    responses={**success(200, "The subscription", SUBSCRIPTION), **errors(400, 401, 403, 404, 406)},
)
async def retrieve_subscription(
    request: Request, subscription_id: str, options: Annotated[str | None, Query()] = None
) -> Response:
    """One subscription (5.8.3) with its status and notification status members."""
    _check_id(subscription_id)
    media_type = response_type(request)
    context = await link_context(request)
    sys_attrs = _sys_attrs(options)
    async with connection_of(request) as conn:
        tenant = await require_tenant(request, EntityStore(conn))
        subscription = await SubscriptionStore(conn).get(tenant, subscription_id)
    if subscription is None:
        raise not_found(f"subscription {subscription_id} does not exist")
    body = render_subscription(subscription, context, sys_attrs=sys_attrs)
    return json_response(body, request, context, media_type=media_type)


async def _locked(store: SubscriptionStore, tenant: str, subscription_id: str) -> Subscription:
    subscription = await store.get(tenant, subscription_id, lock=True)
    if subscription is None:
        raise not_found(f"subscription {subscription_id} does not exist")
    return subscription


@router.patch(
    "/subscriptions/{subscription_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Update subscription",
    openapi_extra=request_body({"type": "object", "description": "A Subscription fragment"}),
    responses={**success(204, "Updated"), **errors(400, 401, 403, 404, 413, 415, 503)},
)
async def update_subscription_route(request: Request, subscription_id: str) -> Response:
    """Update a subscription (5.8.2): the members given replace the stored ones."""
    _check_id(subscription_id)
    body, context = await read_body(request, merge_patch=True)
    notification_context = await _notification_context(request, body)
    async with connection_of(request, write=True) as conn:
        tenant = await require_tenant(request, EntityStore(conn))
        store = SubscriptionStore(conn)
        current = await _locked(store, tenant, subscription_id)
        updated = update_subscription(
            current, body, context, notification_context=notification_context
        )
        await store.save(updated)
    return Response(status_code=204)


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Delete subscription",
    responses={**success(204, "Deleted"), **errors(400, 401, 403, 404, 503)},
)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Delete a subscription (5.8.5)."""
    _check_id(subscription_id)
    async with connection_of(request, write=True) as conn:
        tenant = await require_tenant(request, EntityStore(conn))
        if not await SubscriptionStore(conn).delete(tenant, subscription_id):
            raise not_found(f"subscription {subscription_id} does not exist")
    return Response(status_code=204)
