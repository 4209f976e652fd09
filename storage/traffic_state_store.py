"""Reading the latest traffic state (feeds/traffic_state.py) from the entities table.

The entities table holds each entity's latest state with expanded attribute names; this
module turns the TrafficFlowObserved entities back into short names, and reads the
RoadSegment and Device entities they point at for the sites' names and locations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from feeds.traffic_state import (
    DEFAULT_THRESHOLDS,
    TRAFFIC_FLOW_TYPE,
    CongestionThresholds,
    Place,
    SiteState,
    place_references,
    traffic_state,
)
from ngsi.vocabulary import IngestVocabulary

#: The TrafficFlowObserved attributes the traffic state reads.
FLOW_ATTRIBUTES = (
    "name", "location", "intensity", "averageVehicleSpeed", "occupancy", "v85", "vehicleType",
    "laneId", "dateObservedFrom", "dateObservedTo", "refTrafficFlowObserved", "refRoadSegment",
    "refDevice",
)  # fmt: skip
#: Entity types whose changes change the traffic state (ETag of the traffic feeds).
STATE_TYPES = (TRAFFIC_FLOW_TYPE, "RoadSegment")
PLACE_TYPES = ("RoadSegment", "Device")

_FLOWS = """
SELECT id, entity, modified_at FROM entities
WHERE tenant = %(tenant)s AND (type = %(type)s OR %(type)s = ANY(extra_types))
ORDER BY id
"""

_PLACES = """
SELECT id, type, entity FROM entities WHERE tenant = %(tenant)s AND id = ANY(%(ids)s)
"""

_REVISION = """
SELECT count(*), max(modified_at) FROM entities
WHERE tenant = %(tenant)s AND (type = ANY(%(types)s) OR extra_types && %(types)s)
"""


def _short(document: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in (document or {}).items() if key in names}


def _place(document: dict[str, Any], names: dict[str, str]) -> Place:
    short = _short(document, names)
    name = short.get("name")
    location = short.get("location")
    return Place(
        name=name.get("value") if isinstance(name, dict) else None,
        location=location.get("value") if isinstance(location, dict) else None,
    )


def load_places(conn: psycopg.Connection, tenant: str, ids: set[str]) -> dict[str, Place]:
    """Name and location of the RoadSegment and Device entities among `ids`."""
    if not ids:
        return {}
    vocabulary = IngestVocabulary()
    names_of_type = {
        vocabulary.entity_type(kind): {
            vocabulary.attribute(kind, "name"): "name",
            vocabulary.attribute(kind, "location"): "location",
        }
        for kind in PLACE_TYPES
    }
    rows = conn.execute(_PLACES, {"tenant": tenant, "ids": sorted(ids)}).fetchall()
    return {
        entity_id: _place(document, names_of_type[entity_type])
        for entity_id, entity_type, document in rows
        if entity_type in names_of_type
    }


def load_traffic_state(
    conn: psycopg.Connection,
    tenant: str,
    thresholds: CongestionThresholds = DEFAULT_THRESHOLDS,
) -> list[SiteState]:
    """The latest traffic state of every measurement site of a tenant, by site id."""
    vocabulary = IngestVocabulary()
    names = {vocabulary.attribute(TRAFFIC_FLOW_TYPE, n): n for n in FLOW_ATTRIBUTES}
    rows = conn.execute(
        _FLOWS, {"tenant": tenant, "type": vocabulary.entity_type(TRAFFIC_FLOW_TYPE)}
    ).fetchall()
    entities = [
        ({"id": entity_id, **_short(document, names)}, at) for entity_id, document, at in rows
    ]
    places = load_places(conn, tenant, place_references(entity for entity, _ in entities))
    return traffic_state(entities, places, thresholds)


def traffic_state_revision(conn: psycopg.Connection, tenant: str) -> tuple[int, datetime | None]:
    """How many flow and road-segment entities a tenant has and when one last changed."""
    vocabulary = IngestVocabulary()
    types = [vocabulary.entity_type(kind) for kind in STATE_TYPES]
    row = conn.execute(_REVISION, {"tenant": tenant, "types": types}).fetchone()
    assert row is not None
    return int(row[0]), row[1]
