"""`/ngsi-ld/v1/types` and `/ngsi-ld/v1/attributes`: which entity types and attributes the
tenant holds (ETSI GS CIM 009, 5.7.5-5.7.10; data types 5.2.24-5.2.28; HTTP binding 6.25-6.28).

Names are compacted with the caller's @context (Link header); `id` members are the full IRIs.
A type or attribute in the path is expanded with the same context (or given as an IRI).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ngsi.access import read_access
from ngsi.context import ActiveContext
from ngsi.errors import not_found
from ngsi.routers.common import json_response, link_context, require_tenant, response_type
from ngsi.routers.openapi import DISCOVERY, READ_ANSWERS, success
from storage.discovery import (
    AttributeSummary,
    attribute_names,
    attribute_summaries,
    entity_type_info,
    entity_type_summaries,
    entity_types,
)
from storage.entity_store import EntityStore

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Discovery"])
Reader = Depends(read_access)


@asynccontextmanager
async def tenant_connection(request: Request) -> AsyncIterator[tuple[Any, str]]:
    """A pooled connection and the request's tenant, which must exist."""
    async with request.app.state.pool.connection() as conn:
        tenant = await require_tenant(request, EntityStore(conn))
        yield conn, tenant


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4()}"


def _attribute(summary: AttributeSummary, context: ActiveContext) -> dict[str, Any]:
    """An Attribute (5.2.28) with its count, attribute types and entity type names."""
    return {
        "id": summary.name,
        "type": "Attribute",
        "attributeName": context.compact(summary.name),
        "attributeCount": summary.instance_count,
        "attributeTypes": summary.attribute_types,
        "typeNames": sorted({context.compact(t) for t in summary.type_names}),
    }


@router.get(
    "/types",
    dependencies=[Reader],
    summary="Retrieve available entity types",
    responses={**success(200, "Retrieve available entity types", DISCOVERY), **READ_ANSWERS},
)
async def types(request: Request, details: bool = False) -> Response:
    """The entity types (5.7.5): an EntityTypeList, or EntityTypes with `details=true` (5.7.6)."""
    media_type = response_type(request)  # 406 before any work
    context = await link_context(request)
    async with tenant_connection(request) as (conn, tenant):
        if details:
            summaries = await entity_type_summaries(conn, tenant)
        else:
            names = await entity_types(conn, tenant)
    if details:
        payload: Any = [
            {
                "id": summary.type,
                "type": "EntityType",
                "typeName": context.compact(summary.type),
                "attributeNames": [context.compact(a) for a in summary.attribute_names],
            }
            for summary in summaries
        ]
    else:
        payload = {
            "id": _list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": [context.compact(name) for name in names],
        }
    return json_response(payload, request, context, media_type=media_type)


@router.get(
    "/types/{entity_type:path}",
    dependencies=[Reader],
    summary="Entity type information",
    responses={**success(200, "Entity type information", DISCOVERY), **READ_ANSWERS},
)
async def type_info(request: Request, entity_type: str) -> Response:
    """One entity type (5.7.7): EntityTypeInfo; ResourceNotFound when no entity has it."""
    media_type = response_type(request)
    context = await link_context(request)
    iri = context.expand(entity_type)
    async with tenant_connection(request) as (conn, tenant):
        info = await entity_type_info(conn, tenant, iri)
    if info is None:
        raise not_found(f"no entity of type {entity_type} ({iri}) exists")
    payload = {
        "id": info.type,
        "type": "EntityTypeInfo",
        "typeName": context.compact(info.type),
        "entityCount": info.entity_count,
        "attributeDetails": [
            {
                "id": attribute.name,
                "type": "Attribute",
                "attributeName": context.compact(attribute.name),
                "attributeTypes": attribute.attribute_types,
            }
            for attribute in info.attributes
        ],
    }
    return json_response(payload, request, context, media_type=media_type)


@router.get(
    "/attributes",
    dependencies=[Reader],
    summary="Retrieve available attributes",
    responses={**success(200, "Retrieve available attributes", DISCOVERY), **READ_ANSWERS},
)
async def attributes(request: Request, details: bool = False) -> Response:
    """The attributes (5.7.8): an AttributeList, or Attributes with `details=true` (5.7.9)."""
    media_type = response_type(request)
    context = await link_context(request)
    async with tenant_connection(request) as (conn, tenant):
        if details:
            summaries = await attribute_summaries(conn, tenant)
        else:
            names = await attribute_names(conn, tenant)
    if details:
        payload: Any = [_attribute(summary, context) for summary in summaries]
    else:
        payload = {
            "id": _list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": [context.compact(name) for name in names],
        }
    return json_response(payload, request, context, media_type=media_type)


@router.get(
    "/attributes/{attribute:path}",
    dependencies=[Reader],
    summary="Attribute information",
    responses={**success(200, "Attribute information", DISCOVERY), **READ_ANSWERS},
)
async def attribute_info(request: Request, attribute: str) -> Response:
    """One attribute (5.7.10): an Attribute; ResourceNotFound when no entity has it."""
    media_type = response_type(request)
    context = await link_context(request)
    iri = context.expand(attribute)
    async with tenant_connection(request) as (conn, tenant):
        summaries = await attribute_summaries(conn, tenant, iri)
    if not summaries:
        raise not_found(f"no entity has an attribute {attribute} ({iri})")
    return json_response(_attribute(summaries[0], context), request, context, media_type=media_type)
