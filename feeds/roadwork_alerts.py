"""The Smart Data Models `Alert` that a roadwork raises (category traffic, subCategory roadWorks).

Pure. One Alert per roadwork, its id derived from the CityWork's: raised while the roadwork
is planned or open, resolved (`alertState` resolved, `validTo` the moment it ended) once it
is closed or cancelled. Attribute names are short, for the Smart Data Models Alert @context;
`alertSource` is a Relationship to the CityWork, as the threshold alerts' is to their sensor
(alerts/alert_entities.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feeds.roadworks import Roadwork
from ngsi.mapping import format_datetime

ALERT_TYPE = "Alert"
#: Alert attributes a roadwork alert writes (the importer owns these and only these).
ALERT_ATTRIBUTES = (
    "name", "description", "category", "subCategory", "severity", "alertSource", "alertState",
    "validFrom", "validTo", "dateIssued", "location",
)  # fmt: skip
#: Severity by closure: a closed road is what a route planner must avoid.
SEVERITY_OF_CLOSURE = {"full": "high", "partial": "medium", "none": "low"}


def roadwork_alert_id(roadwork_id: str) -> str:
    """`urn:ngsi-ld:Alert:CityWork:gipod:1` for the CityWork `urn:ngsi-ld:CityWork:gipod:1`."""
    return "urn:ngsi-ld:Alert:" + roadwork_id.removeprefix("urn:ngsi-ld:")


def _date_time(moment: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": format_datetime(moment)}}


def is_active(roadwork: Roadwork) -> bool:
    """Whether the roadwork still raises its alert (planned or open)."""
    return roadwork.state in ("planned", "open")


def roadwork_alert(
    roadwork: Roadwork, issued_at: datetime, ended_at: datetime | None = None
) -> dict[str, Any]:
    """The Alert entity (normalized, short names) of a roadwork.

    `issued_at` is when the alert was first raised; `ended_at` when the roadwork was closed
    or cancelled (the version that said so), which bounds `validTo`.
    """
    active = is_active(roadwork)
    valid_to = roadwork.end
    if not active and ended_at is not None:
        # Cancelled before it began: valid for no time at all, never before validFrom.
        ended = max(ended_at, roadwork.start)
        if valid_to is None or ended < valid_to:
            valid_to = ended
    closure_text = {"full": "road closed", "partial": "road partly closed", "none": "no closure"}
    description = roadwork.description or roadwork.name
    entity: dict[str, Any] = {
        "id": roadwork_alert_id(roadwork.id),
        "type": ALERT_TYPE,
        "name": {"type": "Property", "value": f"Roadworks: {roadwork.name}"},
        "description": {
            "type": "Property",
            "value": f"{description} ({closure_text[roadwork.closure]}, {roadwork.state})",
        },
        "category": {"type": "Property", "value": "traffic"},
        "subCategory": {"type": "Property", "value": "roadWorks"},
        "severity": {"type": "Property", "value": SEVERITY_OF_CLOSURE[roadwork.closure]},
        "alertSource": {"type": "Relationship", "object": roadwork.id},
        "alertState": {"type": "Property", "value": "raised" if active else "resolved"},
        "validFrom": _date_time(roadwork.start),
        "dateIssued": _date_time(issued_at),
        "location": {"type": "GeoProperty", "value": roadwork.geometry},
    }
    if valid_to is not None:
        entity["validTo"] = _date_time(valid_to)
    return entity
