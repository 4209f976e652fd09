"""Roadworks as a WZDx 4.2 WorkZoneFeed (GeoJSON), https://github.com/usdot-jpo-ode/wzdx (v4.2).

Pure: roadworks (feeds/roadworks.py) in, the feed document out. Choices where WZDx asks for
something a CityWork does not say (docs/feeds-wzdx-waze-dcat.md lists them):

- Cancelled and closed (finished) roadworks are left out: WZDx 4.2 deprecated `event_status`,
  a consumer drops an event that is no longer in the feed.
- `end_date` is required. An open-ended roadwork gets `OPEN_END` after the later of its start
  and the feed's `update_date`, with `is_end_date_verified` false (the end is an estimate).
  `is_start_date_verified` is true only for a roadwork in progress (workState `open`).
- `road_names`: the roadwork's name (CityWork has no road name), "unknown" without one;
  `direction`: "unknown" (a CityWork has no direction of travel).
- `vehicle_impact`: all-lanes-closed for a closure, alternating-one-way with alternating
  lights, all-lanes-open when nothing is closed, else some-lanes-closed.
- Geometry: LineString for a path, MultiPoint (start, end) otherwise; a zone of several
  parts (MultiPolygon, ...) becomes one road event per part, ids `<id>#<n>`, linked by
  `related_road_events` (feeds/feed_geometry.py).
- `location_method` "unknown" and the position flags false: nothing says how the zone was
  measured.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .feed_geometry import GeometryPart, geometry_parts
from .publication import CC_ZERO, Publication
from .roadworks import Roadwork

WZDX_VERSION = "4.2"
#: How far past the later of its start and the feed's date an open-ended roadwork is said to end.
OPEN_END = timedelta(days=365)
#: Roadwork states that are no road event any more.
FINISHED_STATES = frozenset({"cancelled", "closed"})
#: Namespace of the data source ids (UUIDs, as WZDx recommends, stable per source).
_SOURCE_NAMESPACE = uuid.UUID("5d6a3c52-0f0b-4a57-9d8e-2f3c1b7e9a10")
#: Smart Data Models workNature values with a WZDx WorkTypeName.
WORK_TYPES = {
    "tarring": "surface-work",
    "resurfacing": "surface-work",
    "trenchOpening": "below-road-work",
    "landFill": "below-road-work",
    "sewerWorks": "below-road-work",
    "repair": "minor-road-defect-repair",
    "maintenance": "maintenance",
    "painting": "painting",
    "roadMarking": "painting",
    "barrierWork": "barrier-work",
    "overheadWork": "overhead-work",
}


@dataclass(frozen=True, slots=True)
class DataSource:
    """Where a roadwork came from: a WZDx FeedDataSource."""

    id: str
    organization_name: str


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; a moment without a zone is taken to be UTC (as NGSI-LD stores it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def wzdx_time(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds and `Z`, as the WZDx examples write it."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def data_source(roadwork: Roadwork, publication: Publication) -> DataSource:
    """The data source of a roadwork: the host of its `source` URL, else the publisher (the
    roadwork was entered through the NGSI-LD API)."""
    host = urlsplit(roadwork.source or "").hostname
    if not host:
        name = publication.publisher
    elif "gipod" in host:
        name = f"GIPOD ({host})"
    else:
        name = host
    return DataSource(str(uuid.uuid5(_SOURCE_NAMESPACE, name)), name)


def is_reported(roadwork: Roadwork) -> bool:
    """Whether a roadwork belongs in the road-event feeds (not cancelled or finished)."""
    return roadwork.state not in FINISHED_STATES


def vehicle_impact(roadwork: Roadwork) -> str:
    """The WZDx VehicleImpact of a roadwork."""
    if roadwork.is_closure:
        return "all-lanes-closed"
    dispositions = {item.get("disposition") for item in roadwork.dispositions}
    if "alternatingLights" in dispositions:
        return "alternating-one-way"
    if roadwork.closure == "none" and not roadwork.lanes_closed:
        return "all-lanes-open"
    return "some-lanes-closed"


def end_date(roadwork: Roadwork, update_date: datetime) -> datetime:
    """The roadwork's end, or for an open-ended one an estimate (OPEN_END) past the later of
    its start and the feed's date."""
    if roadwork.end is not None:
        return roadwork.end
    return max(as_utc(roadwork.start), as_utc(update_date)) + OPEN_END


