"""What the `/iot` routes share: the Fiware-Service tenant, admin access, bodies, errors, I/O.

Tenant: `Fiware-Service` names it (absent or empty: the default tenant ""); `NGSILD-Tenant`
is not read on these routes. `Fiware-ServicePath` is accepted and not kept (every device
of a service is in one path, reported as "/").

Errors are ProblemDetails (the project's rule) carrying, for the IoT Agent's clients, the
IoT Agent's own `name` and `message` members: `{"type": ".../AlreadyExists", ...,
"name": "DUPLICATE_DEVICE_ID", "message": "..."}`.

The registry and quarantine code is synchronous (the CLI and the ingest writer use it), so
the routes run it in a worker thread on a connection of their own: provisioning is rare,
and this keeps one implementation of every registry statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import psycopg
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from devices.iota_provisioning import ProvisioningError
from ngsi.access import Principal, Role, access_control
from ngsi.errors import ErrorType, NgsiError
from ngsi.routers.openapi import request_body
from storage.database import connect

SERVICE_HEADER = "Fiware-Service"
SERVICE_PATH_HEADER = "Fiware-ServicePath"
JSON = "application/json"
JSON_TYPES = (JSON, "application/ld+json")
OBJECT_BODY = request_body({"type": "object"})

Result = TypeVar("Result")


def service_of(request: Request) -> str:
    """The tenant a request's Fiware-Service header names ("" when absent or empty)."""
    service = request.headers.get(SERVICE_HEADER, "").strip()
    if len(service) > 128 or any(c.isspace() or c == "/" for c in service):
        raise iota_error(
            "BAD_REQUEST", f"{SERVICE_HEADER} must be a name without spaces, not {service!r}"
        )
    return service


async def iot_admin(request: Request) -> Principal:
    """Dependency: the caller holds admin on the Fiware-Service tenant."""
    tenant = service_of(request)
    if request.app.state.settings.auth_enabled:
        principal = await access_control(request.app).authorize(request, tenant, Role.ADMIN)
    else:
        principal = Principal("anonymous (access control off)", tenant, Role.ADMIN)
    request.state.principal = principal
    return principal


_KINDS = {
    "DUPLICATE_DEVICE_ID": ErrorType.ALREADY_EXISTS,
    "DUPLICATE_GROUP": ErrorType.ALREADY_EXISTS,
    "GROUP_IN_USE": ErrorType.ALREADY_EXISTS,
    "DEVICE_NOT_FOUND": ErrorType.RESOURCE_NOT_FOUND,
    "DEVICE_GROUP_NOT_FOUND": ErrorType.RESOURCE_NOT_FOUND,
    "QUARANTINE_NOT_FOUND": ErrorType.RESOURCE_NOT_FOUND,
}


def iota_error(name: str, message: str) -> NgsiError:
    """A ProblemDetails error that also carries the IoT Agent's `name` and `message`."""
    kind = _KINDS.get(name, ErrorType.BAD_REQUEST_DATA)
    # 409 for the IoT Agent's "already exists" names, whatever ErrorType's own status.
    status = 409 if kind is ErrorType.ALREADY_EXISTS else None
    return NgsiError(kind, message, status=status, extra={"name": name, "message": message})


def from_provisioning(error: ProvisioningError) -> NgsiError:
    """A conversion error of devices/iota_provisioning.py as an API error."""
    return iota_error(error.name, error.message)


async def read_json(request: Request) -> Any:
    """The parsed JSON body; WRONG_SYNTAX when it is not JSON, 415/413 as elsewhere."""
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise NgsiError(
            ErrorType.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or '(none)'!r} is not supported; use {JSON}",
        )
    limit: int = request.app.state.settings.api_max_body_bytes
    raw = await request.body()
    if len(raw) > limit:
        raise NgsiError(ErrorType.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise iota_error("WRONG_SYNTAX", f"the body is not valid JSON: {error}") from None


def json_response(document: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(orjson.dumps(document), status, media_type=JSON)


async def with_connection(request: Request, work: Callable[[psycopg.Connection], Result]) -> Result:
    """Run `work` on a fresh connection in a worker thread; committed when it returns."""
    url: str = request.app.state.settings.database_url

    def job() -> Result:
        with connect(url) as conn:
            return work(conn)

    return await run_in_threadpool(job)
