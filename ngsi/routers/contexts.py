"""`/ngsi-ld/v1/jsonldContexts`: add, list, serve, delete and reload @contexts (ETSI GS CIM 009,
5.13; HTTP binding 6.29 and 6.30).

Three kinds of stored @context are listed (5.13.1):
- Hosted: POSTed by clients, kept in the database (storage/context_store.py) and served at
  `/ngsi-ld/v1/jsonldContexts/{id}`; such a URL in a Link header is read from the database.
- Cached: fetched by the resolver for a request (ngsi/context.py). They live in the memory of
  one API process; they are not served, only their metadata (5.13.4.4), and their local id is
  their URL.
- ImplicitlyCreated: the bundled core context, under the id `ngsi-ld-core-context-v1.8` (or
  any core context URL). It cannot be deleted; `reload=true` is accepted and does nothing,
  since the bundled copy is canonical and never fetched.
@contexts are not per tenant: reads need read access, changes admin access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from ngsi.access import admin_access, read_access
from ngsi.context import CORE_CONTEXT_URL, CORE_CONTEXT_URLS, ContextResolver
from ngsi.entity_output import iso
from ngsi.errors import ErrorType, NgsiError, bad_request, invalid_request, not_found
from ngsi.routers.common import JSON, JSON_LD, resolver, response_type
from ngsi.routers.openapi import CONTEXT_DOCUMENT, READ_ANSWERS, errors, request_body, success
from storage.context_store import (
    CONTEXT_PATH,
    CORE_CONTEXT_ID,
    ContextLog,
    StoredContext,
    add_context,
    context_log,
    core_document,
    delete_context,
    get_context,
    hosted_id,
    hosted_loader,
    list_contexts,
)

router = APIRouter(prefix="/ngsi-ld/v1", tags=["@context"])
Reader = Depends(read_access)
Admin = Depends(admin_access)
HOSTED, CACHED, IMPLICIT = "Hosted", "Cached", "ImplicitlyCreated"
KINDS = (HOSTED, CACHED, IMPLICIT)


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """One stored @context as the list and details show it (5.13.3.5)."""

    url: str
    local_id: str
    kind: str
    created_at: datetime
    last_usage: datetime | None = None
    hits: int | None = None

    def details(self) -> dict[str, Any]:
        """The JSON object of `details=true`."""
        info: dict[str, Any] = {
            "URL": self.url,
            "localId": self.local_id,
            "kind": self.kind,
            "createdAt": iso(self.created_at),
        }
        if self.last_usage is not None:
            info["lastUsage"] = iso(self.last_usage)
        if self.hits is not None:
            info["numberOfHits"] = self.hits
        return info


def hosted_url(request: Request, context_id: str) -> str:
    """The URL at which this service serves a hosted context."""
    return str(request.base_url).rstrip("/") + CONTEXT_PATH + context_id


def _hosted_entry(request: Request, stored: StoredContext) -> ContextEntry:
    return ContextEntry(
        hosted_url(request, stored.id),
        stored.id,
        HOSTED,
        stored.created_at,
        stored.last_usage,
        stored.hits,
    )


def _core_entry(request: Request) -> ContextEntry:
    return ContextEntry(CORE_CONTEXT_URL, CORE_CONTEXT_ID, IMPLICIT, _log(request).started_at)


def _cached_entries(request: Request) -> list[ContextEntry]:
    fetched = _log(request).fetched
    now = datetime.now(UTC)
    return [
        ContextEntry(url, url, CACHED, fetched.get(url, now))
        for url in resolver(request).cached_urls
    ]


def _log(request: Request) -> ContextLog:
    return context_log(request.app.state)


def _answer(payload: Any, request: Request) -> Response:
    """A JSON answer (JSON-LD if asked for: a context document is JSON-LD), no Link header."""
    return Response(orjson.dumps(payload), media_type=response_type(request))


async def _read_context(request: Request) -> Any:
    """The @context member of the request body (5.13.2.3); the rest is discarded."""
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type not in (JSON, JSON_LD):
        raise NgsiError(
            ErrorType.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or '(none)'!r} is not supported; use {JSON} or {JSON_LD}",
        )
    limit: int = request.app.state.settings.api_max_body_bytes
    raw = await request.body()
    if len(raw) > limit:
        raise NgsiError(ErrorType.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise invalid_request(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict) or "@context" not in body:
        raise bad_request('the body must be a JSON object with an "@context" member')
    local = body["@context"]
    if not isinstance(local, dict | list | str) or local in ("", []):
        raise bad_request("@context must be an object, a URL or an array of them")
    return local


@router.post(
    "/jsonldContexts",
    status_code=201,
    dependencies=[Admin],
    summary="Add @context",
    openapi_extra=request_body(CONTEXT_DOCUMENT),
    responses={
        **success(201, "Stored; Location serves it"),
        **errors(400, 401, 403, 413, 415, 503),
    },
)
async def add(request: Request) -> Response:
    """Store a user @context as Hosted (5.13.2); 201 with its Location."""
    local = await _read_context(request)
    await resolver(request).resolve(local)  # an invalid @context is refused (5.5.4)
    async with request.app.state.pool.connection() as conn:
        context_id = await add_context(conn, {"@context": local})
    return Response(status_code=201, headers={"Location": CONTEXT_PATH + context_id})


@router.get(
    "/jsonldContexts",
    dependencies=[Reader],
    summary="List @contexts",
    responses=errors(400, 401, 403, 406),
)
async def list_all(request: Request, details: bool = False, kind: str | None = None) -> Response:
    """The stored @contexts (5.13.3): their URLs, or their metadata with `details=true`."""
    if kind is not None and kind not in KINDS:
        raise bad_request(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    entries = [_core_entry(request)]
    if kind in (None, HOSTED):
        async with request.app.state.pool.connection() as conn:
            entries += [_hosted_entry(request, stored) for stored in await list_contexts(conn)]
    entries += _cached_entries(request)
    chosen = [entry for entry in entries if kind is None or entry.kind == kind]
    return _answer([e.details() if details else e.url for e in chosen], request)


async def _find(request: Request, context_id: str) -> tuple[ContextEntry, dict[str, Any] | None]:
    """The stored @context a path names (local id, or URL), with its document if served."""
    if not context_id:
        raise bad_request("no @context identifier given")
    local_id = hosted_id(context_id) if "/" in context_id else context_id
    if local_id == CORE_CONTEXT_ID or context_id in CORE_CONTEXT_URLS:
        return _core_entry(request), core_document()
    if local_id is not None:
        async with request.app.state.pool.connection() as conn:
            stored = await get_context(conn, local_id)
        if stored is not None:
            return _hosted_entry(request, stored), stored.body
    for entry in _cached_entries(request):
        if entry.url == context_id:
            return entry, None
    raise not_found(f"no stored @context {context_id!r}")


@router.get(
    "/jsonldContexts/{context_id:path}",
    dependencies=[Reader],
    summary="Serve @context",
    responses={**success(200, "The @context document", CONTEXT_DOCUMENT), **READ_ANSWERS},
)
async def serve(request: Request, context_id: str, details: bool = False) -> Response:
    """A stored @context (5.13.4): its document, or its metadata with `details=true`."""
    entry, document = await _find(request, context_id)
    if details:
        return _answer(entry.details(), request)
    if entry.kind == CACHED:
        raise NgsiError(
            ErrorType.OPERATION_NOT_SUPPORTED,
            f"@context {entry.url} is Cached: only its metadata is served (details=true)",
        )
    return _answer(document, request)


@router.delete(
    "/jsonldContexts/{context_id:path}",
    status_code=204,
    dependencies=[Admin],
    summary="Delete and reload @context",
    responses=errors(400, 401, 403, 404, 503),
)
async def delete(request: Request, context_id: str, reload: bool = False) -> Response:
    """Delete a stored @context, or re-fetch a Cached one with `reload=true` (5.13.5)."""
    entry, _ = await _find(request, context_id)
    contexts = resolver(request)
    if entry.kind == IMPLICIT:
        if not reload:
            raise bad_request("the NGSI-LD core @context cannot be deleted")
    elif reload and entry.kind != CACHED:
        raise bad_request(
            f"only Cached @contexts can be reloaded; {entry.local_id} is {entry.kind}"
        )
    elif reload:
        await _reload(request, contexts, entry.url)
    elif entry.kind == HOSTED:
        async with request.app.state.pool.connection() as conn:
            await delete_context(conn, entry.local_id)
        contexts.forget(entry.url)  # drops the active contexts built on it
    else:
        contexts.forget(entry.url)
        _log(request).fetched.pop(entry.url, None)
    return Response(status_code=204)


async def _reload(request: Request, contexts: ContextResolver, url: str) -> None:
    """Fetch `url` again; the cached copy is replaced only once a valid new one arrived."""
    settings = request.app.state.settings
    probe = ContextResolver(
        fetch_timeout=settings.context_fetch_timeout, hosted=hosted_loader(request.app.state)
    )
    try:
        await probe.resolve(url)
    except NgsiError as error:
        raise NgsiError(
            ErrorType.LD_CONTEXT_NOT_AVAILABLE, f"@context {url} was not reloaded: {error.detail}"
        ) from error
    contexts.replace(url, await probe.document(url))  # the probe holds it: no second fetch
