"""The LDES over HTTP (docs/ldes.md): `/ldes/{stream}`, its view and its time fragments.

The tenant is part of the path, not a header: an LDES client follows links and sends no
NGSILD-Tenant header, so every IRI must name its tenant. `/ldes/...` is the default tenant,
`/ldes/tenants/{tenant}/...` any other. Reading needs read access to that tenant (or a
publicly readable tenant), as the NGSI-LD API.

Answers carry ETag (and Last-Modified where known) and answer conditional GETs with 304
(feeds/http.py); pages of closed windows are immutable, the rest is cached briefly. A window
past the retention period is 410 Gone; a window in the future, a start that is not a window
start, or a page beyond the last is 404. An Accept header that allows none of JSON-LD,
Turtle, N-Quads or N-Triples is 406.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Query, Request, Response
from rdflib import Graph

from feeds.http import Revision, caching_headers, not_modified
from feeds.ldes import (
    STREAMS,
    LdesSettings,
    Stream,
    StreamUrls,
    add_member,
    cache_control,
    event_stream_graph,
    first_retained,
    fragment_graph,
    is_closed,
    is_expired,
    parse_window,
    stream_index_graph,
    view_graph,
    window_start,
)
from feeds.ldes_formats import OFFERED, negotiate, serialize
from feeds.ldes_members import (
    air_quality_member,
    roadwork_member,
    roadwork_version_iri,
    traffic_member,
)
from ngsi.access import Role, access_control
from ngsi.errors import ErrorType, NgsiError, bad_request, not_found
from ngsi.routers.iot_common import with_connection
from ngsi.routers.openapi import errors, success
from storage.ldes_store import observation_page, observation_revision, observation_windows
from storage.roadwork_versions import load_roadwork_versions, roadwork_version_windows

router = APIRouter(tags=["ldes"])
DEFAULT = "/ldes"
TENANT = "/ldes/tenants/{tenant}"
Page = Annotated[int, Query(ge=1, description="Page of the window (1 is the first)")]
Rendered = tuple[Revision, bytes | None]


def _settings(request: Request) -> LdesSettings:
    # app.state.ldes_settings, when set, wins (an embedding app or a test may set it).
    chosen = getattr(request.app.state, "ldes_settings", None)
    if isinstance(chosen, LdesSettings):
        return chosen
    return LdesSettings.from_settings(request.app.state.settings)


async def _authorize(request: Request, tenant: str) -> None:
    if len(tenant) > 128 or any(c.isspace() or c == "/" for c in tenant):
        raise bad_request(f"the tenant must be a name without spaces, not {tenant!r}")
    if request.app.state.settings.auth_enabled:
        control = access_control(request.app)
        request.state.principal = await control.authorize(request, tenant, Role.READ)


def _media_type(request: Request) -> str:
    chosen = negotiate(request.headers.get("accept"))
    if chosen is None:
        offered = ", ".join(OFFERED)
        raise NgsiError(ErrorType.NOT_ACCEPTABLE, f"the LDES is offered as {offered} only")
    return chosen


def _urls(request: Request, settings: LdesSettings, tenant: str, stream: str) -> StreamUrls:
    base = (settings.base_url or str(request.base_url)).rstrip("/") + DEFAULT
    if tenant:
        base += "/tenants/" + quote(tenant, safe="")
    return StreamUrls(base, stream)


def _stream(name: str) -> Stream:
    stream = STREAMS.get(name)
    if stream is None:
        raise not_found(f"no event stream {name!r}; there are {', '.join(STREAMS)}")
    return stream


def _respond(
    request: Request, revision: Revision, body: bytes | None, media: str, cache: str
) -> Response:
    headers = caching_headers(revision, 0)
    headers.update({"Cache-Control": cache, "Vary": "Accept"})
    if body is None:
        return Response(status_code=304, headers=headers)
    return Response(body, 200, headers=headers, media_type=media)


def _matches(request: Request, revision: Revision) -> bool:
    return not_modified(request, revision, 0) is not None


async def _render(
    request: Request, media: str, cache: str, work: Callable[[psycopg.Connection], Rendered]
) -> Response:
    revision, body = await with_connection(request, work)
    return _respond(request, revision, body, media, cache)


#: What every LDES route can answer (docs/ldes.md).
LDES_ANSWERS: dict[int | str, dict[str, Any]] = {
    **success(200, "The RDF document (JSON-LD, Turtle, N-Quads or N-Triples by Accept)"),
    304: {"description": "Not Modified (If-None-Match / If-Modified-Since)"},
    **errors(400, 401, 403, 404, 406),
    410: {"description": "The fragment is older than the retention policy"},
}


@router.get(
    DEFAULT, summary="The event streams (LDES) of the default tenant", responses=LDES_ANSWERS
)
@router.get(TENANT, summary="The event streams (LDES) of a tenant", responses=LDES_ANSWERS)
async def stream_index(request: Request, tenant: str = "") -> Response:
    """Every stream of the tenant, with its view."""
    await _authorize(request, tenant)
    media, settings = _media_type(request), _settings(request)
    graph = stream_index_graph([_urls(request, settings, tenant, name) for name in STREAMS])
    revision = Revision(f"index|{tenant}|{media}|{sorted(STREAMS)}", None)
    body = None if _matches(request, revision) else serialize(graph, media)
    return _respond(request, revision, body, media, cache_control(False, settings))


@router.get(
    DEFAULT + "/{stream}", summary="An event stream (ldes:EventStream)", responses=LDES_ANSWERS
)
@router.get(
    TENANT + "/{stream}",
    summary="An event stream of a tenant (ldes:EventStream)",
    responses=LDES_ANSWERS,
)
async def event_stream(request: Request, stream: str, tenant: str = "") -> Response:
    """The EventStream: timestampPath, versionOfPath, its view and retention policy."""
    await _authorize(request, tenant)
    kind, media, settings = _stream(stream), _media_type(request), _settings(request)
    urls = _urls(request, settings, tenant, stream)
    revision = Revision(f"stream|{urls.event_stream}|{media}|{settings}", None)
    body = (
        None
        if _matches(request, revision)
        else serialize(event_stream_graph(kind, urls, settings), media)
    )
    return _respond(request, revision, body, media, cache_control(False, settings))


@router.get(
    DEFAULT + "/{stream}/view",
    summary="The root node of a stream's time-based view",
    responses=LDES_ANSWERS,
)
@router.get(
    TENANT + "/{stream}/view",
    summary="The root node of a tenant stream's view",
    responses=LDES_ANSWERS,
)
async def view(request: Request, stream: str, tenant: str = "") -> Response:
    """Relations to the first page of every retained window that holds members."""
    await _authorize(request, tenant)
    kind, media, settings = _stream(stream), _media_type(request), _settings(request)
    urls = _urls(request, settings, tenant, stream)
    now = datetime.now(UTC)

    def work(conn: psycopg.Connection) -> Rendered:
        first, last = first_retained(now, settings), window_start(now, settings)
        if kind.observations:
            windows = observation_windows(conn, tenant, stream, first, last, settings.fragment)
        else:
            windows = roadwork_version_windows(conn, tenant, first, last, settings.fragment)
        key = "|".join([str(urls.view), media, str(settings), *map(str, windows)])
        revision = Revision(key, None)
        if _matches(request, revision):
            return revision, None
        return revision, serialize(view_graph(kind, urls, settings, windows), media)

    return await _render(request, media, cache_control(False, settings), work)


def _window(token: str, now: datetime, settings: LdesSettings) -> datetime:
    start = parse_window(token, settings)
    if start is None:
        raise not_found(
            f"{token!r} is not the start of a window (YYYYMMDDTHHMMSSZ, a multiple of "
            f"{settings.fragment_seconds} s since the Unix epoch)"
        )
    if start > now:
        raise not_found(f"the window {token} lies in the future")
    if is_expired(start, now, settings):
        raise NgsiError(
            ErrorType.RESOURCE_NOT_FOUND,
            f"the window {token} is past the retention period of {settings.retention_days} "
            "days and no longer served",
            status=410,
        )
    return start


def _observation_fragment(
    conn: psycopg.Connection, request: Request, kind: Stream, tenant: str, urls: StreamUrls,
    start: datetime, page: int, media: str, settings: LdesSettings,
) -> Rendered:  # fmt: skip
    end = start + settings.fragment
    count, newest = observation_revision(conn, tenant, kind.name, start, end)
    revision = Revision(f"{urls.fragment(start, page)}|{media}|{count}|{newest}", None)
    size = settings.page_size
    if (page - 1) * size >= max(count, 1):
        raise not_found(f"the window has {count} members: no page {page}")
    if _matches(request, revision):
        return revision, None
    records = observation_page(conn, tenant, kind.name, start, end, (page - 1) * size, size + 1)
    following = records[size].observed_at if len(records) > size else None
    graph = fragment_graph(kind, urls, settings, start, page, following)
    member = traffic_member if kind.name == "traffic" else air_quality_member
    for record in records[:size]:
        add_member(graph, urls, member(graph, record))
    return revision, serialize(graph, media)


def _roadwork_fragment(
    conn: psycopg.Connection, request: Request, kind: Stream, tenant: str, urls: StreamUrls,
    start: datetime, page: int, media: str, settings: LdesSettings,
) -> Rendered:  # fmt: skip
    size = settings.page_size
    # One more than a page: the first version of the next page, if any, for the relation.
    shown = load_roadwork_versions(
        conn, tenant, start, start + settings.fragment, size + 1, (page - 1) * size
    )
    if page > 1 and not shown:
        raise not_found(f"the window has no page {page}")
    # Members never change (the table is append-only), so their IRIs identify a page's
    # content: a page keeps its ETag once full and linked, whatever is added after it.
    stamps = [str(roadwork_version_iri(v.entity_id, v.version_at)) for v in shown]
    newest = max((version.version_at for version in shown), default=None)
    revision = Revision("|".join([str(urls.fragment(start, page)), media, *stamps]), newest)
    if _matches(request, revision):
        return revision, None
    following = shown[size].version_at if len(shown) > size else None
    graph: Graph = fragment_graph(kind, urls, settings, start, page, following)
    for version in shown[:size]:
        add_member(graph, urls, roadwork_member(graph, version))
    return revision, serialize(graph, media)


@router.get(
    DEFAULT + "/{stream}/fragments/{window}",
    summary="The members of one time window (a page)",
    responses=LDES_ANSWERS,
)
@router.get(
    TENANT + "/{stream}/fragments/{window}",
    summary="A page of one time window of a tenant",
    responses=LDES_ANSWERS,
)
async def fragment(
    request: Request, stream: str, window: str, page: Page = 1, tenant: str = ""
) -> Response:
    """One page of a window: its members and the relation to the next page."""
    await _authorize(request, tenant)
    kind, media, settings = _stream(stream), _media_type(request), _settings(request)
    urls = _urls(request, settings, tenant, stream)
    now = datetime.now(UTC)
    start = _window(window, now, settings)
    build = _observation_fragment if kind.observations else _roadwork_fragment

    def work(conn: psycopg.Connection) -> Rendered:
        return build(conn, request, kind, tenant, urls, start, page, media, settings)

    return await _render(
        request, media, cache_control(is_closed(start, now, settings), settings), work
    )
