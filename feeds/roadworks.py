"""Roadworks as the feeds see them, and as `CityWork` entities (Smart Data Models) store them.

This is the contract between the importers (GIPOD, the NGSI-LD API) and the exports
(DATEX II, WZDx, Waze CIFS, LDES): a CityWork entity with these attributes, names compacted
with the Smart Data Models Transportation context:

- `name`, `description`; `location`: a GeoJSON geometry in WGS84 (lon, lat): Point,
  LineString, Polygon, MultiPolygon, ...
- `startDate`, `endDate` (DateTime; no endDate: open-ended);
- `workNature` (list of text, e.g. `["roadWorks"]`), `workState` (`planned`, `open`,
  `closed`, `cancelled`);
- `workDisposition` (list of objects as in the SDM example, each with `disposition`:
  `laneReduction`, `roadClosed`, `sidewalkReduction`, `alternatingLights`,
  `speedReduction`, ...); a roadwork is a road closure when one disposition is `roadClosed`;
- extension members used by the feeds: `closure` (`full`, `partial`, `none`), `lanesClosed`
  (number), `source` (the URL the roadwork came from), `version` (text: the source's version
  id), `dateLastReported` (DateTime).

Pure: converting both ways; storage/roadwork_store.py reads the stored entities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ngsi.mapping import format_datetime

CITYWORK_TYPE = "CityWork"
WorkState = Literal["planned", "open", "closed", "cancelled"]
Closure = Literal["full", "partial", "none"]


@dataclass(frozen=True)
class Roadwork:
    """One roadwork (a CityWork entity) in plain values."""

    id: str
    name: str
    geometry: dict[str, Any]
    start: datetime
    end: datetime | None = None
    description: str = ""
    work_nature: tuple[str, ...] = ("roadWorks",)
    state: WorkState = "planned"
    closure: Closure = "partial"
    lanes_closed: int | None = None
    dispositions: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    source: str | None = None
    version: str | None = None
    last_reported: datetime | None = None
    #: When the stored entity was last modified (ETag/Last-Modified of the feeds).
    modified_at: datetime | None = None

    @property
    def is_closure(self) -> bool:
        """Whether the road is closed to traffic (fully, or a disposition says so)."""
        return self.closure == "full" or any(
            item.get("disposition") == "roadClosed" for item in self.dispositions
        )


def _date_time(moment: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": format_datetime(moment)}}


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def roadwork_entity(roadwork: Roadwork) -> dict[str, Any]:
    """The CityWork entity (normalized, short names) of a roadwork."""
    entity: dict[str, Any] = {
        "id": roadwork.id,
        "type": CITYWORK_TYPE,
        "name": _property(roadwork.name),
        "location": {"type": "GeoProperty", "value": roadwork.geometry},
        "startDate": _date_time(roadwork.start),
        "workNature": _property(list(roadwork.work_nature)),
        "workState": _property(roadwork.state),
        "closure": _property(roadwork.closure),
    }
    if roadwork.description:
        entity["description"] = _property(roadwork.description)
    if roadwork.end is not None:
        entity["endDate"] = _date_time(roadwork.end)
    if roadwork.lanes_closed is not None:
        entity["lanesClosed"] = _property(roadwork.lanes_closed)
    if roadwork.dispositions:
        entity["workDisposition"] = _property([dict(item) for item in roadwork.dispositions])
    if roadwork.source:
        entity["source"] = _property(roadwork.source)
    if roadwork.version:
        entity["version"] = _property(roadwork.version)
    if roadwork.last_reported is not None:
        entity["dateLastReported"] = _date_time(roadwork.last_reported)
    return entity


def _value(entity: dict[str, Any], name: str) -> Any:
    member = entity.get(name)
    if isinstance(member, dict):
        return member.get("value")
    return member


def _moment(value: Any) -> datetime | None:
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def roadwork_from_entity(
    entity: dict[str, Any], modified_at: datetime | None = None
) -> Roadwork | None:
    """The roadwork of a CityWork entity (normalized, short names); None if it has no
    location or startDate (an export cannot place it)."""
    geometry = _value(entity, "location")
    start = _moment(_value(entity, "startDate"))
    if not isinstance(geometry, dict) or start is None:
        return None
    nature = _value(entity, "workNature")
    dispositions = _value(entity, "workDisposition") or []
    lanes = _value(entity, "lanesClosed")
    return Roadwork(
        id=str(entity["id"]),
        name=str(_value(entity, "name") or entity["id"]),
        geometry=geometry,
        start=start,
        end=_moment(_value(entity, "endDate")),
        description=str(_value(entity, "description") or ""),
        work_nature=tuple(nature) if isinstance(nature, list) else (str(nature or "roadWorks"),),
        state=_value(entity, "workState") or "planned",
        closure=_value(entity, "closure") or "partial",
        lanes_closed=int(lanes) if isinstance(lanes, int | float) else None,
        dispositions=tuple(item for item in dispositions if isinstance(item, dict)),
        source=_value(entity, "source"),
        version=_value(entity, "version"),
        last_reported=_moment(_value(entity, "dateLastReported")),
        modified_at=modified_at,
    )
