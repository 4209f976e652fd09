"""Writes of the temporal API (ETSI GS CIM 009 v1.8, 5.6.11-5.6.16; HTTP binding 6.18-6.22).

Every instance written becomes a row of `observations` (ngsi/temporal_input.py); the
newest instance of each attribute and datasetId also goes into the entity's latest state
when it is not older than what is there (ingest's rule), and a temporal entity that does not
exist yet is created in `entities` as well, so that the context API and the temporal queries
(which select entities from `entities`) see it. Deleting a temporal entity deletes its
history and the entity; deleting a temporal attribute deletes its history and the attribute
of the latest state. Instance changes (5.6.15, 5.6.16) touch the history only, except that a
modified instance that is the one in the latest state is modified there too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import write_access
from ngsi.entity_input import PROPERTY_KINDS, AttributeReader, is_uri
from ngsi.entity_update import delete_attribute, instances, merge_instances
from ngsi.errors import NgsiError, bad_request, not_found
from ngsi.routers.common import link_context, read_body, require_tenant, tenant_of
from ngsi.routers.entities import check_id
from ngsi.routers.openapi import errors, request_body, success
from ngsi.temporal_input import (
    TemporalFragment,
    encode_value,
    read_temporal_entity,
    read_temporal_fragment,
)
from ngsi.temporal_output import iso
from storage.entity_store import EntityStore
from storage.temporal_reads import history_entity_type
from storage.temporal_series import parse_instance_id
from storage.temporal_writes import (
    delete_attribute_history,
    delete_entity_history,
    delete_instance,
    ensure_partitions,
    insert_instances,
    merge_latest_state,
    update_instance,
)

router = APIRouter(tags=["Temporal"])
Writer = Depends(write_access)
TEMPORAL_BODY = {
    "type": "object",
    "required": ["id", "type"],
    "description": "A temporal entity (clause 4.5.9): id, type, and per attribute an array "
    "of instances, each with observedAt.",
    "additionalProperties": True,
}
TEMPORAL_EXAMPLE = {
    "id": "urn:ngsi-ld:AirQualityObserved:gent-1",
    "type": "AirQualityObserved",
    "pm25": [
        {"type": "Property", "value": 12.5, "unitCode": "GQ", "observedAt": "2026-11-29T08:00:00Z"},
        {"type": "Property", "value": 14.0, "unitCode": "GQ", "observedAt": "2026-11-29T09:00:00Z"},
    ],
}
#: The members that say what an instance holds; a modification replaces them together.
VALUE_MEMBERS = frozenset({"type", *PROPERTY_KINDS.values()})
WRITE_ERRORS = errors(400, 401, 403, 404, 413, 415, 503)


def temporal_location(entity_id: str) -> str:
    """The Location of a temporal entity resource."""
    return "/ngsi-ld/v1/temporal/entities/" + quote(entity_id, safe="")


async def write_fragment(request: Request, fragment: TemporalFragment, *, create: bool) -> bool:
    """Write the rows and the latest state in one transaction; whether the entity existed."""
    async with request.app.state.pool.connection() as conn:
        # Partitions first, each in a short transaction of its own (storage/temporal_writes.py).
        await ensure_partitions(conn, fragment.rows)
        async with conn.transaction():
            store = EntityStore(conn)
            tenant = tenant_of(request)
            if create:
                await store.ensure_tenant(tenant)
            else:
                tenant = await require_tenant(request, store)
            had_history = await history_entity_type(conn, tenant, fragment.entity_id)
            # Observations before the entity row: the order ingest commits in.
            await insert_instances(conn, tenant, fragment.rows)
            existed = await merge_latest_state(store, tenant, fragment, create=create)
    request.app.state.known_tenants.add(tenant)
    return existed or had_history is not None


@router.post(
    "/temporal/entities",
    dependencies=[Writer],
    summary="Create or update temporal evolution of an entity",
    openapi_extra=request_body(TEMPORAL_BODY, TEMPORAL_EXAMPLE),
    responses={
        **success(201, "Created; Location names the new temporal entity"),
        **success(204, "The instances were added to an existing entity"),
        **WRITE_ERRORS,
    },
)
async def create_temporal(request: Request) -> Response:
    """Create a temporal entity, or add instances to an existing one (5.6.11): 201 or 204."""
    body, context = await read_body(request)
    fragment = read_temporal_entity(body, context.expand, tenant_of(request))
    if await write_fragment(request, fragment, create=True):
        return Response(status_code=204)
    return Response(status_code=201, headers={"Location": temporal_location(fragment.entity_id)})


async def _types_of(request: Request, entity_id: str) -> list[str]:
    async with request.app.state.pool.connection() as conn:
        store = EntityStore(conn)
        tenant = await require_tenant(request, store)
        entity = await store.get(tenant, entity_id)
        if entity is not None:
            return entity.types
        entity_type = await history_entity_type(conn, tenant, entity_id)
    if entity_type is None:
        raise not_found(f"entity {entity_id} does not exist")
    return [entity_type]


@router.post(
    "/temporal/entities/{entity_id}/attrs",
    status_code=204,
    dependencies=[Writer],
    summary="Add attributes to temporal evolution of an entity",
    openapi_extra=request_body({"type": "object", "additionalProperties": True}),
    responses=WRITE_ERRORS,
)
async def append_temporal(request: Request, entity_id: str) -> Response:
    """Add attribute instances to a temporal entity (5.6.13)."""
    check_id(entity_id)
    body, context = await read_body(request)
    types = await _types_of(request, entity_id)
    fragment = read_temporal_fragment(body, entity_id, types, context.expand, tenant_of(request))
    await write_fragment(request, fragment, create=False)
    return Response(status_code=204)


@router.delete(
    "/temporal/entities/{entity_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Delete temporal evolution of an entity",
    responses=errors(400, 401, 403, 404),
)
async def delete_temporal(request: Request, entity_id: str) -> Response:
    """Delete an entity's history and the entity (5.6.12)."""
    check_id(entity_id)
    async with request.app.state.pool.connection() as conn, conn.transaction():
        store = EntityStore(conn)
        tenant = await require_tenant(request, store)
        gone = await delete_entity_history(conn, tenant, entity_id)
        if not await store.delete(tenant, entity_id) and not gone:
            raise not_found(f"entity {entity_id} does not exist")
    return Response(status_code=204)


