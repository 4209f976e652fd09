"""The current traffic state: the latest TrafficFlowObserved per measurement site, with a
congestion level. Pure: storage/traffic_state_store.py reads the entities.

A measurement site is what the feeds publish (DATEX II MeasurementSite, OSLO Meetpunt).
Ingest writes TrafficFlowObserved entities in two shapes (devices/profiles):

- MIV double loops (`traffic-loop`): one entity per site and lane (`vehicleType`
  `anyVehicle`, with the total `intensity` and `occupancy`) and one per vehicle class,
  pointing at it with `refTrafficFlowObserved` (class `intensity`, `averageVehicleSpeed`).
- Telraam counters (`telraam`): one entity per road segment and mode (`car`, `lorry`), each
  with `refRoadSegment`; the segment is the site. Cars carry `v85`, not an average speed.

Any other TrafficFlowObserved (one created through the NGSI-LD API, say) is a site of its
own. Site values: the site entity's own `intensity`, `averageVehicleSpeed` and `occupancy`;
where it has none, the sum of its classes' intensities and their intensity-weighted mean
speed, taken over the classes observed at the site's newest time only (older class readings
would mix two periods).

Congestion level (`congestion_level`), from km/h and occupancy as a fraction 0..1, with the
thresholds of `CongestionThresholds` (absolute, as no free-flow speed per road is known):

- by speed: >= 50 freeFlow, 30-50 heavy, 10-30 congested, < 10 stationary;
- by occupancy: < 0.15 freeFlow, 0.15-0.30 heavy, 0.30-0.50 congested, >= 0.50 stationary;
- both known: the worse of the two, except that a sparse road (occupancy below the heavy
  threshold) is freeFlow whatever the speed: one slow vehicle is no jam;
- one known: that one decides (a loop measures no speed when no vehicle passes, which is
  exactly when a queue stands still over it; occupancy then tells);
- neither (a Telraam segment: counts and v85 only): unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

TRAFFIC_FLOW_TYPE = "TrafficFlowObserved"
ANY_VEHICLE = "anyVehicle"
CongestionLevel = Literal["freeFlow", "heavy", "congested", "stationary", "unknown"]
_ORDER: tuple[CongestionLevel, ...] = ("freeFlow", "heavy", "congested", "stationary")
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class CongestionThresholds:
    """Where the congestion levels start: speeds in km/h, occupancy as a fraction 0..1."""

    heavy_speed: float = 50.0
    congested_speed: float = 30.0
    stationary_speed: float = 10.0
    heavy_occupancy: float = 0.15
    congested_occupancy: float = 0.30
    stationary_occupancy: float = 0.50


DEFAULT_THRESHOLDS = CongestionThresholds()


def _speed_level(speed: float, limits: CongestionThresholds) -> CongestionLevel:
    if speed < limits.stationary_speed:
        return "stationary"
    if speed < limits.congested_speed:
        return "congested"
    if speed < limits.heavy_speed:
        return "heavy"
    return "freeFlow"


def _occupancy_level(occupancy: float, limits: CongestionThresholds) -> CongestionLevel:
    if occupancy >= limits.stationary_occupancy:
        return "stationary"
    if occupancy >= limits.congested_occupancy:
        return "congested"
    if occupancy >= limits.heavy_occupancy:
        return "heavy"
    return "freeFlow"


def congestion_level(
    speed: float | None,
    occupancy: float | None,
    thresholds: CongestionThresholds = DEFAULT_THRESHOLDS,
) -> CongestionLevel:
    """The congestion level of a speed (km/h) and an occupancy (0..1); see the module doc."""
    if speed is None and occupancy is None:
        return "unknown"
    if speed is None:
        assert occupancy is not None
        return _occupancy_level(occupancy, thresholds)
    if occupancy is None:
        return _speed_level(speed, thresholds)
    if occupancy < thresholds.heavy_occupancy:
        return "freeFlow"
    levels = (_speed_level(speed, thresholds), _occupancy_level(occupancy, thresholds))
    return max(levels, key=_ORDER.index)


@dataclass(frozen=True)
class ClassFlow:
    """The latest readings of one vehicle class at a site."""

    entity_id: str
    vehicle_type: str
    observed_at: datetime | None
    intensity: float | None = None
    average_speed: float | None = None
    #: The speed 85 % of the vehicles stay under (Telraam), km/h.
    speed_v85: float | None = None


@dataclass(frozen=True)
class Place:
    """What a referenced RoadSegment or Device says about where a site is."""

    name: str | None = None
    location: dict[str, Any] | None = None


@dataclass(frozen=True)
class SiteState:
    """The latest traffic state of one measurement site."""

    site_id: str
    name: str
    location: dict[str, Any] | None
    observed_at: datetime | None
    period: timedelta | None
    intensity: float | None
    average_speed: float | None
    occupancy: float | None
    congestion: CongestionLevel
    classes: tuple[ClassFlow, ...] = ()
    lane: int | None = None
    road_segment: str | None = None
    modified_at: datetime | None = None

    @property
    def flow_rate(self) -> float | None:
        """Vehicles per hour, from the intensity and the length of its period."""
        if self.intensity is None or not self.period:
            return None
        return self.intensity * (HOUR / self.period)

    @property
    def congested(self) -> bool:
        """Whether traffic is queuing or standing (SDM `congested`)."""
        return self.congestion in ("congested", "stationary")

    def class_flow_rate(self, flow: ClassFlow) -> float | None:
        """Vehicles per hour of one class (the site's period applies to its classes)."""
        if flow.intensity is None or not self.period:
            return None
        return flow.intensity * (HOUR / self.period)


# --- reading entity members (normalized NGSI-LD, short names) ------------------------------


def _instances(member: Any) -> list[dict[str, Any]]:
    if isinstance(member, dict):
        return [member]
    if isinstance(member, list):
        return [item for item in member if isinstance(item, dict)]
    return []


def _default_instance(member: Any) -> dict[str, Any] | None:
    instances = _instances(member)
    return next((i for i in instances if not i.get("datasetId")), None)


def _value(entity: Mapping[str, Any], name: str) -> Any:
    instance = _default_instance(entity.get(name))
    return None if instance is None else instance.get("value", instance.get("object"))


def _number(entity: Mapping[str, Any], name: str) -> tuple[float | None, datetime | None]:
    """A numeric property and its observedAt; instances per dataset (directions) add up."""
    instances = _instances(entity.get(name))
    default = next((i for i in instances if not i.get("datasetId")), None)
    chosen = [default] if default is not None else instances
    values = [i.get("value") for i in chosen]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None, None
    times = [t for t in (_moment(i.get("observedAt")) for i in chosen) if t is not None]
    return sum(numbers), max(times, default=None)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _object(entity: Mapping[str, Any], name: str) -> str | None:
    instance = _default_instance(entity.get(name))
    target = None if instance is None else instance.get("object")
    return target if isinstance(target, str) else None


def _period(entity: Mapping[str, Any]) -> timedelta | None:
    start = _moment(_value(entity, "dateObservedFrom"))
    end = _moment(_value(entity, "dateObservedTo"))
    if start is None or end is None or end <= start:
        return None
    return end - start


def _location(entity: Mapping[str, Any]) -> dict[str, Any] | None:
    location = _value(entity, "location")
    return location if isinstance(location, dict) and "type" in location else None


# --- grouping entities into sites -----------------------------------------------------------


@dataclass
class _Group:
    site: Mapping[str, Any] | None = None
    classes: list[Mapping[str, Any]] = field(default_factory=list)
    modified: list[datetime] = field(default_factory=list)


def _site_key(entity: Mapping[str, Any]) -> tuple[str, bool]:
    """(site id, whether the entity is a class of that site rather than the site itself)."""
    parent = _object(entity, "refTrafficFlowObserved")
    if parent:
        return parent, True
    segment = _object(entity, "refRoadSegment")
    vehicle_type = _value(entity, "vehicleType")
    if segment and vehicle_type not in (None, ANY_VEHICLE):
        return segment, True
    return str(entity["id"]), False


def _class_flow(entity: Mapping[str, Any]) -> ClassFlow:
    intensity, counted_at = _number(entity, "intensity")
    speed, speed_at = _number(entity, "averageVehicleSpeed")
    v85, v85_at = _number(entity, "v85")
    times = [t for t in (counted_at, speed_at, v85_at) if t is not None]
    return ClassFlow(
        entity_id=str(entity["id"]),
        vehicle_type=str(_value(entity, "vehicleType") or ANY_VEHICLE),
        observed_at=max(times, default=None),
        intensity=intensity,
        average_speed=speed,
        speed_v85=v85,
    )


def _weighted_speed(flows: list[ClassFlow]) -> float | None:
    timed = [f for f in flows if f.average_speed is not None]
    if not timed:
        return None
    weights = [f.intensity or 0.0 for f in timed]
    total = sum(weights)
    if total <= 0:
        return sum(f.average_speed or 0.0 for f in timed) / len(timed)
    return sum((f.average_speed or 0.0) * w for f, w in zip(timed, weights, strict=True)) / total


def _first(candidates: Iterable[Any]) -> Any:
    return next((c for c in candidates if c is not None), None)


def _site_state(
    site_id: str,
    group: _Group,
    places: Mapping[str, Place],
    thresholds: CongestionThresholds,
) -> SiteState:
    site = group.site or {}
    flows = sorted((_class_flow(e) for e in group.classes), key=lambda f: f.entity_id)
    intensity, counted_at = _number(site, "intensity")
    speed, speed_at = _number(site, "averageVehicleSpeed")
    occupancy, occupied_at = _number(site, "occupancy")
    times = [t for t in (counted_at, speed_at, occupied_at) if t is not None]
    times += [f.observed_at for f in flows if f.observed_at is not None]
    newest = max(times, default=None)
    current = [f for f in flows if f.observed_at == newest]
    if intensity is None and any(f.intensity is not None for f in current):
        intensity = sum(f.intensity or 0.0 for f in current)
    if speed is None:
        speed = _weighted_speed(current)
    members = [site, *group.classes]
    references = [_object(e, name) for e in members for name in ("refRoadSegment", "refDevice")]
    referenced = [places[r] for r in references if r is not None and r in places]
    if site_id in places:
        referenced.insert(0, places[site_id])
    lane = _first(_value(e, "laneId") for e in members)
    return SiteState(
        site_id=site_id,
        name=str(
            _first(_value(e, "name") for e in members)
            or _first(p.name for p in referenced)
            or site_id
        ),
        location=_first(_location(e) for e in members) or _first(p.location for p in referenced),
        observed_at=newest,
        period=_first(_period(e) for e in members),
        intensity=intensity,
        average_speed=speed,
        occupancy=occupancy,
        congestion=congestion_level(speed, occupancy, thresholds),
        classes=tuple(flows),
        lane=int(lane) if isinstance(lane, int | float) and not isinstance(lane, bool) else None,
        road_segment=_first(_object(e, "refRoadSegment") for e in members),
        modified_at=max(group.modified, default=None),
    )


def traffic_state(
    entities: Iterable[tuple[Mapping[str, Any], datetime | None]],
    places: Mapping[str, Place] | None = None,
    thresholds: CongestionThresholds = DEFAULT_THRESHOLDS,
) -> list[SiteState]:
    """The sites of TrafficFlowObserved entities (normalized, short names, with their
    modification time), by site id; `places` names and locates referenced segments/devices."""
    groups: dict[str, _Group] = {}
    for entity, modified_at in entities:
        site_id, is_class = _site_key(entity)
        group = groups.setdefault(site_id, _Group())
        if is_class:
            group.classes.append(entity)
        else:
            group.site = entity
        if modified_at is not None:
            group.modified.append(modified_at)
    known = places or {}
    return [_site_state(key, groups[key], known, thresholds) for key in sorted(groups)]


def place_references(entities: Iterable[Mapping[str, Any]]) -> set[str]:
    """The RoadSegment and Device ids that TrafficFlowObserved entities point at."""
    return {
        target
        for entity in entities
        for name in ("refRoadSegment", "refDevice")
        if (target := _object(entity, name)) is not None
    }
