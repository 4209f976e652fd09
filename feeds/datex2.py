"""DATEX II v3.1 publications of roadworks and the traffic state (pure; lxml).

Three documents, each a `d2:payload` (DATEXII_3_D2Payload.xsd) as in the minimal examples of
shared/reference/datex2-v3.1:

- `situation_publication`: a SituationPublication with one `sit:situation` per roadwork
  (feeds/roadworks.py): a `MaintenanceWorks` record, and when the road or lanes are closed a
  `RoadOrCarriagewayOrLaneManagement` record (`roadClosed`, or `laneClosures`). Validity by
  `overallStartTime` and, when the roadwork has an end, `overallEndTime`. Cancelled and
  closed (finished) roadworks are left out: in a snapshot, absence means over; so are
  roadworks whose geometry no DATEX II location can express (an empty one).
- `measurement_site_table_publication`: the MeasurementSiteTable of the traffic sites
  (feeds/traffic_state.py) that have a location, with their measured quantities by index.
- `measured_data_publication`: the latest flow, speed, occupancy and traffic status per site
  (a quantity without a value is left out, so a site without speeds has no speed).

DATEX II requires at least one site in the last two, so they raise `EmptyPublication` when
no site can be published. Locations are written by feeds/datex2_xml.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from feeds.datex2_xml import (
    DEFAULT_PUBLISHER,
    Publisher,
    digest,
    element,
    header,
    information_status,
    location_reference,
    multilingual,
    placeable,
    root,
    serialize,
    timestamp,
    typed,
)
from feeds.roadworks import Roadwork
from feeds.traffic_state import ClassFlow, SiteState

#: Content type of the documents (RFC 7303).
MEDIA_TYPE = "application/xml"
#: Values of VehicleTypeEnum (DATEXII_3_Common.xsd) that Smart Data Models `vehicleType` uses.
VEHICLE_TYPES = frozenset({
    "agriculturalVehicle", "anyVehicle", "articulatedBus", "articulatedVehicle", "bicycle",
    "bus", "car", "caravan", "carOrLightVehicle", "carWithCaravan", "carWithTrailer",
    "constructionOrMaintenanceVehicle", "fourWheelDrive", "heavyGoodsVehicle", "heavyVehicle",
    "highSidedVehicle", "lightCommercialVehicle", "largeCar", "largeGoodsVehicle", "lorry",
    "minibus", "moped", "motorcycle", "motorhome", "motorscooter", "passengerCar", "smallCar",
    "tanker", "threeWheeledVehicle", "trailer", "tram", "trolleyBus", "twoWheeledVehicle",
    "van", "vehicleWithTrailer", "unknown", "other",
})  # fmt: skip
#: RoadMaintenanceTypeEnum values, and CityWork `workNature` words that mean one of them.
MAINTENANCE_TYPES = frozenset({
    "accidentRepairWork", "clearanceWork", "installationWork", "grassCuttingWork",
    "litterClearance", "maintenanceWork", "overheadWorks", "repairWork", "resurfacingWork",
    "roadMarkingWork", "roadsideWork", "roadworks", "sweepingOfRoad",
    "treeAndVegetationCuttingWork", "other",
})  # fmt: skip
WORK_NATURE = {"roadWorks": "roadworks", "maintenance": "maintenanceWork", "repair": "repairWork"}
#: Our congestion level → TrafficStatusEnum (DATEXII_3_RoadTrafficData.xsd).
TRAFFIC_STATUS = {
    "freeFlow": "freeFlow",
    "heavy": "heavy",
    "congested": "queuing",
    "stationary": "stationary",
}
Quantity = Literal[
    "trafficFlow", "trafficSpeed", "trafficConcentration", "trafficStatusInformation"
]


__all__ = [
    "DEFAULT_PUBLISHER",
    "EmptyPublication",
    "Publisher",
    "measured_data_publication",
    "measurement_site_table_publication",
    "situation_publication",
]


class EmptyPublication(ValueError):
    """A publication that DATEX II cannot express empty (no measurement site to publish)."""


# --- situations ------------------------------------------------------------------------------


def _record_version(roadwork: Roadwork) -> str:
    if roadwork.version:
        return roadwork.version
    if roadwork.modified_at is not None:
        return str(int(roadwork.modified_at.timestamp() * 1000))
    return "1"


def _maintenance_types(roadwork: Roadwork) -> list[str]:
    found = []
    for nature in roadwork.work_nature:
        kind = WORK_NATURE.get(nature, nature if nature in MAINTENANCE_TYPES else "other")
        if kind not in found:
            found.append(kind)
    return found or ["roadworks"]


def _lane_closure(roadwork: Roadwork) -> bool:
    return bool(roadwork.lanes_closed) or any(
        item.get("disposition") == "laneReduction" for item in roadwork.dispositions
    )


def _record(
    situation: Any,
    roadwork: Roadwork,
    kind: str,
    suffix: str,
    publication_time: datetime,
    publisher: Publisher,
) -> Any:
    """The SituationRecord part common to both records, up to locationReference."""
    record = typed(situation, "sit:situationRecord", kind)
    record.set("id", f"{roadwork.id}#{suffix}")
    record.set("version", _record_version(roadwork))
    changed = roadwork.modified_at or roadwork.last_reported or publication_time
    element(record, "sit:situationRecordCreationTime", timestamp(changed))
    element(record, "sit:situationRecordVersionTime", timestamp(changed))
    certain = roadwork.state == "open"
    element(record, "sit:probabilityOfOccurrence", "certain" if certain else "probable")
    validity = element(record, "sit:validity")
    element(validity, "com:validityStatus", "definedByValidityTimeSpec")
    period = element(validity, "com:validityTimeSpecification")
    element(period, "com:overallStartTime", timestamp(roadwork.start))
    if roadwork.end is not None:
        element(period, "com:overallEndTime", timestamp(roadwork.end))
    if roadwork.lanes_closed is not None:
        impact = element(record, "sit:impact")
        element(impact, "sit:numberOfLanesRestricted", str(max(0, roadwork.lanes_closed)))
    if kind != "sit:MaintenanceWorks":
        cause = element(record, "sit:cause")
        element(cause, "sit:causeType", "roadMaintenance")
    for words in (roadwork.name, roadwork.description):
        if words:
            comment = element(record, "sit:generalPublicComment")
            multilingual(comment, "sit:comment", words, publisher.lang)
    if roadwork.source and roadwork.source.startswith(("http://", "https://")):
        link = element(record, "sit:urlLink")
        element(link, "com:urlLinkAddress", roadwork.source)
    location_reference(record, "sit:locationReference", roadwork.geometry)
    status = "implemented" if certain else "approved"
    element(record, "sit:operatorActionStatus", status)
    return record


def _situation(
    payload: Any, roadwork: Roadwork, publication_time: datetime, publisher: Publisher
) -> None:
    situation = element(payload, "sit:situation", id=roadwork.id)
    information_status(situation, "sit:headerInformation")
    works = _record(
        situation, roadwork, "sit:MaintenanceWorks", "works", publication_time, publisher
    )
    element(works, "sit:roadworksIdentifier", roadwork.id[:1024])
    element(works, "sit:underTraffic", "false" if roadwork.is_closure else "true")
    mobility = element(works, "sit:mobility")
    element(mobility, "sit:mobilityType", "stationary")
    for kind in _maintenance_types(roadwork):
        element(works, "sit:roadMaintenanceType", kind)
    closed = roadwork.is_closure
    if closed or _lane_closure(roadwork):
        management = _record(
            situation,
            roadwork,
            "sit:RoadOrCarriagewayOrLaneManagement",
            "closure",
            publication_time,
            publisher,
        )
        element(management, "sit:complianceOption", "mandatory")
        element(
            management,
            "sit:roadOrCarriagewayOrLaneManagementType",
            "roadClosed" if closed else "laneClosures",
        )


def situation_publication(
    roadworks: list[Roadwork],
    publication_time: datetime,
    publisher: Publisher = DEFAULT_PUBLISHER,
) -> bytes:
    """The SituationPublication of the roadworks that are planned or under way."""
    payload = root("sit:SituationPublication", publisher.lang)
    header(payload, publication_time, publisher)
    for roadwork in roadworks:
        if roadwork.state not in ("cancelled", "closed") and placeable(roadwork.geometry):
            _situation(payload, roadwork, publication_time, publisher)
    return serialize(payload)


# --- measurement sites -----------------------------------------------------------------------


def published_sites(sites: list[SiteState]) -> list[SiteState]:
    """The sites a measurement site table can hold: those with a location."""
    return [site for site in sites if placeable(site.location)]


def characteristics(site: SiteState) -> list[tuple[int, Quantity, ClassFlow | None]]:
    """(index, quantity, vehicle class or None for all vehicles) of what a site measures.

    The indices tie a site's measured values to its entry in the site table: 1-4 for the
    site as a whole, 10·k+1 and 10·k+2 for flow and speed of its k-th class (by entity id).
    """
    entries: list[tuple[int, Quantity, ClassFlow | None]] = [
        (1, "trafficFlow", None),
        (2, "trafficSpeed", None),
        (3, "trafficConcentration", None),
        (4, "trafficStatusInformation", None),
    ]
    for number, flow in enumerate(site.classes, start=1):
        entries += [(10 * number + 1, "trafficFlow", flow), (10 * number + 2, "trafficSpeed", flow)]
    return entries


def site_version(site: SiteState) -> str:
    """A version of a site's table entry that changes when its description does."""
    kinds = [flow.vehicle_type for flow in site.classes]
    return digest(site.site_id, site.name, site.location, site.lane, kinds)


