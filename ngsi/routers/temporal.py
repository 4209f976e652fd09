"""`/ngsi-ld/v1/temporal`: the temporal evolution of entities (ETSI GS CIM 009 v1.8, 5.7.3,
5.7.4; HTTP binding 6.18-6.24); the writes (5.6.11-5.6.16) are in temporal_writes.py.

Entities are selected from `entities` exactly as the context API selects them (type, id,
idPattern, attrs, q and geo-query on the latest state), ordered by id and paged with
limit/offset; then their history in the time window is read (ngsi/temporal_history.py) and
rendered (ngsi/temporal_output.py). An answer holding more than the configured instances
per attribute is cut and answered 206 Partial Content with Content-Range (clause 6.3.10).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import read_access
from ngsi.context import ActiveContext
from ngsi.errors import bad_request, not_found
from ngsi.query import EntityQuery
from ngsi.routers import temporal_writes
from ngsi.routers.common import json_response, link_context, require_tenant, response_type
from ngsi.routers.entities import check_id, page_size, store_of
from ngsi.routers.openapi import errors, request_body, success
from ngsi.routers.query_operation import query_geo, read_query_body, selector_queries
from ngsi.temporal_history import HistoryRequest, read_aggregated, read_instances
from ngsi.temporal_output import EntityHead, TemporalOptions, TemporalRenderer
from ngsi.temporal_request import (
    TEMPORAL_QUERY_MEMBERS,
    TemporalParameters,
    parse_history_request,
)
from storage.entity_query import run_queries, union_filter
from storage.entity_store import EntityStore
from storage.temporal_heads import select_heads
from storage.temporal_reads import history_entity_type, rollup_backend

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Temporal"])
router.include_router(temporal_writes.router)
Reader = Depends(read_access)
Text = Annotated[str | None, Query()]
TEMPORAL_ENTITY = {
    "type": "object",
    "description": "id, type, and per attribute an array of instances (clause 4.5.9), or with "
    "temporalValues {type, values: [[value, observedAt]]}, or with aggregatedValues "
    "{type, <method>: [[value, startAt, endAt]]}.",
}
READ_ERRORS = errors(400, 401, 403, 404, 406, 503)
READ_ANSWERS = {
    **success(200, "The temporal entities", {"type": "array", "items": TEMPORAL_ENTITY}),
    **success(206, "Capped: Content-Range names the time range answered (clause 6.3.10)"),
}
TEMPORAL_QUERY = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"const": "Query"},
        "entities": {"type": "array", "items": {"type": "object"}},
        "attrs": {"type": "array", "items": {"type": "string"}},
        "q": {"type": "string"},
        "geoQ": {"type": "object"},
        "temporalQ": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in TEMPORAL_QUERY_MEMBERS}
            | {"lastN": {"type": "integer"}},
        },
        "lang": {"type": "string"},
    },
}
QUERY_MEMBERS = frozenset(
    {"type", "entities", "attrs", "q", "geoQ", "temporalQ", "lang", "pick", "omit", "@context"}
)


def history_request(
    request: Request, context: ActiveContext, params: TemporalParameters, attrs: str | None
) -> tuple[HistoryRequest, TemporalOptions]:
    """The checked history request and rendering options, with this app's settings."""
    settings = request.app.state.settings
    return parse_history_request(
        params,
        context,
        attrs,
        default_zone=settings.temporal_time_zone,
        max_instances=settings.temporal_max_instances,
        now=datetime.now(UTC),
    )


async def _backend(request: Request, conn: Any) -> str:
    """The rollup backend of the database, learnt once per app."""
    state = request.app.state
    if not hasattr(state, "temporal_backend"):
        state.temporal_backend = await rollup_backend(conn)
    return str(state.temporal_backend)