@router.delete(
    "/temporal/entities/{entity_id}/attrs/{attribute}",
    status_code=204,
    dependencies=[Writer],
    summary="Delete an attribute from temporal evolution of an entity",
    responses=errors(400, 401, 403, 404),
)
async def delete_temporal_attribute(
    request: Request,
    entity_id: str,
    attribute: str,
    datasetId: Annotated[str | None, Query()] = None,
    deleteAll: bool = False,
) -> Response:
    """Delete an attribute's history (its default instance, one datasetId, or all: 5.6.14)
    and the same from the latest state."""
    check_id(entity_id)
    if datasetId is not None and not is_uri(datasetId):
        raise bad_request(f"datasetId must be a URI, not {datasetId!r}")
    context = await link_context(request)
    name = context.expand(attribute)
    async with request.app.state.pool.connection() as conn, conn.transaction():
        store = EntityStore(conn)
        tenant = await require_tenant(request, store)
        gone = await delete_attribute_history(conn, tenant, entity_id, name, datasetId, deleteAll)
        entity = await store.get(tenant, entity_id, lock=True)
        dropped = False
        if entity is not None and name in entity.attributes:
            try:
                delete_attribute(entity, name, attribute, datasetId, deleteAll)
                await store.save(tenant, entity)
                dropped = True
            except NgsiError:
                pass  # no instance of that datasetId in the latest state
        if not gone and not dropped:
            raise not_found(f"entity {entity_id} has no attribute {attribute!r} to delete")
    return Response(status_code=204)


def _instance_key(instance_id: str, entity_id: str, name: str) -> tuple[datetime, str]:
    if not is_uri(instance_id):
        raise bad_request(f"instanceId must be a URI, not {instance_id!r}")
    try:
        return parse_instance_id(instance_id, entity_id, name)
    except ValueError as error:
        raise not_found(f"no instance {instance_id} of this attribute: {error}") from None


