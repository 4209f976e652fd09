"""GIPOD mobility hindrances (LDES members, OSLO Mobiliteit terms) as roadworks.

Pure: RDF text in, `HindranceVersion`s out. A member is a `mobiliteit:Mobiliteitshinder`
version (`dcterms:isVersionOf` the hindrance, `prov:generatedAtTime` its version time) with
periods (`mobiliteit:periode`, m8g:PeriodOfTime), zones (`mobiliteit:zone` → `locn:geometry`
→ `geosparql:asWKT`, EPSG:31370 Belgian Lambert 72 in practice), a status (`Inname.status`,
a GIPOD taxonomy IRI with its `skos:prefLabel`) and per zone the consequences
(`mobiliteit:gevolg`, taxonomy IRIs with labels). See docs/gipod.md for every mapping.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyproj
import shapely
import shapely.wkt
from pyld import jsonld
from rdflib import RDF, Dataset, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, PROV, SKOS
from rdflib.term import Node
from shapely.geometry import mapping

from feeds.gipod_consequences import Consequences, consequences_of
from feeds.roadworks import Roadwork, WorkState

logger = logging.getLogger(__name__)

MOBILITEIT = Namespace("https://data.vlaanderen.be/ns/mobiliteit#")
M8G = Namespace("http://data.europa.eu/m8g/")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GEOSPARQL = Namespace("http://www.opengis.net/ont/geosparql#")
GIPOD = Namespace("https://gipod.vlaanderen.be/ns/gipod#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
TREE = Namespace("https://w3id.org/tree#")

#: What the WKT literals carry when they name no CRS (GeoSPARQL 1.0 §8.5.1): CRS84.
DEFAULT_CRS = "OGC:CRS84"
#: Decimal places kept of WGS84 degrees: 1e-7° is about a centimetre.
COORDINATE_DECIMALS = 7

#: GIPOD status taxonomy labels (lower case) → CityWork workState. The hindrance statuses are
#: "in opmaak", "gevalideerd" and, for hindrances migrated from GIPOD 1, "onbekend" (GIPOD
#: business rules "Hinder"); the Inname statuses add the works' progress.
STATE_OF_STATUS: dict[str, WorkState] = {
    "in opmaak": "planned",
    "gevalideerd": "planned",
    "onbekend": "planned",
    "niet concreet gepland": "planned",
    "concreet gepland": "planned",
    "gepland": "planned",
    "vergund": "planned",
    "in uitvoering": "open",
    "uitgevoerd": "closed",
    "afgerond": "closed",
    "beëindigd": "closed",
    "geannuleerd": "cancelled",
    "ingetrokken": "cancelled",
    "niet uitgevoerd": "cancelled",
    "verwijderd": "cancelled",
}
#: Status taxonomy entries seen in published members, for members that omit the label.
STATUS_LABELS = {"0a4ee99b-8b8a-47c8-913f-117220febee0": "in opmaak"}
#: adms:versionNotes (the event that made the version) that end a hindrance whatever its status.
CANCELLING_EVENTS = ("cancelled", "removed", "deleted", "withdrawn")
#: The OSLO Inname subclass that caused the hindrance → CityWork workNature.
NATURE_OF_CAUSE = {
    MOBILITEIT.Grondwerk: "roadWorks",
    MOBILITEIT.Werk: "roadWorks",
    MOBILITEIT.Evenement: "event",
    MOBILITEIT.Parkeerverbod: "parkingRestriction",
}
#: RDF media types this module reads, and the rdflib parser of each.
PARSERS = {
    "application/n-quads": "nquads",
    "application/n-triples": "nt",
    "text/turtle": "turtle",
    "application/trig": "trig",
    "application/ld+json": "json-ld",
    "application/json": "json-ld",
}


class GipodError(ValueError):
    """The document is not RDF this module can read, or a member lacks what a roadwork needs."""


@dataclass(frozen=True)
class HindranceVersion:
    """One LDES member: a version of one GIPOD mobility hindrance, as a roadwork."""

    #: The member's IRI (this version).
    member: str
    #: The hindrance (dcterms:isVersionOf).
    hindrance: str
    #: The GIPOD id of the hindrance.
    number: str
    generated_at: datetime
    #: When the hindrance was first created (dcterms:created), if known.
    created_at: datetime | None
    status_label: str | None
    roadwork: Roadwork


@dataclass(frozen=True)
class Relation:
    """A tree:relation of a page: where it leads and what it says about the members there."""

    #: The relation's class without the namespace (`GreaterThanOrEqualToRelation`, `Relation`).
    kind: str
    node: str
    value: str | None


def media_type_parser(media_type: str) -> str | None:
    """The rdflib parser for a Content-Type (parameters ignored), None when unknown."""
    return PARSERS.get(media_type.split(";")[0].strip().lower())


def parser_of_name(name: str) -> str | None:
    """The rdflib parser for a file name or URL path, by extension."""
    extensions = {".nq": "nquads", ".nt": "nt", ".ttl": "turtle", ".trig": "trig"}
    extensions |= {".jsonld": "json-ld", ".json": "json-ld"}
    lowered = name.split("?")[0].lower()
    return next((parser for ext, parser in extensions.items() if lowered.endswith(ext)), None)


def _refuse_remote_context(url: str, options: Any = None) -> Any:
    raise GipodError(f"remote JSON-LD @context {url} is not fetched: inline it in the document")


def parse_graph(text: str, parser: str, base: str | None = None) -> Graph:
    """One RDF document (N-Quads, N-Triples, Turtle, TriG, JSON-LD) as one merged graph.

    JSON-LD goes through pyld with a document loader that refuses every URL, so reading a
    page never fetches a remote @context at run time.
    """
    if parser == "json-ld":
        try:
            document = json.loads(text)
        except ValueError as error:
            raise GipodError(f"not JSON: {error}") from None
        options = {"format": "application/n-quads", "documentLoader": _refuse_remote_context}
        if base:
            options["base"] = base
        try:
            text, parser = jsonld.to_rdf(document, options), "nquads"
        except jsonld.JsonLdError as error:
            raise GipodError(
                f"cannot read the JSON-LD (remote @context URLs are not fetched): {error}"
            ) from None
    dataset = Dataset()
    try:
        with warnings.catch_warnings():
            # rdflib's own N-Quads parser uses its deprecated Dataset.default_context.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset.parse(data=text, format=parser, publicID=base)
    except Exception as error:  # rdflib raises parser-specific exception types
        raise GipodError(f"cannot parse the document as {parser}: {error}") from error
    graph = Graph()
    for subject, predicate, value, _ in dataset.quads((None, None, None, None)):
        graph.add((subject, predicate, value))
    return graph


def relations(graph: Graph) -> list[Relation]:
    """Every tree:relation in a page (of its node or of the view it belongs to)."""
    found = []
    for relation in set(graph.objects(None, TREE.relation)):
        node = graph.value(relation, TREE.node)
        if node is None:
            continue
        kinds = [str(kind) for kind in graph.objects(relation, RDF.type)]
        kind = next((k.removeprefix(str(TREE)) for k in kinds if k.startswith(str(TREE))), "")
        value = graph.value(relation, TREE.value)
        found.append(Relation(kind or "Relation", str(node), str(value) if value else None))
    return sorted(found, key=lambda relation: (relation.value or "", relation.node))


def _moment(value: Node | None) -> datetime | None:
    if not isinstance(value, Literal):
        return None
    python = value.toPython()
    if isinstance(python, datetime):
        moment = python
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@cache
def _to_wgs84(crs: str) -> pyproj.Transformer:
    # Bundled PROJ data only: network grids are off unless PROJ_NETWORK is set, and a
    # transformation that would need one falls back to the bundled Helmert parameters.
    return pyproj.Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)


def _crs_of(iri: str) -> str:
    """`EPSG:31370` for `http://www.opengis.net/def/crs/EPSG/9.9.1/31370`, CRS84 for OGC's."""
    parts = iri.rstrip("/").split("/")
    if "EPSG" in parts:
        return f"EPSG:{parts[-1]}"
    if parts[-1] == "CRS84":
        return DEFAULT_CRS
    raise GipodError(f"unknown coordinate reference system {iri}")