def table_version(sites: list[SiteState]) -> str:
    """A version of the site table that changes when any published site's entry does."""
    return digest([(site.site_id, site_version(site)) for site in published_sites(sites)])


def _vehicle_type(flow: ClassFlow | None) -> str:
    if flow is None:
        return "anyVehicle"
    return flow.vehicle_type if flow.vehicle_type in VEHICLE_TYPES else "other"


def _vehicles(parent: Any, name: str, flow: ClassFlow | None) -> None:
    holder = element(parent, name)
    element(holder, "com:vehicleType", _vehicle_type(flow))


def _measurement_site(table: Any, site: SiteState, publisher: Publisher) -> None:
    assert site.location is not None
    entry = element(table, "roa:measurementSite", id=site.site_id, version=site_version(site))
    if site.modified_at is not None:
        element(entry, "roa:measurementSiteRecordVersionTime", timestamp(site.modified_at))
    multilingual(entry, "roa:measurementSiteName", site.name, publisher.lang)
    element(entry, "roa:measurementSiteIdentification", site.site_id[:1024])
    for index, quantity, flow in characteristics(site):
        holder = element(entry, "roa:measurementSpecificCharacteristics", index=str(index))
        specific = element(holder, "roa:measurementSpecificCharacteristics")
        if site.period:
            element(specific, "roa:period", str(int(site.period.total_seconds())))
        element(specific, "roa:specificMeasurementValueType", quantity)
        _vehicles(specific, "roa:specificVehicleCharacteristics", flow)
        if site.lane is not None:
            lane = element(specific, "roa:specificLane")
            element(lane, "loc:laneNumber", str(site.lane))
    location_reference(entry, "roa:measurementSiteLocation", site.location)