async def answer(
    request: Request,
    tenant: str,
    context: ActiveContext,
    heads: list[EntityHead],
    history: HistoryRequest,
    options: TemporalOptions,
    *,
    single: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """Read the heads' history and answer it (200, or 206 with Content-Range)."""
    media_type = response_type(request)
    ids = [head.id for head in heads]
    renderer = TemporalRenderer(context, options)
    async with request.app.state.pool.connection() as conn:
        history = replace(history, backend=await _backend(request, conn))
        if history.aggregation is not None:
            aggregated = await read_aggregated(conn, tenant, ids, history, context.compact)
            by_entity = _per_entity(aggregated.series)
            edges = aggregated.edges
            body = [renderer.aggregated(h, by_entity.get(h.id, {}), edges) for h in heads]
            cut = aggregated.content_range
        else:
            found = await read_instances(conn, tenant, ids, history)
            per_entity = _per_entity(found.series)
            body = [renderer.entity(h, per_entity.get(h.id, {})) for h in heads]
            cut = found.content_range
    headers = dict(headers or {})
    if cut is not None:
        headers["Content-Range"] = cut
    return json_response(
        body[0] if single else body,
        request,
        context,
        media_type=media_type,
        status=206 if cut is not None else 200,
        headers=headers,
    )


def _per_entity(series: dict[Any, Any]) -> dict[str, dict[Any, Any]]:
    grouped: dict[str, dict[Any, Any]] = {}
    for key, value in series.items():
        grouped.setdefault(key[0], {})[key] = value
    return grouped


async def select(
    request: Request, queries: list[EntityQuery], limit: int | None, offset: int, count: bool
) -> tuple[str, list[EntityHead], dict[str, str]]:
    """The tenant, one page of the selected entities (by id) and the count header. Only
    the heads are read, unless a geo-query must test geometries in Python (no PostGIS)."""
    size = page_size(request, limit, count)
    postgis = request.app.state.postgis
    async with store_of(request) as store:
        tenant = await require_tenant(request, store)
        if queries[0].geo is not None and not postgis:
            page, total = await run_queries(
                store, tenant, queries, size, offset, count, postgis=postgis
            )
            heads = [EntityHead(e.id, e.types, e.created_at, e.modified_at) for e in page]
        else:
            selection = union_filter(queries, postgis=postgis)
            rows = await select_heads(store.conn, tenant, selection, size, offset)
            heads = [EntityHead(*row) for row in rows]
            total = await store.count(tenant, selection) if count else None
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    return tenant, heads, headers


Limit = Annotated[int | None, Query(ge=0)]
Offset = Annotated[int, Query(ge=0)]


@router.get(
    "/temporal/entities",
    dependencies=[Reader],
    summary="Query temporal evolution of entities",
    responses={**READ_ANSWERS, **READ_ERRORS},
)
async def query_temporal(
    request: Request,
    id: Text = None,
    idPattern: Text = None,
    type: Text = None,
    attrs: Text = None,
    q: Text = None,
    georel: Text = None,
    geometry: Text = None,
    coordinates: Text = None,
    geoproperty: Text = None,
    timerel: Text = None,
    timeAt: Text = None,
    endTimeAt: Text = None,
    timeproperty: Text = None,
    lastN: Text = None,
    options: Text = None,
    format: Text = None,
    aggrMethods: Text = None,
    aggrPeriodDuration: Text = None,
    timezone: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    gapFill: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    lang: Text = None,
    pick: Text = None,
    omit: Text = None,
    limit: Limit = None,
    offset: Offset = 0,
    count: bool = False,
) -> Response:
    """Query the temporal evolution of entities (5.7.4, 6.18.3.2)."""
    context = await link_context(request)
    params = TemporalParameters(
        timerel=timerel, timeAt=timeAt, endTimeAt=endTimeAt, timeproperty=timeproperty,
        lastN=lastN, options=options, format=format, aggrMethods=aggrMethods,
        aggrPeriodDuration=aggrPeriodDuration, timezone=timezone, gapFill=gapFill,
        lang=lang, pick=pick, omit=omit,
    )  # fmt: skip
    history, rendering = history_request(request, context, params, attrs)
    query = EntityQuery.from_parameters(
        context,
        ids=id,
        id_pattern=idPattern,
        types=type,
        attributes=frozenset(history.attributes) if history.attributes else None,
        q=q,
        geo=(georel, geometry, coordinates, geoproperty),
    )
    tenant, heads, headers = await select(request, [query], limit, offset, count)
    return await answer(request, tenant, context, heads, history, rendering, headers=headers)


@router.get(
    "/temporal/entities/{entity_id}",
    dependencies=[Reader],
    summary="Retrieve temporal evolution of an entity",
    responses={
        **success(200, "The temporal entity", TEMPORAL_ENTITY),
        **success(206, "Capped: Content-Range names the time range answered (clause 6.3.10)"),
        **READ_ERRORS,
    },
)
async def retrieve_temporal(
    request: Request,
    entity_id: str,
    attrs: Text = None,
    timerel: Text = None,
    timeAt: Text = None,
    endTimeAt: Text = None,
    timeproperty: Text = None,
    lastN: Text = None,
    options: Text = None,
    format: Text = None,
    aggrMethods: Text = None,
    aggrPeriodDuration: Text = None,
    timezone: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    gapFill: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    lang: Text = None,
    pick: Text = None,
    omit: Text = None,
) -> Response:
    """Retrieve the temporal evolution of one entity (5.7.3, 6.19.3.1)."""
    check_id(entity_id)
    context = await link_context(request)
    params = TemporalParameters(
        timerel=timerel, timeAt=timeAt, endTimeAt=endTimeAt, timeproperty=timeproperty,
        lastN=lastN, options=options, format=format, aggrMethods=aggrMethods,
        aggrPeriodDuration=aggrPeriodDuration, timezone=timezone, gapFill=gapFill,
        lang=lang, pick=pick, omit=omit,
    )  # fmt: skip
    history, rendering = history_request(request, context, params, attrs)
    async with store_of(request) as store:
        tenant = await require_tenant(request, store)
        head = await entity_head(store, tenant, entity_id)
    return await answer(request, tenant, context, [head], history, rendering, single=True)


async def entity_head(store: EntityStore, tenant: str, entity_id: str) -> EntityHead:
    """The entity's head from `entities`, else from its history; ResourceNotFound if neither."""
    entity = await store.get(tenant, entity_id)
    if entity is not None:
        return EntityHead(entity.id, entity.types, entity.created_at, entity.modified_at)
    entity_type = await history_entity_type(store.conn, tenant, entity_id)
    if entity_type is None:
        raise not_found(f"entity {entity_id} does not exist")
    return EntityHead(entity_id, [entity_type])


@router.post(
    "/temporal/entityOperations/query",
    dependencies=[Reader],
    summary="Query temporal evolution of entities (POST)",
    openapi_extra=request_body(TEMPORAL_QUERY),
    responses={**READ_ANSWERS, **errors(400, 401, 403, 404, 406, 413, 415, 503)},
)
async def query_temporal_by_post(
    request: Request,
    options: Text = None,
    format: Text = None,
    timezone: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    gapFill: Annotated[str | None, Query(description="Stadspuls extension")] = None,
    lang: Text = None,
    limit: Limit = None,
    offset: Offset = 0,
    count: bool = False,
) -> Response:
    """Query the temporal evolution of entities with a Query body whose temporalQ holds the
    temporal query (5.7.4, 6.24); `entities` selectors are OR'ed, as in POST
    /entityOperations/query."""
    body, context = await read_query_body(request)
    if set(body) - QUERY_MEMBERS:
        raise bad_request(f"a Query has no member {sorted(set(body) - QUERY_MEMBERS)[0]!r}")
    temporal = body.get("temporalQ", {})
    if not isinstance(temporal, dict) or set(temporal) - set(TEMPORAL_QUERY_MEMBERS):
        raise bad_request(f"temporalQ is an object with members among {TEMPORAL_QUERY_MEMBERS}")
    text = TemporalParameters(**body).text
    params = TemporalParameters(
        **temporal,
        options=options,
        format=format,
        timezone=timezone,
        gapFill=gapFill,
        lang=text("lang") or lang,
        pick=text("pick"),
        omit=text("omit"),
    )
    history, rendering = history_request(request, context, params, text("attrs"))
    geo = query_geo(body)

    def build(selector: dict[str, Any]) -> EntityQuery:
        return EntityQuery.from_parameters(
            context,
            **selector,
            attributes=frozenset(history.attributes) if history.attributes else None,
            q=text("q"),
            geo=geo,
        )

    queries = selector_queries(body.get("entities"), build)
    tenant, heads, headers = await select(request, queries, limit, offset, count)
    return await answer(request, tenant, context, heads, history, rendering, headers=headers)