def geometry_from_wkt(text: str) -> shapely.Geometry:
    """A GeoSPARQL WKT literal (`<crs IRI> POLYGON ((...))`) as a WGS84 shapely geometry."""
    crs, body = DEFAULT_CRS, text.strip()
    if body.startswith("<"):
        iri, _, body = body[1:].partition(">")
        crs = _crs_of(iri.strip())
    try:
        geometry = shapely.wkt.loads(body)
    except shapely.errors.ShapelyError as error:
        raise GipodError(f"invalid WKT geometry: {error}") from None
    if crs == DEFAULT_CRS:
        return geometry
    return shapely.transform(geometry, _to_wgs84(crs).transform, interleaved=False)


def _rounded(coordinates: Any) -> Any:
    if isinstance(coordinates, tuple | list):
        if coordinates and isinstance(coordinates[0], float | int):
            return [round(float(c), COORDINATE_DECIMALS) for c in coordinates[:2]]
        return [_rounded(item) for item in coordinates]
    return coordinates


def combined_geojson(geometries: list[shapely.Geometry]) -> dict[str, Any]:
    """One GeoJSON geometry of the zones: MultiPolygon when there are several polygons."""
    polygons: list[shapely.Polygon] = []
    for geometry in geometries:
        parts = getattr(geometry, "geoms", [geometry])
        polygons.extend(part for part in parts if part.geom_type == "Polygon")
    if polygons:
        if len(polygons) < sum(len(getattr(g, "geoms", [g])) for g in geometries):
            logger.warning("GIPOD zones that are not polygons were left out of the location")
        merged: shapely.Geometry = (
            polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
        )
    else:
        merged = geometries[0] if len(geometries) == 1 else shapely.GeometryCollection(geometries)
        if merged.geom_type == "GeometryCollection":
            raise GipodError("zones of mixed geometry types without a polygon")
    geojson = mapping(merged)
    return {"type": geojson["type"], "coordinates": _rounded(geojson["coordinates"])}