def measurement_site_table_publication(
    sites: list[SiteState],
    publication_time: datetime,
    publisher: Publisher = DEFAULT_PUBLISHER,
) -> bytes:
    """The MeasurementSiteTablePublication of the sites that have a location."""
    located = published_sites(sites)
    if not located:
        raise EmptyPublication("no measurement site with a location to publish")
    payload = root("roa:MeasurementSiteTablePublication", publisher.lang)
    header(payload, publication_time, publisher)
    information_status(payload, "roa:headerInformation")
    table = element(
        payload, "roa:measurementSiteTable", id=publisher.table_id, version=table_version(sites)
    )
    for site in located:
        _measurement_site(table, site, publisher)
    return serialize(payload)


# --- measured data ---------------------------------------------------------------------------


def _basic_data(
    quantities: Any, index: int, xsi_type: str, flow: ClassFlow | None, site: SiteState
) -> Any:
    holder = element(quantities, "roa:physicalQuantity", index=str(index))
    quantity = typed(holder, "roa:physicalQuantity", "roa:SinglePhysicalQuantity")
    data = typed(quantity, "roa:basicData", xsi_type)
    if flow is not None and flow.observed_at is not None and flow.observed_at != site.observed_at:
        when = element(data, "roa:measurementOrCalculationTime")
        element(when, "roa:timeMeaning", "beginTime")
        element(when, "roa:timeValue", timestamp(flow.observed_at))
    if xsi_type != "roa:TrafficStatus":
        _vehicles(data, "roa:forVehiclesWithCharacteristicsOf", flow)
    return data


