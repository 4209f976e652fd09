"""`/ngsi-ld/v1/entities`: create, retrieve, query, replace, merge and delete entities
(ETSI GS CIM 009, 5.6 and 5.7; HTTP binding 6.4-6.7); attribute routes: attributes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import read_access, write_access
from ngsi.entity_input import AttributeReader, is_uri, read_attributes, read_entity, read_types
from ngsi.entity_output import Renderer
from ngsi.entity_update import (
    merge_entity,
)
from ngsi.errors import ErrorType, NgsiError, bad_request, not_found
from ngsi.query import EntityQuery
from ngsi.routers.common import (
    GEO_JSON,
    json_response,
    link_context,
    read_body,
    representation,
    require_tenant,
    response_type,
    tenant_of,
)
from ngsi.routers.openapi import (
    ATTRIBUTES,
    ENTITY,
    ENTITY_EXAMPLE,
    errors,
    request_body,
    success,
)
from storage.entity_query import run_queries
from storage.entity_store import EntityStore, StoredEntity

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Entities"])
Reader = Depends(read_access)
Writer = Depends(write_access)
OptionalText = Annotated[str | None, Query()]
READ_ERRORS = errors(400, 401, 403, 404, 406, 503)
WRITE_ERRORS = errors(400, 401, 403, 404, 413, 415, 503)


@asynccontextmanager
async def store_of(request: Request, *, write: bool = False) -> AsyncIterator[EntityStore]:
    """An EntityStore on a pooled connection; writes run in one transaction."""
    async with request.app.state.pool.connection() as conn:
        if write:
            async with conn.transaction():
                yield EntityStore(conn)
        else:
            yield EntityStore(conn)


def entity_location(entity_id: str) -> str:
    """The Location of an entity resource."""
    return "/ngsi-ld/v1/entities/" + quote(entity_id, safe="")


def check_id(entity_id: str) -> str:
    """An entity id from the path; BadRequestData when it is not a URI (6.3.2)."""
    if not is_uri(entity_id):
        raise bad_request(f"entity id must be a URI, not {entity_id!r}")
    return entity_id


@router.post(
    "/entities",
    status_code=201,
    dependencies=[Writer],
    summary="Create entity",
    openapi_extra=request_body(ENTITY, ENTITY_EXAMPLE),
    responses={
        **success(201, "Created; Location names the new entity"),
        **errors(400, 401, 403, 409, 413, 415, 503),
    },
)
async def create_entity(request: Request) -> Response:
    """Create an entity (5.6.1); 409 AlreadyExists when its id is taken."""
    body, context = await read_body(request)
    entity = read_entity(body, context.expand)
    tenant = tenant_of(request)
    async with store_of(request, write=True) as store:
        await store.ensure_tenant(tenant)
        if not await store.create(tenant, entity):
            raise NgsiError(ErrorType.ALREADY_EXISTS, f"entity {entity.id} already exists")
    request.app.state.known_tenants.add(tenant)
    return Response(status_code=201, headers={"Location": entity_location(entity.id)})


@router.get(
    "/entities",
    dependencies=[Reader],
    summary="Query entities",
    responses={
        **success(200, "The entities, ordered by id", {"type": "array", "items": ENTITY}),
        **errors(400, 401, 403, 404, 406, 503),
    },
)
async def query_entities(
    request: Request,
    id: OptionalText = None,
    idPattern: OptionalText = None,
    type: OptionalText = None,
    attrs: OptionalText = None,
    pick: OptionalText = None,
    omit: OptionalText = None,
    q: OptionalText = None,
    georel: OptionalText = None,
    geometry: OptionalText = None,
    coordinates: OptionalText = None,
    geoproperty: OptionalText = None,
    geometryProperty: OptionalText = None,
    lang: OptionalText = None,
    options: OptionalText = None,
    format: OptionalText = None,
    limit: Annotated[int | None, Query(ge=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    count: bool = False,
) -> Response:
    """Query entities (5.7.2) by id, idPattern, type, attrs, q and geo-query."""
    media_type = response_type(request, geo=True)
    context = await link_context(request)
    rep = representation(
        context,
        options=options,
        format=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        geometry_property=geometryProperty,
    )
    query = EntityQuery.from_parameters(
        context,
        ids=id,
        id_pattern=idPattern,
        types=type,
        attributes=rep.attributes,
        q=q,
        geo=(georel, geometry, coordinates, geoproperty),
    )
    return await answer_query(request, [query], context, rep, media_type, limit, offset, count)


def page_size(request: Request, limit: int | None, count: bool) -> int:
    """The page size asked for (the default when none), checked against the maximum."""
    settings = request.app.state.settings
    size: int = settings.api_default_limit if limit is None else limit
    if size > settings.api_max_limit:
        raise NgsiError(
            ErrorType.TOO_MANY_RESULTS,
            f"limit {size} is above the maximum page size {settings.api_max_limit}",
        )
    if size == 0 and not count:
        raise bad_request("limit=0 is only allowed together with count=true")
    return size


async def answer_query(
    request: Request,
    queries: Sequence[EntityQuery],
    context: Any,
    rep: Any,
    media_type: str,
    limit: int | None,
    offset: int,
    count: bool,
) -> Response:
    """Run a query, or selectors to OR (storage/entity_query.run_queries), and answer it
    (shared by GET /entities and POST /entityOperations/query)."""
    size = page_size(request, limit, count)
    async with store_of(request) as store:
        tenant = await require_tenant(request, store)
        page, total = await run_queries(
            store, tenant, queries, size, offset, count, postgis=request.app.state.postgis
        )
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    renderer = Renderer(context, rep)
    if media_type == GEO_JSON:
        return json_response(
            renderer.features(page), request, context, media_type=GEO_JSON, headers=headers
        )
    body = [renderer.entity(entity) for entity in page]
    return json_response(body, request, context, media_type=media_type, headers=headers)


@router.get(
    "/entities/{entity_id}",
    dependencies=[Reader],
    summary="Retrieve entity",
    responses={**success(200, "The entity", ENTITY), **READ_ERRORS},
)
async def retrieve_entity(
    request: Request,
    entity_id: str,
    type: OptionalText = None,
    attrs: OptionalText = None,
    pick: OptionalText = None,
    omit: OptionalText = None,
    geometryProperty: OptionalText = None,
    lang: OptionalText = None,
    options: OptionalText = None,
    format: OptionalText = None,
) -> Response:
    """Retrieve one entity (5.7.1)."""
    check_id(entity_id)
    media_type = response_type(request, geo=True)
    context = await link_context(request)
    rep = representation(
        context,
        options=options,
        format=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        geometry_property=geometryProperty,
    )
    async with store_of(request) as store:
        tenant = await require_tenant(request, store)
        entity = await store.get(tenant, entity_id)
    if entity is None or (type is not None and not _has_types(entity, type, context.expand)):
        raise not_found(f"entity {entity_id} does not exist")
    renderer = Renderer(context, rep)
    if media_type == GEO_JSON:
        return json_response(renderer.feature(entity), request, context, media_type=GEO_JSON)
    return json_response(renderer.entity(entity), request, context, media_type=media_type)


def _has_types(entity: StoredEntity, types: str, expand: Any) -> bool:
    return any(expand(t.strip()) in entity.types for t in types.split(","))


@router.delete(
    "/entities/{entity_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Delete entity",
    responses=errors(400, 401, 403, 404),
)
async def delete_entity(request: Request, entity_id: str) -> Response:
    """Delete an entity (5.6.6)."""
    check_id(entity_id)
    async with store_of(request, write=True) as store:
        tenant = await require_tenant(request, store)
        if not await store.delete(tenant, entity_id):
            raise not_found(f"entity {entity_id} does not exist")
    return Response(status_code=204)


@router.put(
    "/entities/{entity_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Replace entity",
    openapi_extra=request_body(ENTITY, ENTITY_EXAMPLE),
    responses=WRITE_ERRORS,
)
async def replace_entity(request: Request, entity_id: str) -> Response:
    """Replace an entity whole (5.6.18); the body's id, if any, must be the path's."""
    check_id(entity_id)
    body, context = await read_body(request)
    if not isinstance(body, dict):
        raise bad_request("an entity must be a JSON object")
    if body.get("id", entity_id) != entity_id:
        raise bad_request(f"the body's id {body.get('id')!r} is not the path's {entity_id!r}")
    new = read_entity({**body, "id": entity_id}, context.expand)
    async with store_of(request, write=True) as store:
        tenant = await require_tenant(request, store)
        current = await _locked(store, tenant, entity_id)
        new.scope = new.scope if "scope" in body else None
        new.created_at = current.created_at
        await store.save(tenant, new)
    return Response(status_code=204)


async def _locked(store: EntityStore, tenant: str, entity_id: str) -> StoredEntity:
    entity = await store.get(tenant, entity_id, lock=True)
    if entity is None:
        raise not_found(f"entity {entity_id} does not exist")
    return entity


async def change_entity(
    request: Request, entity_id: str, change: Callable[[StoredEntity], bool | None]
) -> None:
    """Lock the entity, let `change` alter it, and save it unless `change` says False."""
    async with store_of(request, write=True) as store:
        tenant = await require_tenant(request, store)
        entity = await _locked(store, tenant, entity_id)
        if change(entity) is not False:
            await store.save(tenant, entity)


def attributes_body(body: Any, entity_id: str) -> dict[str, Any]:
    """A body of attributes for `entity_id`: an object whose id, if any, is the path's."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object of attributes")
    if body.get("id", entity_id) != entity_id:
        raise bad_request(f"the body's id {body.get('id')!r} is not the path's {entity_id!r}")
    return body


@router.patch(
    "/entities/{entity_id}",
    status_code=204,
    dependencies=[Writer],
    summary="Merge entity",
    openapi_extra=request_body(ATTRIBUTES),
    responses=WRITE_ERRORS,
)
async def merge_entity_route(request: Request, entity_id: str) -> Response:
    """Merge attributes into an entity (5.6.17); `urn:ngsi-ld:null` deletes one."""
    check_id(entity_id)
    raw, context = await read_body(request, merge_patch=True)
    body = attributes_body(raw, entity_id)
    incoming = read_attributes(body, AttributeReader(context.expand))
    added = read_types(body["type"], context.expand) if "type" in body else []

    def merge(entity: StoredEntity) -> None:
        entity.types = list(dict.fromkeys(entity.types + added))
        merge_entity(entity, incoming)

    await change_entity(request, entity_id, merge)
    return Response(status_code=204)
