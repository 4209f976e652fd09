"""Road closures as a Waze CIFS feed (JSON), https://developers.google.com/waze/data-feed/cifs-specification.

Pure. Only roadworks that close the road are in it (Waze: "Use a Road Closure only if the
incident you report entails a full closure of all the lanes"); cancelled and finished ones are
left out. Each incident: `id` (stable over the closure's life: the CityWork id, `#<n>` per
part of a multi-part zone), `type` ROAD_CLOSED, `subtype`, `polyline` ("lat lon" pairs,
space separated, WGS84), `street`, `starttime`/`endtime` (ISO 8601 with seconds and offset;
`endtime` is "requested", so an open-ended closure has none), `description`, `direction`
BOTH_DIRECTIONS (a CityWork has no direction of travel, and a closed road is closed both
ways) and `updatetime` when known.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .feed_geometry import geometry_parts
from .roadworks import Roadwork
from .wzdx import as_utc, is_reported

#: workNature values naming an event rather than construction (Waze subtype ROAD_CLOSED_EVENT).
EVENT_NATURES = frozenset({"event", "events", "manifestation", "evenement"})
HAZARD_NATURES = frozenset({"hazard", "emergencyWorks", "damage"})


def waze_time(moment: datetime) -> str:
    """yyyy-MM-dd'T'HH:mm:ss+HH:mm (CIFS), in UTC."""
    return as_utc(moment).replace(microsecond=0).isoformat()


def closure_subtype(roadwork: Roadwork) -> str:
    """The CIFS subtype of a closure: event, hazard or (by default) construction."""
    natures = set(roadwork.work_nature)
    if natures & EVENT_NATURES:
        return "ROAD_CLOSED_EVENT"
    if natures & HAZARD_NATURES:
        return "ROAD_CLOSED_HAZARD"
    return "ROAD_CLOSED_CONSTRUCTION"


def _street(roadwork: Roadwork) -> str:
    name = roadwork.name.strip()
    return name if name and name != roadwork.id else "unknown"


def closure_incidents(roadwork: Roadwork) -> list[dict[str, Any]]:
    """The incidents of one closure: one per part of its geometry."""
    parts = geometry_parts(roadwork.geometry)
    incidents = []
    for number, part in enumerate(parts, start=1):
        incident: dict[str, Any] = {
            "id": roadwork.id if len(parts) == 1 else f"{roadwork.id}#{number}",
            "type": "ROAD_CLOSED",
            "subtype": closure_subtype(roadwork),
            "polyline": " ".join(f"{lat} {lon}" for lon, lat in _distinct(part.positions)),
            "street": _street(roadwork),
            "starttime": waze_time(roadwork.start),
            "description": roadwork.description or roadwork.name,
            "direction": "BOTH_DIRECTIONS",
        }
        if roadwork.end is not None:
            incident["endtime"] = waze_time(roadwork.end)
        if roadwork.modified_at is not None:
            incident["updatetime"] = waze_time(roadwork.modified_at)
        incidents.append(incident)
    return incidents


def _distinct(positions: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
    """A single point is given once (the start and end of a point part coincide)."""
    return list(dict.fromkeys(positions)) if len(set(positions)) == 1 else list(positions)


def waze_feed(roadworks: Iterable[Roadwork]) -> dict[str, Any]:
    """The CIFS feed of the road closures among `roadworks`."""
    incidents = [
        incident
        for roadwork in roadworks
        if roadwork.is_closure and is_reported(roadwork)
        for incident in closure_incidents(roadwork)
    ]
    return {"incidents": incidents}