def _number(value: float) -> str:
    return f"{round(value, 2):g}" if abs(value) < 1e6 else str(round(value))


def _flow(parent: Any, index: int, site: SiteState, flow: ClassFlow | None) -> None:
    rate = site.flow_rate if flow is None else site.class_flow_rate(flow)
    if rate is None:
        return
    data = _basic_data(parent, index, "roa:TrafficFlow", flow, site)
    vehicle_flow = element(data, "roa:vehicleFlow")
    element(vehicle_flow, "com:vehicleFlowRate", str(max(0, round(rate))))


def _speed(parent: Any, index: int, site: SiteState, flow: ClassFlow | None) -> None:
    average = site.average_speed if flow is None else flow.average_speed
    v85 = None if flow is None else flow.speed_v85
    if average is None and v85 is None:
        return
    data = _basic_data(parent, index, "roa:TrafficSpeed", flow, site)
    if average is not None:
        holder = element(data, "roa:averageVehicleSpeed")
        element(holder, "com:speed", _number(average))
    if v85 is not None:
        percentile = element(data, "roa:speedPercentile")
        share = element(percentile, "roa:vehiclePercentage")
        element(share, "com:percentage", "85")
        speed = element(percentile, "roa:speedPercentile")
        element(speed, "com:speed", _number(v85))


def _site_measurements(payload: Any, site: SiteState) -> None:
    assert site.observed_at is not None
    measurements = element(payload, "roa:siteMeasurements")
    element(
        measurements,
        "roa:measurementSiteReference",
        id=site.site_id,
        version=site_version(site),
        targetClass="roa:MeasurementSite",
    )
    for index, quantity, flow in characteristics(site):
        if quantity == "trafficFlow":
            _flow(measurements, index, site, flow)
        elif quantity == "trafficSpeed":
            _speed(measurements, index, site, flow)
        elif quantity == "trafficConcentration" and site.occupancy is not None:
            data = _basic_data(measurements, index, "roa:TrafficConcentration", None, site)
            occupancy = element(data, "roa:occupancy")
            element(occupancy, "com:percentage", _number(site.occupancy * 100))
        elif quantity == "trafficStatusInformation" and site.congestion in TRAFFIC_STATUS:
            data = _basic_data(measurements, index, "roa:TrafficStatus", None, site)
            status = element(data, "roa:trafficStatus")
            element(status, "roa:trafficStatusValue", TRAFFIC_STATUS[site.congestion])
    default = element(measurements, "roa:measurementTimeDefault")
    element(default, "roa:timeMeaning", "beginTime")
    element(default, "roa:timeValue", timestamp(site.observed_at))


def measured_data_publication(
    sites: list[SiteState],
    publication_time: datetime,
    publisher: Publisher = DEFAULT_PUBLISHER,
) -> bytes:
    """The MeasuredDataPublication of the latest readings of the published sites."""
    measured = [site for site in published_sites(sites) if site.observed_at is not None]
    if not measured:
        raise EmptyPublication("no measurement site with a location has readings")
    payload = root("roa:MeasuredDataPublication", publisher.lang)
    header(payload, publication_time, publisher)
    element(
        payload,
        "roa:measurementSiteTableReference",
        id=publisher.table_id,
        version=table_version(sites),
        targetClass="roa:MeasurementSiteTable",
    )
    information_status(payload, "roa:headerInformation")
    for site in measured:
        _site_measurements(payload, site)
    return serialize(payload)
