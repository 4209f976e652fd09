"""GET `/feeds/wzdx`, `/feeds/waze` and `/catalog`, per NGSILD-Tenant tenant.

Each answer carries ETag, Last-Modified and Cache-Control (feeds/http.py) and a request whose
validators match gets 304 without the feed being rendered. The roadwork store is synchronous
(the CLI and the push share it): the routes run it in a worker thread.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from fastapi import APIRouter, Depends, Request, Response

from ngsi.access import read_access
from ngsi.errors import ErrorType, NgsiError
from ngsi.routers.common import TENANT_HEADER, tenant_of
from ngsi.routers.iot_common import with_connection
from ngsi.routers.openapi import errors, success
from storage.feed_store import type_summaries
from storage.roadwork_store import load_roadworks, roadworks_revision
from storage.traffic_state_store import load_traffic_state, traffic_state_revision

from .dcat import catalog_graph
from .http import Revision, cached_answer
from .publication import Publication, publication_from_settings
from .rdf_formats import OFFERED, negotiate, serialize
from .traffic_geojson import traffic_state_collection
from .waze import waze_feed
from .wzdx import feed_update_date, wzdx_feed

router = APIRouter(tags=["feeds"])
Reader = Depends(read_access)
GEO_JSON = "application/geo+json"
JSON = "application/json"
#: Seconds a client or cache may reuse a feed answer without asking again.
FEED_MAX_AGE = 60
CATALOG_MAX_AGE = 300
#: The same URL answers each tenant differently.
VARY_TENANT = {"Vary": TENANT_HEADER}
#: The compact JSON-LD @context of the catalogue.
CATALOG_CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dcterms": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def publication_of(request: Request) -> Publication:
    """The app's feed publication (Settings)."""
    return publication_from_settings(request.app.state.settings)


def base_url_of(request: Request, publication: Publication) -> str:
    """The public base URL: the configured one, else the one the request came in on."""
    return (publication.base_url or str(request.base_url)).rstrip("/")


async def _serve_roadwork_feed(request: Request, kind: str) -> Response:
    tenant = tenant_of(request)
    publication = publication_of(request)

    def work(conn: psycopg.Connection) -> Response:
        count, modified = roadworks_revision(conn, tenant)
        revision = Revision(f"{kind}|{tenant}|{count}|{modified}|{publication.key}", modified)

        def render() -> tuple[bytes, str]:
            roadworks = load_roadworks(conn, tenant)
            if kind == "wzdx":
                update_date = modified or feed_update_date(roadworks, datetime.now(UTC))
                return orjson.dumps(wzdx_feed(roadworks, publication, update_date)), GEO_JSON
            return orjson.dumps(waze_feed(roadworks)), JSON

        return cached_answer(request, revision, FEED_MAX_AGE, render, VARY_TENANT)

    return await with_connection(request, work)


#: Seconds a client may reuse the traffic state (it changes with every reading).
TRAFFIC_MAX_AGE = 30

FEED_ANSWERS: dict[int | str, dict[str, Any]] = {
    **success(200, "The feed"),
    304: {"description": "Not Modified (If-None-Match / If-Modified-Since)"},
    **errors(400, 401, 403, 406),
}


@router.get(
    "/feeds/wzdx",
    summary="Roadworks as a WZDx 4.2 WorkZoneFeed",
    dependencies=[Reader],
    responses=FEED_ANSWERS,
)
async def wzdx(request: Request) -> Response:
    """The tenant's roadworks as WZDx 4.2 (GeoJSON); docs/feeds-wzdx-waze-dcat.md."""
    return await _serve_roadwork_feed(request, "wzdx")


@router.get(
    "/feeds/waze",
    summary="Road closures as a Waze CIFS feed",
    dependencies=[Reader],
    responses=FEED_ANSWERS,
)
async def waze(request: Request) -> Response:
    """The tenant's road closures as Waze CIFS JSON; docs/feeds-wzdx-waze-dcat.md."""
    return await _serve_roadwork_feed(request, "waze")


@router.get(
    "/feeds/traffic-state",
    summary="The latest traffic state per measurement site, with its congestion level",
    dependencies=[Reader],
    responses=FEED_ANSWERS,
)
async def traffic_state(request: Request) -> Response:
    """GeoJSON: per site the latest flow, speed, occupancy and congestion level."""
    tenant = tenant_of(request)

    def work(conn: psycopg.Connection) -> Response:
        count, modified_at = traffic_state_revision(conn, tenant)
        stamp = modified_at.isoformat() if modified_at else "-"
        revision = Revision(f"traffic-state:{tenant}:{count}:{stamp}", modified_at)

        def render() -> tuple[bytes, str]:
            sites = load_traffic_state(conn, tenant)
            return orjson.dumps(traffic_state_collection(sites)), GEO_JSON

        return cached_answer(request, revision, TRAFFIC_MAX_AGE, render, VARY_TENANT)

    return await with_connection(request, work)


@router.get(
    "/catalog",
    summary="The DCAT-AP catalogue of datasets and feeds",
    dependencies=[Reader],
    responses=FEED_ANSWERS,
)
async def catalog(request: Request) -> Response:
    """DCAT-AP as JSON-LD (default), Turtle, N-Quads or RDF/XML, by Accept."""
    rdf_format = negotiate(request.headers.get("accept"))
    if rdf_format is None:
        raise NgsiError(
            ErrorType.NOT_ACCEPTABLE, f"the catalogue is available as {OFFERED}; not as requested"
        )
    tenant = tenant_of(request)
    publication = publication_of(request)
    base_url = base_url_of(request, publication)
    types = await with_connection(request, lambda conn: type_summaries(conn, tenant))
    graph = catalog_graph(publication, base_url, types, tenant)
    body = serialize(graph, rdf_format, CATALOG_CONTEXT)
    modified = max((t.modified_at for t in types if t.modified_at is not None), default=None)
    # The catalogue is small: its ETag is the hash of the document itself.
    revision = Revision(rdf_format.media_type + hashlib.sha256(body).hexdigest(), modified)
    vary = {"Vary": "Accept, " + TENANT_HEADER}
    return cached_answer(
        request, revision, CATALOG_MAX_AGE, lambda: (body, rdf_format.media_type), vary
    )
