"""`/ngsi-ld/v1/entityOperations/query`: query entities with a Query body (ETSI GS CIM 009
v1.8, 5.7.2; HTTP binding 6.23), answered exactly as GET /entities.

The `entities` of a Query are OR'ed. Where one selector says the same (types only, or id
lists under one type) it runs as GET /entities would run it; otherwise the selectors run as
one statement whose WHERE ORs them (storage/entity_query.run_queries). The temporal POST
query (ngsi/routers/temporal.py) reads its Query body with the helpers here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import read_access
from ngsi.context import ActiveContext
from ngsi.errors import ErrorType, NgsiError, bad_request
from ngsi.query import EntityQuery
from ngsi.routers.common import read_body, representation, response_type
from ngsi.routers.entities import answer_query
from ngsi.routers.openapi import ENTITY_ARRAY, QUERY, errors, request_body, success

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Batch operations"])
Reader = Depends(read_access)
OptionalText = Annotated[str | None, Query()]

#: Members of the Query data type (5.2.23) this broker answers ...
QUERY_MEMBERS = frozenset({"type", "entities", "attrs", "q", "geoQ", "lang", "pick", "omit"})
#: ... and those it does not, refused rather than ignored (ignoring one widens the answer).
UNSUPPORTED_QUERY_MEMBERS = frozenset({"scopeQ", "temporalQ", "csf", "join", "joinLevel"})
SELECTOR_MEMBERS = {"id": "ids", "idPattern": "id_pattern", "type": "types"}


@router.post(
    "/entityOperations/query",
    dependencies=[Reader],
    summary="Query entities (POST)",
    openapi_extra=request_body(QUERY),
    responses={
        **success(200, "The entities, ordered by id", ENTITY_ARRAY),
        **errors(400, 401, 403, 404, 406, 413, 415, 503),
    },
)
async def query_by_post(
    request: Request,
    limit: Annotated[int | None, Query(ge=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    count: bool = False,
    options: OptionalText = None,
    format: OptionalText = None,
    lang: OptionalText = None,
    geometryProperty: OptionalText = None,
) -> Response:
    """Query entities with a Query body (5.7.2, 6.23), answered exactly as GET /entities;
    the `entities` selectors are OR'ed, and `limit`, `offset`, `count`, `options`, `format`
    and `lang` come from the URL as for GET (`lang` in the body wins)."""
    media_type = response_type(request, geo=True)
    body, context = await read_query_body(request)
    members = set(body) - {"@context"}
    if members & UNSUPPORTED_QUERY_MEMBERS:
        raise NgsiError(
            ErrorType.OPERATION_NOT_SUPPORTED,
            f"this broker does not support {sorted(members & UNSUPPORTED_QUERY_MEMBERS)}",
        )
    if members - QUERY_MEMBERS:
        raise bad_request(f"a Query has no member {sorted(members - QUERY_MEMBERS)[0]!r}")
    rep = representation(
        context,
        options=options,
        format=format,
        attrs=_names(body, "attrs"),
        pick=_names(body, "pick"),
        omit=_names(body, "omit"),
        lang=_text(body, "lang") or lang,
        geometry_property=geometryProperty,
    )
    geo = query_geo(body)

    def build(selector: dict[str, Any]) -> EntityQuery:
        return EntityQuery.from_parameters(
            context, **selector, attributes=rep.attributes, q=_text(body, "q"), geo=geo
        )

    queries = selector_queries(body.get("entities"), build)
    return await answer_query(request, queries, context, rep, media_type, limit, offset, count)


async def read_query_body(request: Request) -> tuple[dict[str, Any], ActiveContext]:
    """The request's body, which must be a Query (5.2.23), and its active context."""
    body, context = await read_body(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise bad_request('the body must be a Query: a JSON object with "type": "Query"')
    return body, context


def query_geo(body: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The geoQ of a Query as the `geo` of EntityQuery.from_parameters."""
    geo = body.get("geoQ", {})
    if not isinstance(geo, dict):
        raise bad_request("geoQ must be a JSON object (a GeoQuery)")
    return (geo.get("georel"), geo.get("geometry"), geo.get("coordinates"), geo.get("geoproperty"))


def _text(body: dict[str, Any], member: str) -> str | None:
    value = body.get(member)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{member} must be a string")
    return value


def _names(body: dict[str, Any], member: str) -> str | None:
    """A list-of-names member (attrs, pick, omit) as the comma-separated URL form."""
    value = body.get(member)
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise bad_request(f"{member} must be an array of names")
    return ",".join(value)


def selector_queries(raw: Any, build: Callable[[dict[str, Any]], EntityQuery]) -> list[EntityQuery]:
    """The queries of a Query's `entities`, each built from EntityQuery.from_parameters
    keywords by `build`: one when a single selector says the same, else one per selector."""
    selectors = entity_selectors(raw)
    combined = combined_selector(selectors)
    return [build(combined)] if combined is not None else [build(s) for s in selectors]


def entity_selectors(raw: Any) -> list[dict[str, Any]]:
    """The `entities` of a Query (EntityInfo, 5.2.8) as EntityQuery.from_parameters keywords."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise bad_request("entities must be a non-empty array of {id, idPattern, type} objects")
    selectors = []
    for info in raw:
        if not isinstance(info, dict) or not info or set(info) - set(SELECTOR_MEMBERS):
            raise bad_request(f"an entities item has id, idPattern and/or type only: {info!r}")
        ids = info.get("id", [])
        ids = [ids] if isinstance(ids, str) else ids
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise bad_request(f"id of an entities item must be a URI: {info!r}")
        if not all(isinstance(info.get(k, ""), str) for k in ("idPattern", "type")):
            raise bad_request(f"idPattern and type of an entities item are strings: {info!r}")
        selector = {SELECTOR_MEMBERS[k]: v for k, v in info.items() if k != "id"}
        selectors.append({**selector, "ids": ids} if ids else selector)
    return selectors


def combined_selector(selectors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one selector that selects what the OR of `selectors` does, where there is one:
    types only (`(A),(B)`), or id lists under one type; None otherwise."""
    if len(selectors) <= 1:
        return selectors[0] if selectors else {}
    if all(set(s) == {"types"} for s in selectors):
        return {"types": ",".join(f"({s['types']})" for s in selectors)}
    if all(set(s) <= {"ids", "types"} and "ids" in s for s in selectors):
        types = {s.get("types") for s in selectors}
        if len(types) == 1:
            ids = list(dict.fromkeys(i for s in selectors for i in s["ids"]))
            return {"ids": ids, **({"types": types.pop()} if None not in types else {})}
    return None