def _road_names(roadwork: Roadwork) -> list[str]:
    name = roadwork.name.strip()
    # roadwork_from_entity falls back on the entity id: that is no road name.
    return [name] if name and name != roadwork.id else ["unknown"]


def _types_of_work(roadwork: Roadwork) -> list[dict[str, Any]]:
    names = dict.fromkeys(WORK_TYPES[n] for n in roadwork.work_nature if n in WORK_TYPES)
    return [{"type_name": name} for name in names]


def _geometry(part: GeometryPart) -> dict[str, Any]:
    kind = "LineString" if part.is_path else "MultiPoint"
    return {"type": kind, "coordinates": [list(position) for position in part.positions]}


def _properties(
    roadwork: Roadwork, source: DataSource, update_date: datetime, related: Sequence[str]
) -> dict[str, Any]:
    core: dict[str, Any] = {
        "data_source_id": source.id,
        "event_type": "work-zone",
        "road_names": _road_names(roadwork),
        "direction": "unknown",
        "name": roadwork.name,
    }
    if roadwork.description:
        core["description"] = roadwork.description
    changed = roadwork.modified_at or roadwork.last_reported
    if changed is not None:
        core["update_date"] = wzdx_time(changed)
    if related:
        core["related_road_events"] = [{"type": "related-work-zone", "id": i} for i in related]
    properties: dict[str, Any] = {
        "core_details": core,
        "start_date": wzdx_time(roadwork.start),
        "end_date": wzdx_time(end_date(roadwork, update_date)),
        "is_start_date_verified": roadwork.state == "open",
        "is_end_date_verified": False,
        "is_start_position_verified": False,
        "is_end_position_verified": False,
        "location_method": "unknown",
        "vehicle_impact": vehicle_impact(roadwork),
    }
    if types := _types_of_work(roadwork):
        properties["types_of_work"] = types
    return properties


def road_event_features(
    roadwork: Roadwork, source: DataSource, update_date: datetime
) -> list[dict[str, Any]]:
    """The RoadEventFeatures of one roadwork: one per part of its geometry ([] without any)."""
    parts = geometry_parts(roadwork.geometry)
    if len(parts) == 1:
        ids = [roadwork.id]
    else:
        ids = [f"{roadwork.id}#{number}" for number in range(1, len(parts) + 1)]
    return [
        {
            "id": feature_id,
            "type": "Feature",
            "properties": _properties(
                roadwork, source, update_date, [other for other in ids if other != feature_id]
            ),
            "geometry": _geometry(part),
        }
        for feature_id, part in zip(ids, parts, strict=True)
    ]


def feed_update_date(roadworks: Iterable[Roadwork], now: datetime) -> datetime:
    """When the feed's content last changed: the newest roadwork modification, else `now`.

    Tying update_date to the content keeps the document identical for one ETag.
    """
    moments = [r.modified_at for r in roadworks if r.modified_at is not None]
    return max(moments) if moments else now


def wzdx_feed(
    roadworks: Iterable[Roadwork], publication: Publication, update_date: datetime
) -> dict[str, Any]:
    """The WZDx 4.2 WorkZoneFeed of the roadworks still to be reported."""
    features: list[dict[str, Any]] = []
    sources: dict[str, DataSource] = {}
    for roadwork in roadworks:
        if not is_reported(roadwork):
            continue
        source = data_source(roadwork, publication)
        made = road_event_features(roadwork, source, update_date)
        if made:
            sources.setdefault(source.id, source)
            features.extend(made)
    if not sources:  # WZDx requires at least one data source, even for an empty feed
        own = data_source(Roadwork("", "", {}, update_date), publication)
        sources[own.id] = own
    feed_info: dict[str, Any] = {
        "publisher": publication.publisher,
        "version": WZDX_VERSION,
        "update_date": wzdx_time(update_date),
        "data_sources": [
            {"data_source_id": s.id, "organization_name": s.organization_name}
            for s in sources.values()
        ],
    }
    if publication.contact_email:
        feed_info["contact_email"] = publication.contact_email
    if publication.license == CC_ZERO:  # WZDx allows no other value in `license`
        feed_info["license"] = CC_ZERO
    return {"feed_info": feed_info, "type": "FeatureCollection", "features": features}
