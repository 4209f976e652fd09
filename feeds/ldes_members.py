"""LDES members: traffic counts and speeds in OSLO Verkeersmetingen terms, air quality in
SOSA/SSN terms, roadworks as versions of their CityWork (docs/ldes.md has the mapping).

Pure: each function adds one member's triples to an rdflib graph and returns its IRI.
Every nested structure of a member is a blank node, so the member's Concise Bounded
Description (what an LDES client extracts) is the whole member.

- Traffic (OSLO Verkeersmetingen, implementation model of the VSDS mappings, as the real AWV
  member in ../shared/reference/ldes/ and the Telraam/Verkeerscentrum OSLO mappings):
  `intensity` is an `impl:Verkeerstelling` with a `Verkeerstellingkenmerk` (kenmerktype
  `aantal`, voertuigType from the codelist); `averageVehicleSpeed`, `harmonicMeanSpeed`
  and `v85` are `impl:Verkeerssnelheidsmeting`s. Every measurement is a version
  (`dcterms:isVersionOf`) of its series, as in the AWV stream.
- Air quality (W3C SOSA/SSN): a `sosa:Observation` with observedProperty, hasSimpleResult,
  hasResult (a QUDT QuantityValue with its unit), resultTime, madeBySensor and
  hasFeatureOfInterest.
- Roadworks (OSLO Mobiliteit, as the GIPOD mobility-hindrance member): every version of a
  CityWork is a `mobiliteit:Mobiliteitshinder` with period and zone geometry; its deletion
  is an `as:Delete` version (a tombstone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, PROV, RDF, XSD
from shapely.geometry import shape

from feeds.roadworks import Roadwork

VKM = Namespace("https://data.vlaanderen.be/ns/verkeersmetingen#")
IMPL = Namespace("https://implementatie.data.vlaanderen.be/ns/vsds-verkeersmetingen#")
OM = Namespace("http://def.isotc211.org/iso19156/2011/Observation#")
SAMPLING_POINT = Namespace("http://def.isotc211.org/iso19156/2011/SamplingPoint#")
TIME = Namespace("http://www.w3.org/2006/time#")
SOSA = Namespace("http://www.w3.org/ns/sosa/")
QUDT = Namespace("http://qudt.org/schema/qudt/")
UNIT = Namespace("http://qudt.org/vocab/unit/")
SCHEMA = Namespace("http://schema.org/")
GEO = Namespace("http://www.opengis.net/ont/geosparql#")
SF = Namespace("http://www.opengis.net/ont/sf#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
MOBILITEIT = Namespace("https://data.vlaanderen.be/ns/mobiliteit#")
ACTIVITY_STREAMS = Namespace("https://www.w3.org/ns/activitystreams#")
M8G = Namespace("http://data.europa.eu/m8g/")
TRANSPORTATION = Namespace("https://smartdatamodels.org/dataModel.Transportation/")
VEHICLE_TYPES = Namespace("https://data.vlaanderen.be/doc/concept/VkmVoertuigType/")
FEATURE_TYPES = Namespace("https://data.vlaanderen.be/doc/concept/VkmVerkeersKenmerkType/")
LINK_DIRECTION = Namespace("https://inspire.ec.europa.eu/codelist/LinkDirectionValue/")
CRS84 = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> "

#: Smart Data Models vehicleType / itemType → OSLO VkmVoertuigType concept.
VEHICLE_TYPE_CODES = {
    "car": "auto",
    "lorry": "vrachtwagen",
    "van": "bestelwagen",
    "motorcycle": "motorfiets",
    "articulatedVehicle": "trekkerMetOplegger",
    "bus": "bus",
    "bicycle": "fiets",
    "pedestrian": "voetganger",
    "anyVehicle": "alle",
}
#: Attribute → OSLO VkmVerkeersKenmerkType concept.
FEATURE_TYPE_CODES = {
    "intensity": "aantal",
    "averageVehicleSpeed": "gemiddeldeSnelheid",
    "harmonicMeanSpeed": "harmonischGemiddeldeSnelheid",
    "v85": "V85",
}
COUNT_ATTRIBUTES = frozenset({"intensity"})
#: NGSI-LD datasetId (last segment) → INSPIRE link direction of the measuring point.
DIRECTIONS = {"lft": "inDirection", "rgt": "inOppositeDirection"}
#: UN/CEFACT unit code → QUDT unit.
QUDT_UNITS = {
    "GQ": "MicroGM-PER-M3",
    "GP": "MilliGM-PER-M3",
    "CEL": "DEG_C",
    "P1": "PERCENT",
    "A97": "HectoPA",
    "KMH": "KiloM-PER-HR",
    "VLT": "V",
    "59": "PPM",
    "61": "PPB",
}

#: The readings of each observation stream: entity type → attributes (short names).
STREAM_READINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "traffic": {
        "TrafficFlowObserved": ("intensity", "averageVehicleSpeed", "harmonicMeanSpeed", "v85"),
        "ItemFlowObserved": ("intensity",),
    },
    "air-quality": {
        "AirQualityObserved": (
            "pm1",
            "pm25",
            "pm4",
            "pm10",
            "no2",
            "no",
            "nox",
            "o3",
            "co",
            "co2",
            "so2",
            "nh3",
            "c6h6",
            "temperature",
            "relativeHumidity",
            "atmosphericPressure",
        ),  # fmt: skip
    },
}


@dataclass(frozen=True, slots=True)
class EntityContext:
    """What a member takes from the latest state of its entity (not from the reading)."""

    vehicle_type: str | None = None
    device: str | None = None
    road_segment: str | None = None
    location: dict[str, Any] | None = None
    #: Length of one observation period (dateObservedTo - dateObservedFrom), if known.
    period: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """One stored reading (a row of the observations table) with its entity's context."""

    entity_id: str
    entity_type: str
    attribute: str
    attribute_iri: str
    dataset_id: str
    observed_at: datetime
    value: float
    unit_code: str | None
    context: EntityContext = EntityContext()