@router.patch(
    "/temporal/entities/{entity_id}/attrs/{attribute}/{instance_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Modify an attribute instance in temporal evolution of an entity",
    openapi_extra=request_body({"type": "object"}),
    responses=WRITE_ERRORS,
)
async def patch_instance(
    request: Request, entity_id: str, attribute: str, instance_id: str
) -> Response:
    """Replace one instance's value and unitCode (5.6.15); an observedAt in the body moves
    the instance to that time."""
    check_id(entity_id)
    body, context = await read_body(request)
    name = context.expand(attribute)
    observed_at, dataset = _instance_key(instance_id, entity_id, name)
    if not isinstance(body, dict):
        raise bad_request("an attribute instance must be a JSON object")
    if body.get("datasetId", dataset or None) != (dataset or None):
        raise bad_request("the datasetId of an instance cannot be changed")
    instance = AttributeReader(context.expand).instance(attribute, body, 0)
    if dataset:
        instance["datasetId"] = dataset
    number, other = encode_value(instance)
    moved = instance.get("observedAt")
    async with request.app.state.pool.connection() as conn, conn.transaction():
        store = EntityStore(conn)
        tenant = await require_tenant(request, store)
        if moved is not None and moved != iso(observed_at):
            types = await _stored_types(store, tenant, entity_id)
            if not await delete_instance(conn, tenant, entity_id, name, observed_at, dataset):
                raise not_found(f"no instance {instance_id} of {attribute!r}")
            fragment = TemporalFragment(entity_id, types)
            fragment.add(tenant, name, instance, attribute)
            await insert_instances(conn, tenant, fragment.rows)
            return Response(status_code=204)
        value = number if number is not None else other
        unit = instance.get("unitCode")
        if not await update_instance(
            conn, tenant, entity_id, name, observed_at, dataset, value, unit
        ):
            raise not_found(f"no instance {instance_id} of {attribute!r}")
        await _patch_latest(store, tenant, entity_id, name, observed_at, instance)
    return Response(status_code=204)


async def _stored_types(store: EntityStore, tenant: str, entity_id: str) -> list[str]:
    entity = await store.get(tenant, entity_id)
    if entity is not None:
        return entity.types
    entity_type = await history_entity_type(store.conn, tenant, entity_id)
    return [entity_type] if entity_type else ["urn:ngsi-ld:unknown"]


async def _patch_latest(
    store: EntityStore,
    tenant: str,
    entity_id: str,
    name: str,
    observed_at: datetime,
    instance: dict[str, Any],
) -> None:
    """Modify the latest state too when the modified instance is the one it holds."""
    entity = await store.get(tenant, entity_id, lock=True)
    if entity is None or name not in entity.attributes:
        return
    dataset = str(instance.get("datasetId", ""))
    for held in instances(entity.attributes[name]):
        if held.get("datasetId", "") != dataset or held.get("observedAt") != iso(observed_at):
            continue
        kept = {k: v for k, v in held.items() if k not in VALUE_MEMBERS}
        updated = {**kept, **{k: v for k, v in instance.items() if k != "createdAt"}}
        updated["observedAt"] = held["observedAt"]
        entity.attributes[name], _ = merge_instances(entity.attributes[name], updated)
        await store.save(tenant, entity)
        return


@router.delete(
    "/temporal/entities/{entity_id}/attrs/{attribute}/{instance_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Delete an attribute instance from temporal evolution of an entity",
    responses=errors(400, 401, 403, 404),
)
async def delete_instance_route(
    request: Request, entity_id: str, attribute: str, instance_id: str
) -> Response:
    """Delete one instance from the history (5.6.16); the latest state is left alone."""
    check_id(entity_id)
    context = await link_context(request)
    name = context.expand(attribute)
    observed_at, dataset = _instance_key(instance_id, entity_id, name)
    async with request.app.state.pool.connection() as conn, conn.transaction():
        tenant = await require_tenant(request, EntityStore(conn))
        if not await delete_instance(conn, tenant, entity_id, name, observed_at, dataset):
            raise not_found(f"no instance {instance_id} of {attribute!r}")
    return Response(status_code=204)
