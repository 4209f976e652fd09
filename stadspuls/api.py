"""The FastAPI application of `stadspuls api`: pool, @context resolver, routers, errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts import routes as alert_routes
from feeds import routes_datex, routes_feeds, routes_ldes
from ingest.runtime import tune_garbage_collector
from ngsi.access import AccessControl
from ngsi.context import ContextResolver
from ngsi.errors import ErrorType, NgsiError
from ngsi.routers import (
    attributes,
    batch,
    contexts,
    discovery,
    entities,
    iot,
    query_operation,
    subscriptions,
    temporal,
)
from storage.context_store import hosted_loader
from storage.geosql import postgis_available_async

from .settings import Settings

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/json"


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # orjson parses the entity documents several times faster than the json module.
    set_json_loads(orjson.loads, conn)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the connection pool and learn what the database offers; close on shutdown."""
    settings: Settings = app.state.settings
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.api_pool_size,
        # JIT off: the planner overestimates statements such as lastN over many series and
        # spends ~0.9 s compiling a statement that runs in 18 ms (bench/README.md).
        kwargs={"autocommit": True, "options": "-c jit=off"},
        configure=_configure,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    app.state.pool = pool
    async with pool.connection() as conn:
        app.state.postgis = await postgis_available_async(conn)
    try:
        yield
    finally:
        await pool.close()


def problem_response(error: NgsiError) -> Response:
    """A ProblemDetails response for an NgsiError."""
    return Response(
        orjson.dumps(error.problem()), error.status, error.headers, media_type=PROBLEM_JSON
    )


def _validation_detail(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request parameters"


def install_error_handlers(app: FastAPI) -> None:
    """Every failure becomes ProblemDetails; an unexpected one is logged and is a 500."""

    @app.exception_handler(NgsiError)
    async def ngsi_error(request: Request, error: NgsiError) -> Response:
        return problem_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        return problem_response(NgsiError(ErrorType.BAD_REQUEST_DATA, _validation_detail(error)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        kinds = {404: ErrorType.RESOURCE_NOT_FOUND, 405: ErrorType.METHOD_NOT_ALLOWED}
        kind = kinds.get(error.status_code, ErrorType.INVALID_REQUEST)
        detail = {
            404: f"no such resource: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(error.status_code, str(error.detail))
        return problem_response(NgsiError(kind, detail, status=error.status_code))

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, error: psycopg.OperationalError) -> Response:
        log.warning("database unavailable: %s", error)
        return problem_response(
            NgsiError(ErrorType.INTERNAL_ERROR, "the database is unavailable", status=503)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            NgsiError(ErrorType.INTERNAL_ERROR, f"internal error ({type(error).__name__})")
        )


def _without_validation_responses(app: FastAPI) -> None:
    """Drop FastAPI's generated 422 answers from the OpenAPI document: this API answers
    invalid parameters with 400 BadRequestData (the exception handler above)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


class StripTrailingSlash:
    """`/entities/` is `/entities`: NGSI-LD clients differ here, and a redirect would cost
    every such request a second round trip (and point at http:// behind a TLS proxy)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The NGSI-LD API application."""
    settings = settings or Settings()
    app = FastAPI(
        title="Stadspuls NGSI-LD API",
        version="1.8",
        description=(
            "ETSI GS CIM 009 (NGSI-LD) context API over the city's sensor data. "
            "Errors are ProblemDetails with the ETSI error types."
        ),
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.contexts = ContextResolver(
        fetch_timeout=settings.context_fetch_timeout, hosted=hosted_loader(app.state)
    )
    app.state.known_tenants = {""}
    app.state.access = AccessControl(settings)
    install_error_handlers(app)
    app.add_middleware(StripTrailingSlash)
    _without_validation_responses(app)
    app.include_router(entities.router)
    app.include_router(attributes.router)
    app.include_router(contexts.router)
    app.include_router(discovery.router)
    app.include_router(batch.router)
    app.include_router(query_operation.router)
    app.include_router(temporal.router)
    app.include_router(subscriptions.router)
    app.include_router(iot.router)
    app.include_router(alert_routes.router)
    app.include_router(routes_datex.router)
    app.include_router(routes_feeds.router)
    app.include_router(routes_ldes.router)
    return app


def create_served_app() -> FastAPI:
    """The application as `stadspuls api` serves it, in each uvicorn worker process: the
    garbage collector tuned as ingest's (ingest/runtime.py) once the application is built.
    An answer of 1,000 entities makes some 100,000 short-lived lists and tuples, and the
    default thresholds walked them with everything start-up allocated: a fifth of the time
    of `bench.temporal` query (b), in-process."""
    app = create_app()
    tune_garbage_collector()
    return app
