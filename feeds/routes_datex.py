"""DATEX II v3.1 feeds over HTTP, per NGSILD-Tenant tenant (docs/feeds-datex2.md).

GET /feeds/datex2/situations, /feeds/datex2/measured-data and /feeds/datex2/measurement-sites
answer application/xml with ETag, Last-Modified and Cache-Control, and 304 Not Modified on a
matching If-None-Match or If-Modified-Since (feeds/http.py). A traffic feed with no site to
publish is 404 ResourceNotFound: DATEX II has no empty MeasuredDataPublication.
"""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Request, Response

from feeds.datex2 import MEDIA_TYPE
from feeds.datex2_export import FEEDS, DatexFeed, EmptyPublication
from feeds.http import cached_answer
from ngsi.access import read_access
from ngsi.errors import ErrorType, NgsiError
from ngsi.routers.common import tenant_of
from ngsi.routers.iot_common import with_connection
from ngsi.routers.openapi import errors

router = APIRouter(prefix="/feeds/datex2", tags=["feeds"])
Reader = Depends(read_access)
#: Seconds a client or cache may reuse an answer: roadworks change rarely, traffic each minute.
MAX_AGE = {"situations": 300, "measured-data": 60, "measurement-sites": 300}


async def _answer(request: Request, feed: DatexFeed) -> Response:
    tenant = tenant_of(request)
    max_age = MAX_AGE[feed.name]

    def work(conn: psycopg.Connection) -> Response:
        revision = feed.revision(conn, tenant)

        def render() -> tuple[bytes, str]:
            try:
                return feed.document(conn, tenant, revision), MEDIA_TYPE
            except EmptyPublication as error:
                raise NgsiError(ErrorType.RESOURCE_NOT_FOUND, str(error)) from None

        return cached_answer(request, revision, max_age, render)

    return await with_connection(request, work)


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": "The DATEX II d2:payload document."},
    304: {"description": "Not Modified: the client's copy is current."},
    **errors(400, 401, 403, 404),
}


@router.get(
    "/situations",
    summary="DATEX II SituationPublication of the roadworks and closures",
    dependencies=[Reader],
    responses=_RESPONSES,
)
async def situations(request: Request) -> Response:
    """Roadworks as MaintenanceWorks, closures as RoadOrCarriagewayOrLaneManagement."""
    return await _answer(request, FEEDS["situations"])


@router.get(
    "/measured-data",
    summary="DATEX II MeasuredDataPublication of the latest traffic state",
    dependencies=[Reader],
    responses=_RESPONSES,
)
async def measured_data(request: Request) -> Response:
    """Flow, speed, occupancy and traffic status per measurement site."""
    return await _answer(request, FEEDS["measured-data"])


@router.get(
    "/measurement-sites",
    summary="DATEX II MeasurementSiteTablePublication of the traffic sites",
    dependencies=[Reader],
    responses=_RESPONSES,
)
async def measurement_sites(request: Request) -> Response:
    """The measurement sites with their location and measured quantities."""
    return await _answer(request, FEEDS["measurement-sites"])