def timestamp_literal(moment: datetime) -> Literal:
    """An xsd:dateTime literal in UTC with `Z` (microseconds only when there are any)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return Literal(text + "Z", datatype=XSD.dateTime, normalize=False)


def _iri_part(text: str) -> str:
    return quote(text, safe=":-._~@")


def series_iri(record: ObservationRecord) -> URIRef:
    """The IRI of the series a reading belongs to: entity, attribute and dataset."""
    iri = f"{record.entity_id}/{_iri_part(record.attribute)}"
    if record.dataset_id:
        iri += "/" + _iri_part(record.dataset_id.rsplit(":", 1)[-1])
    return URIRef(iri)


def version_iri(of: str, moment: datetime) -> URIRef:
    """The IRI of the version of `of` at `moment`."""
    return URIRef(f"{of}/{timestamp_literal(moment)}")


def wkt_literal(geometry: dict[str, Any]) -> Literal | None:
    """A GeoSPARQL WKT literal (CRS84: longitude, latitude) of a GeoJSON geometry."""
    try:
        text = shape(geometry).wkt
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None
    return Literal(CRS84 + text, datatype=GEO.wktLiteral)


def _geometry_node(graph: Graph, geometry: dict[str, Any] | None) -> BNode | None:
    wkt = wkt_literal(geometry) if geometry else None
    if wkt is None:
        return None
    node = BNode()
    kind = str((geometry or {}).get("type", "Geometry"))
    graph.add((node, RDF.type, LOCN.Geometry))
    graph.add((node, RDF.type, SF[kind]))
    graph.add((node, GEO.asWKT, wkt))
    return node


def _instant(graph: Graph, moment: datetime) -> BNode:
    node = BNode()
    graph.add((node, RDF.type, TIME.Instant))
    graph.add((node, TIME.inXSDDateTimeStamp, timestamp_literal(moment)))
    return node


def _phenomenon_time(graph: Graph, record: ObservationRecord) -> BNode:
    node = BNode()
    graph.add((node, TIME.hasBeginning, _instant(graph, record.observed_at)))
    if record.context.period:
        graph.add((node, RDF.type, TIME.ProperInterval))
        graph.add((node, TIME.hasEnd, _instant(graph, record.observed_at + record.context.period)))
        seconds = int(record.context.period.total_seconds())
        graph.add((node, TIME.hasXSDDuration, Literal(f"PT{seconds}S", datatype=XSD.duration)))
    else:
        graph.add((node, RDF.type, TIME.TemporalEntity))
    return node


def vehicle_type_concept(vehicle_type: str | None) -> URIRef:
    """The OSLO VkmVoertuigType concept of a Smart Data Models vehicleType or itemType."""
    name = vehicle_type or "anyVehicle"
    return VEHICLE_TYPES[VEHICLE_TYPE_CODES.get(name, _iri_part(name))]


def _measuring_point(graph: Graph, record: ObservationRecord) -> BNode:
    point = BNode()
    graph.add((point, RDF.type, VKM.Verkeersmeetpunt))
    sampled = record.context.road_segment or record.entity_id
    graph.add((point, VKM.bemonsterdObject, URIRef(sampled)))
    direction = DIRECTIONS.get(record.dataset_id.rsplit(":", 1)[-1]) if record.dataset_id else None
    if direction:
        graph.add((point, VKM["Verkeersmeetpunt.rijrichting"], LINK_DIRECTION[direction]))
    if (geometry := _geometry_node(graph, record.context.location)) is not None:
        graph.add((point, SAMPLING_POINT["SF_SamplingPoint.shape"], geometry))
    return point


def traffic_member(graph: Graph, record: ObservationRecord) -> URIRef:
    """Add a traffic reading as an OSLO Verkeerstelling or Verkeerssnelheidsmeting."""
    series = series_iri(record)
    member = version_iri(series, record.observed_at)
    counting = record.attribute in COUNT_ATTRIBUTES
    kind = "Verkeerstelling" if counting else "Verkeerssnelheidsmeting"
    feature = BNode()
    graph.add((feature, RDF.type, VKM.Verkeerskenmerk))
    graph.add((feature, RDF.type, IMPL[f"{kind}kenmerk"]))
    code = FEATURE_TYPE_CODES.get(record.attribute, _iri_part(record.attribute))
    graph.add((feature, IMPL[f"{kind}kenmerk.kenmerktype"], FEATURE_TYPES[code]))
    graph.add((feature, VKM.voertuigType, vehicle_type_concept(record.context.vehicle_type)))
    graph.add((member, RDF.type, VKM.Verkeersmeting))
    graph.add((member, RDF.type, IMPL[kind]))
    graph.add((member, PROV.generatedAtTime, timestamp_literal(record.observed_at)))
    graph.add((member, DCTERMS.isVersionOf, series))
    graph.add((member, VKM.geobserveerdKenmerk, feature))
    graph.add((member, VKM.geobserveerdObject, _measuring_point(graph, record)))
    graph.add((member, OM["OM_Observation.phenomenonTime"], _phenomenon_time(graph, record)))
    result = Literal(float(record.value), datatype=XSD.double)
    if counting:
        graph.add((member, IMPL["Verkeerstelling.tellingresultaat"], result))
    graph.add((member, OM["OM_Observation.result"], result))
    if not counting and (unit := QUDT_UNITS.get(record.unit_code or "")):
        graph.add((member, QUDT.unit, UNIT[unit]))
    if record.context.device:
        graph.add((member, SOSA.madeBySensor, URIRef(record.context.device)))
    return member


def air_quality_member(graph: Graph, record: ObservationRecord) -> URIRef:
    """Add an air-quality reading as a SOSA observation."""
    series = series_iri(record)
    member = version_iri(series, record.observed_at)
    graph.add((member, RDF.type, SOSA.Observation))
    graph.add((member, SOSA.resultTime, timestamp_literal(record.observed_at)))
    graph.add((member, DCTERMS.isVersionOf, series))
    graph.add((member, SOSA.observedProperty, URIRef(record.attribute_iri)))
    value = Literal(float(record.value), datatype=XSD.double)
    graph.add((member, SOSA.hasSimpleResult, value))
    result = BNode()
    graph.add((result, RDF.type, QUDT.QuantityValue))
    graph.add((result, QUDT.numericValue, value))
    if record.unit_code:
        graph.add((result, SCHEMA.unitCode, Literal(record.unit_code)))
        if unit := QUDT_UNITS.get(record.unit_code):
            graph.add((result, QUDT.unit, UNIT[unit]))
    graph.add((member, SOSA.hasResult, result))
    graph.add((member, SOSA.hasFeatureOfInterest, URIRef(record.entity_id)))
    if record.context.device:
        graph.add((member, SOSA.madeBySensor, URIRef(record.context.device)))
    if (geometry := _geometry_node(graph, record.context.location)) is not None:
        graph.add((member, LOCN.geometry, geometry))
    return member


@dataclass(frozen=True, slots=True)
class RoadworkVersion:
    """One version of a CityWork: its state at `version_at`, or its deletion."""

    entity_id: str
    version_at: datetime
    #: The roadwork as it was; None for a deletion or a state an export cannot place.
    roadwork: Roadwork | None
    deleted: bool = False


def roadwork_version_iri(entity_id: str, moment: datetime) -> URIRef:
    """The IRI of a roadwork version: the CityWork id, `#`, the version time."""
    return URIRef(f"{entity_id}#{timestamp_literal(moment)}")


def roadwork_member(graph: Graph, version: RoadworkVersion) -> URIRef:
    """Add a version of a roadwork (a CityWork) as a mobility hindrance, or its deletion
    as an `as:Delete` (the stream's ldes:versionDeleteObject, LDES vocabulary §2)."""
    member = roadwork_version_iri(version.entity_id, version.version_at)
    graph.add((member, PROV.generatedAtTime, timestamp_literal(version.version_at)))
    graph.add((member, DCTERMS.isVersionOf, URIRef(version.entity_id)))
    if version.deleted:
        graph.add((member, RDF.type, ACTIVITY_STREAMS.Delete))
        return member
    graph.add((member, RDF.type, MOBILITEIT.Mobiliteitshinder))
    graph.add((member, RDF.type, TRANSPORTATION.CityWork))
    if version.roadwork is not None:
        _describe_roadwork(graph, member, version.roadwork)
    return member


def _describe_roadwork(graph: Graph, member: URIRef, roadwork: Roadwork) -> None:
    graph.add((member, DCTERMS.title, Literal(roadwork.name)))
    if roadwork.description:
        graph.add((member, DCTERMS.description, Literal(roadwork.description)))
    period = BNode()
    graph.add((period, RDF.type, M8G.PeriodOfTime))
    graph.add((period, M8G.startTime, timestamp_literal(roadwork.start)))
    if roadwork.end is not None:
        graph.add((period, M8G.endTime, timestamp_literal(roadwork.end)))
    graph.add((member, MOBILITEIT.periode, period))
    zone = BNode()
    graph.add((zone, RDF.type, MOBILITEIT.Zone))
    if (geometry := _geometry_node(graph, roadwork.geometry)) is not None:
        graph.add((zone, LOCN.geometry, geometry))
    graph.add((member, MOBILITEIT.zone, zone))
    graph.add((member, TRANSPORTATION.workState, Literal(roadwork.state)))
    for nature in roadwork.work_nature:
        graph.add((member, TRANSPORTATION.workNature, Literal(nature)))
    graph.add((member, TRANSPORTATION.closure, Literal(roadwork.closure)))
    if roadwork.lanes_closed is not None:
        graph.add((member, TRANSPORTATION.lanesClosed, Literal(roadwork.lanes_closed)))
    for item in roadwork.dispositions:
        if disposition := item.get("disposition"):
            graph.add((member, TRANSPORTATION.workDisposition, Literal(str(disposition))))
    if roadwork.source:
        graph.add((member, DCTERMS.source, URIRef(roadwork.source)))
    if roadwork.version:
        graph.add((member, DCTERMS.hasVersion, Literal(roadwork.version)))
