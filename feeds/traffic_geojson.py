"""The traffic state as GeoJSON: one Feature per measurement site with its congestion level.

Pure. For route planners and maps that want the current state without DATEX II.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ngsi.mapping import format_datetime

from .traffic_state import SiteState


def _time(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment is not None else None


def traffic_state_collection(sites: list[SiteState]) -> dict[str, Any]:
    """A FeatureCollection of the sites that have a location (the others cannot be drawn)."""
    features = [
        {
            "type": "Feature",
            "id": site.site_id,
            "geometry": site.location,
            "properties": {
                "name": site.name,
                "observedAt": _time(site.observed_at),
                "intensity": site.intensity,
                "flowRate": site.flow_rate,
                "averageVehicleSpeed": site.average_speed,
                "occupancy": site.occupancy,
                "congestionLevel": site.congestion,
                "congested": site.congested,
                "laneId": site.lane,
                "refRoadSegment": site.road_segment,
            },
        }
        for site in sites
        if site.location is not None
    ]
    return {"type": "FeatureCollection", "features": features}