def _label(graph: Graph, node: Node | None) -> str | None:
    if node is None:
        return None
    label = graph.value(node, SKOS.prefLabel)
    if label is not None:
        return str(label)
    return STATUS_LABELS.get(str(node).rstrip("/").rsplit("/", 1)[-1])


def work_state(label: str | None, version_notes: str = "") -> WorkState:
    """The workState of a GIPOD status label (unknown: planned, and logged)."""
    if any(event in version_notes.lower() for event in CANCELLING_EVENTS):
        return "cancelled"
    if label is None:
        return "planned"
    state = STATE_OF_STATUS.get(label.strip().lower())
    if state is None:
        logger.warning("unknown GIPOD status %r: the roadwork is kept as planned", label)
        return "planned"
    return state


def _number(graph: Graph, member: URIRef, hindrance: str) -> str:
    for node in (member, URIRef(hindrance)):
        number = graph.value(node, GIPOD.gipodId)
        if number is not None:
            return str(number)
    identifier = graph.value(member, ADMS.identifier)
    notation = graph.value(identifier, SKOS.notation) if identifier is not None else None
    if notation is not None:
        return str(notation)
    return hindrance.rstrip("/").rsplit("/", 1)[-1]


def _period(graph: Graph, member: URIRef) -> tuple[datetime | None, datetime | None]:
    """The span of every period: the earliest start, and the latest end unless one is open."""
    starts, ends, open_ended = [], [], False
    for period in graph.objects(member, MOBILITEIT.periode):
        start = _moment(graph.value(period, M8G.startTime))
        end = _moment(graph.value(period, M8G.endTime))
        if start is not None:
            starts.append(start)
        if end is None:
            open_ended = True
        else:
            ends.append(end)
    return (min(starts) if starts else None, None if open_ended or not ends else max(ends))


