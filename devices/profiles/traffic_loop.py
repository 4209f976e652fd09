"""Double-loop detectors in the Flemish MIV format (Meten in Vlaanderen, `traffic-loop/{id}`).

Field meanings, vehicle classes and special values come from the MIV open-data schema
`miv-verkeersdata.xsd` (AWV / Vlaams Verkeerscentrum): `tijd_waarneming` is the start of the
measured minute, `verkeersintensiteit` the vehicle count of a class in that minute,
`voertuigsnelheid_rekenkundig` / `_harmonisch` the arithmetic / harmonic mean speed in km/h,
`bezettingsgraad` the occupancy in percent. The record may come as xml2js output (every
element a one-element array, attributes under "$") or with plain values.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from devices.model import DecodeError, DeviceConfig, Reading
from devices.profiles.common import (
    Collector,
    RecordProfile,
    object_list,
    parse_time,
    to_float,
    to_iso,
)

ENTITY_TYPE = "TrafficFlowObserved"
KMH = "KMH"
MINUTE = timedelta(minutes=1)

#: MIV klasse_id → Smart Data Models vehicleType (DATEX II VehicleTypeEnum values).
#: 1: < 1 m, motorcycles (unreliable, unused by AWV); 2: cars, 1-4.9 m; 3: vans, 4.9-6.9 m;
#: 4: rigid lorries, 6.9-12 m; 5: articulated lorries and buses, > 12 m.
VEHICLE_TYPES = {
    "1": "motorcycle",
    "2": "car",
    "3": "van",
    "4": "lorry",
    "5": "articulatedVehicle",
}
#: MIV special speeds: 251 initial value, 252 no vehicles in the class, 254 calculation not
#: possible. 253 and 255 are undefined (the domain ends at 254), so every speed from 251 up
#: is treated as "no value".
FIRST_SENTINEL_SPEED = 251.0
#: Speed attribute ← MIV element (and the short name used in error details).
SPEEDS = (
    ("averageVehicleSpeed", "voertuigsnelheid_rekenkundig", "rekenkundig"),
    ("harmonicMeanSpeed", "voertuigsnelheid_harmonisch", "harmonisch"),
)
#: The lane in a descriptive id such as H222L10 (R10 is the first regular lane).
_LANE = re.compile(r"L(\d+)$")


class TrafficLoopProfile(RecordProfile):
    """Decodes MIV minute records (`{"meetpunt": [...]}`, one meetpunt, or an array of them)
    into TrafficFlowObserved entities per vehicle class and per measuring point (site)."""

    name: str = "traffic-loop"
    topic_filters: tuple[str, ...] = ("traffic-loop/+",)
    list_key = "meetpunt"

    def add_record(
        self, out: Collector, device: DeviceConfig, record: Any, received_at: datetime
    ) -> None:
        """One meetpunt (one lane, one minute)."""
        _site(out, record, received_at)


def _first(value: Any) -> Any:
    """The value of an element; xml2js wraps every element in a one-element array."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _attributes(element: dict[str, Any]) -> dict[str, Any]:
    """XML attributes: under "$" in xml2js output, inline in the plain form."""
    attributes = element.get("$")
    return attributes if isinstance(attributes, dict) else element


def _flag(site: dict[str, Any], name: str) -> str:
    value = _first(site.get(name))
    return "" if value is None else str(value).strip()


def _usable(site: dict[str, Any]) -> tuple[bool, bool]:
    """(counts usable, speeds usable) from the MIV status flags.

    beschikbaar 0 = point unavailable, defect 2 = over 20 % bad counts, geldig 3 = extremely
    irregular because of a defect: nothing is kept. defect 1 = one loop of the pair probably
    broken: a double loop times a vehicle between its two loops, so speeds are dropped while
    counts and occupancy stay. geldig 1 and 2 are only indications of irregular traffic and
    keep everything. A missing flag counts as fine.
    """
    defect = _flag(site, "defect")
    if _flag(site, "beschikbaar") == "0" or defect == "2" or _flag(site, "geldig") == "3":
        return False, False
    return True, defect != "1"


def _speed(value: Any, count: float | None, where: str) -> float | None:
    speed = to_float(_first(value), where)
    if speed is None or speed >= FIRST_SENTINEL_SPEED or (speed == 0 and not count):
        return None
    return speed


def _site(out: Collector, site: dict[str, Any], default: datetime) -> None:
    ids = _attributes(site)
    site_id = _first(ids.get("beschrijvende_id")) or _first(ids.get("unieke_id"))
    if not site_id:
        raise DecodeError("invalid_payload", "meetpunt without beschrijvende_id or unieke_id")
    site_id = str(site_id)
    stamp = _first(site.get("tijd_waarneming"))
    start = parse_time(stamp) if stamp else default
    out.times.append(start)
    counts_ok, speeds_ok = _usable(site)
    if not counts_ok:
        return
    context: dict[str, Any] = {
        "dateObservedFrom": to_iso(start),
        "dateObservedTo": to_iso(start + MINUTE),
    }
    lane = _LANE.search(site_id)
    if lane:
        context["laneId"] = int(lane.group(1))
    site_entity = (ENTITY_TYPE, site_id)
    parent = {"type": "Relationship", "object": f"urn:ngsi-ld:{ENTITY_TYPE}:{site_id}"}
    total: float | None = None
    classes = site.get("meetdata") or []
    if isinstance(classes, dict):  # a lone element, as converters without arrays write it
        classes = [classes]
    for index, data in enumerate(object_list(classes, "meetdata")):
        count = _class(out, site_id, index, data, start, context, parent, speeds_ok)
        if count is not None:
            total = count + (total or 0.0)
    out.add(site_entity, "intensity", total, start)
    rekendata = _first(site.get("rekendata"))
    if isinstance(rekendata, dict):
        occupancy = to_float(_first(rekendata.get("bezettingsgraad")), "bezettingsgraad")
        # MIV gives percent; Smart Data Models defines occupancy as a fraction 0..1.
        out.add(site_entity, "occupancy", None if occupancy is None else occupancy / 100, start)
    properties = out.context(site_entity)
    properties.update(context)
    properties["vehicleType"] = "anyVehicle"


def _class(
    out: Collector,
    site_id: str,
    index: int,
    data: dict[str, Any],
    start: datetime,
    context: dict[str, Any],
    parent: dict[str, Any],
    speeds_ok: bool,
) -> float | None:
    """Readings of one vehicle class; returns its count for the site total."""
    attributes = _attributes(data)
    class_id = str(_first(attributes.get("klasse_id")))
    vehicle_type = VEHICLE_TYPES.get(class_id)
    if vehicle_type is None:
        raise DecodeError("invalid_payload", f"meetdata[{index}]: unknown klasse_id {class_id}")
    entity_key = f"{site_id}-class{class_id}"
    append = out.readings.append
    count = to_float(_first(data.get("verkeersintensiteit")), "verkeersintensiteit")
    if count is not None:
        append(Reading(ENTITY_TYPE, entity_key, "intensity", count, start))
    if speeds_ok:
        for attribute, element, where in SPEEDS:
            speed = _speed(data.get(element), count, where)
            if speed is not None:
                append(Reading(ENTITY_TYPE, entity_key, attribute, speed, start, KMH))
    properties = out.context((ENTITY_TYPE, entity_key))
    properties.update(context)
    properties["vehicleType"] = vehicle_type
    properties["refTrafficFlowObserved"] = parent
    return count


PROFILE = TrafficLoopProfile()
