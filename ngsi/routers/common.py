"""What every NGSI-LD route shares: tenant, @context, body and content negotiation.

The rules are those of ETSI GS CIM 009, 6.3: a JSON body's @context comes from the Link
header, a JSON-LD body carries its own and must not also have a Link header (6.3.5); the
response is JSON with a Link header, JSON-LD with @context in the body, or GeoJSON (6.3.6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import Request, Response

from ngsi.context import ActiveContext, ContextResolver
from ngsi.entity_output import FORMATS, Representation
from ngsi.errors import ErrorType, NgsiError, bad_request, invalid_request
from storage.entity_store import EntityStore

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
TENANT_HEADER = "NGSILD-Tenant"
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def tenant_of(request: Request) -> str:
    """The tenant of the request ("" for the default tenant)."""
    tenant = request.headers.get(TENANT_HEADER, "")
    if len(tenant) > 128 or any(c.isspace() for c in tenant):
        raise bad_request(f"{TENANT_HEADER} must be a name without spaces, not {tenant!r}")
    return tenant


async def require_tenant(request: Request, store: EntityStore) -> str:
    """The request's tenant, which must exist (NonexistentTenant otherwise, 6.3.14)."""
    tenant = tenant_of(request)
    known: set[str] = request.app.state.known_tenants
    if tenant and tenant not in known:
        if not await store.tenant_exists(tenant):
            raise NgsiError(ErrorType.NONEXISTENT_TENANT, f"tenant {tenant!r} does not exist")
        known.add(tenant)
    return tenant


def link_context_url(request: Request) -> str | None:
    """The @context URL of the request's Link header, if any."""
    values = request.headers.getlist("link")
    urls = []
    for value in values:
        for match in _LINK.finditer(value):
            parameters = match.group(2)
            if CONTEXT_REL in parameters:
                urls.append(match.group(1).strip())
    if len(urls) > 1:
        raise bad_request("more than one JSON-LD @context Link header")
    return urls[0] if urls else None


def resolver(request: Request) -> ContextResolver:
    """The app's context resolver."""
    found: ContextResolver = request.app.state.contexts
    return found


async def link_context(request: Request) -> ActiveContext:
    """The active context of a request without a body (from its Link header)."""
    url = link_context_url(request)
    return await resolver(request).resolve(url)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, *, merge_patch: bool = False) -> tuple[Any, ActiveContext]:
    """The parsed JSON body and its active context, per the rules of 6.3.5."""
    media_type = _media_type(request.headers.get("content-type"))
    allowed = (JSON, JSON_LD, MERGE_PATCH) if merge_patch else (JSON, JSON_LD)
    if media_type not in allowed:
        raise NgsiError(
            ErrorType.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or '(none)'!r} is not supported; use {' or '.join(allowed)}",
        )
    limit: int = request.app.state.settings.api_max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    raw = await request.body()
    if len(raw) > limit:
        raise _too_large(limit)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise invalid_request(f"the body is not valid JSON: {error}") from None
    link = link_context_url(request)
    documents = body if isinstance(body, list) else [body]
    carried = [d.get("@context") for d in documents if isinstance(d, dict) and "@context" in d]
    if media_type == JSON_LD:
        if link is not None:
            raise bad_request("a JSON-LD body carries its @context; it must not have a Link one")
        if len(carried) != len(documents):
            raise bad_request("a JSON-LD (application/ld+json) body must carry an @context")
        local = carried[0] if carried else None
    else:
        if carried:
            raise bad_request(
                "a JSON body must not carry an @context: send it in a Link header, "
                "or send the body as application/ld+json"
            )
        local = link
    return body, await resolver(request).resolve(local)


def _too_large(limit: int) -> NgsiError:
    return NgsiError(ErrorType.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")


def response_type(request: Request, *, geo: bool = False) -> str:
    """The media type to answer with, from the Accept header (6.3.6)."""
    accept = request.headers.get("accept", "")
    if not accept:
        return JSON
    offered = (JSON, JSON_LD, GEO_JSON) if geo else (JSON, JSON_LD)
    best: tuple[float, str] | None = None
    for part in accept.split(","):
        pieces = part.split(";")
        media_type = pieces[0].strip().lower()
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        candidates = [media_type] if media_type in offered else []
        if media_type in ("*/*", "application/*"):
            candidates = [JSON]
        for candidate in candidates:
            if quality > 0 and (best is None or quality > best[0]):
                best = (quality, candidate)
    if best is None:
        raise NgsiError(
            ErrorType.NOT_ACCEPTABLE,
            f"cannot answer in {accept!r}; this resource offers {', '.join(offered)}",
        )
    return best[1]


def context_value(context: ActiveContext) -> Any:
    """The @context to place in a JSON-LD body."""
    return context.source if context.source is not None else context.link_url


def json_response(
    payload: Any,
    request: Request,
    context: ActiveContext,
    *,
    media_type: str = JSON,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Serialize an answer: JSON-LD gets @context in each object, JSON a Link header."""
    headers = dict(headers or {})
    if media_type == JSON_LD:
        value = context_value(context)
        if isinstance(payload, list):
            payload = [_with_context(item, value) for item in payload]
        elif isinstance(payload, dict):
            payload = _with_context(payload, value)
    else:
        headers["Link"] = f'<{context.link_url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'
    return Response(orjson.dumps(payload), status, headers, media_type)


def _with_context(item: Any, context: Any) -> Any:
    return {**item, "@context": context} if isinstance(item, dict) else item


def split_list(value: str | None) -> list[str]:
    """A comma-separated parameter as a list (empty items dropped)."""
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def representation(
    context: ActiveContext,
    *,
    options: str | None,
    format: str | None,
    attrs: str | None,
    pick: str | None,
    omit: str | None,
    lang: str | None,
    geometry_property: str | None = None,
) -> Representation:
    """The representation asked for by `options`, `format`, `attrs`, `pick`, `omit`, `lang`."""
    chosen = split_list(options)
    unknown = set(chosen) - {"keyValues", "simplified", "concise", "normalized", "sysAttrs"}
    unknown -= {"noOverwrite", "update", "replace"}
    if unknown:
        raise bad_request(f"unknown options {sorted(unknown)}")
    formats = {("keyValues" if o == "simplified" else o) for o in chosen if o != "sysAttrs"}
    formats &= set(FORMATS)
    if format is not None:
        wanted = "keyValues" if format == "simplified" else format
        if wanted not in FORMATS:
            raise bad_request("format must be one of normalized, concise, keyValues, simplified")
        formats = {wanted}
    if len(formats) > 1:
        raise bad_request(f"options ask for several formats at once: {sorted(formats)}")
    if pick is not None and omit is not None:
        raise bad_request("pick and omit cannot be used together")
    expand = context.expand
    return Representation(
        format=formats.pop() if formats else "normalized",
        sys_attrs="sysAttrs" in chosen,
        lang=lang,
        attributes=frozenset(expand(a) for a in split_list(attrs)) if attrs else None,
        pick=_members(split_list(pick), expand) if pick is not None else None,
        omit=_members(split_list(omit), expand) if omit is not None else frozenset(),
        geometry_property=expand(geometry_property or "location"),
    )


def _members(names: Iterable[str], expand: Any) -> frozenset[str]:
    """`pick`/`omit` names: entity members as they are, attributes expanded."""
    return frozenset(n if n in ("id", "type", "scope") else expand(n) for n in names)