def _zones(graph: Graph, member: URIRef) -> tuple[list[shapely.Geometry], list[str]]:
    geometries, consequence_labels = [], []
    for zone in sorted(graph.objects(member, MOBILITEIT.zone), key=str):
        for geometry in graph.objects(zone, LOCN.geometry):
            for wkt in graph.objects(geometry, GEOSPARQL.asWKT):
                geometries.append(geometry_from_wkt(str(wkt)))
        for consequence in graph.objects(zone, MOBILITEIT.gevolg):
            label = _label(graph, consequence)
            consequence_labels.append(label or str(consequence))
    return geometries, consequence_labels


def _work_nature(graph: Graph, member: URIRef) -> tuple[str, ...]:
    natures = {
        NATURE_OF_CAUSE.get(kind, "roadWorks")  # type: ignore[call-overload]
        for cause in graph.subjects(MOBILITEIT["Inname.heeftGevolg"], member)
        for kind in graph.objects(cause, RDF.type)
    }
    return tuple(sorted(natures)) or ("roadWorks",)


def hindrance_version(graph: Graph, member: URIRef) -> HindranceVersion:
    """The roadwork of one member of `graph`; GipodError when it cannot be placed."""
    hindrance = graph.value(member, DCTERMS.isVersionOf)
    if hindrance is None:
        raise GipodError(f"member {member} has no dcterms:isVersionOf")
    generated_at = _moment(graph.value(member, PROV.generatedAtTime)) or _moment(
        graph.value(member, DCTERMS.modified)
    )
    if generated_at is None:
        raise GipodError(f"member {member} has no prov:generatedAtTime")
    number = _number(graph, member, str(hindrance))
    created = _moment(graph.value(member, DCTERMS.created))
    start, end = _period(graph, member)
    geometries, consequence_labels = _zones(graph, member)
    if not geometries:
        raise GipodError(f"member {member} has no zone with a geometry")
    status = _label(graph, graph.value(member, MOBILITEIT["Inname.status"]))
    notes = " ".join(str(note) for note in graph.objects(member, ADMS.versionNotes))
    impact: Consequences = consequences_of(consequence_labels)
    description = graph.value(member, DCTERMS.description)
    roadwork = Roadwork(
        id=f"urn:ngsi-ld:CityWork:gipod:{number}",
        name=f"GIPOD hinder {number}",
        geometry=combined_geojson(geometries),
        start=start or created or generated_at,
        end=end,
        description=str(description) if description is not None else "",
        work_nature=_work_nature(graph, member),
        state=work_state(status, notes),
        closure=impact.closure,
        lanes_closed=impact.lanes_closed,
        dispositions=impact.dispositions,
        source=str(hindrance),
        version=str(member),
        last_reported=generated_at,
    )
    return HindranceVersion(
        str(member), str(hindrance), number, generated_at, created, status, roadwork
    )


def hindrance_versions(graph: Graph) -> tuple[list[HindranceVersion], list[str]]:
    """Every member of a page in generatedAtTime order, and why each unusable one was left."""
    versions, problems = [], []
    for member in sorted(set(graph.subjects(RDF.type, MOBILITEIT.Mobiliteitshinder)), key=str):
        if not isinstance(member, URIRef):
            problems.append("a mobility hindrance without an IRI")
            continue
        try:
            versions.append(hindrance_version(graph, member))
        except GipodError as error:
            problems.append(str(error))
    versions.sort(key=lambda version: (version.generated_at, version.member))
    return versions, problems


def parse_members(
    text: str, parser: str, base: str | None = None
) -> tuple[list[HindranceVersion], list[str]]:
    """The hindrance versions of one RDF document, and the problems with the rest."""
    return hindrance_versions(parse_graph(text, parser, base))
