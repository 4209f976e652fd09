"""GIPOD mobility-hindrance members for tests: the real published member and versions of it.

`member_text` rewrites the real member (../shared/reference/ldes/) the way GIPOD publishes a
new version of the same hindrance: a new member IRI and generatedAtTime, and whatever changed
(status, zone moved, zones added, period). The result is N-Quads (N-Triples lines).
"""

from __future__ import annotations

import re
from pathlib import Path

import shapely
import shapely.affinity
import shapely.wkt
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, PROV, SKOS, XSD

from feeds.gipod import GEOSPARQL, LOCN, M8G, MOBILITEIT, parse_graph

REFERENCE_MEMBER = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "reference"
    / "ldes"
    / "gipod-mobility-hindrance-ldes-member.nq"
)
API = "https://private-api.gipod.beta-vlaanderen.be/api/v1/"
NUMBER = "10810464"
MEMBER = URIRef(f"{API}mobility-hindrances/{NUMBER}/#ID")
HINDRANCE = f"{API}mobility-hindrances/{NUMBER}"
LAMBERT72 = "<http://www.opengis.net/def/crs/EPSG/9.9.1/31370>"
TREE = Namespace("https://w3id.org/tree#")


def reference_text() -> str:
    """The real member as published (N-Quads)."""
    return REFERENCE_MEMBER.read_text("utf-8")


def _replace_node(graph: Graph, old: URIRef, new: URIRef) -> None:
    for subject, predicate, value in list(graph.triples((old, None, None))):
        graph.remove((subject, predicate, value))
        graph.add((new, predicate, value))
    for subject, predicate, value in list(graph.triples((None, None, old))):
        graph.remove((subject, predicate, value))
        graph.add((subject, predicate, new))


def _zone_wkts(graph: Graph, member: URIRef) -> list[tuple[object, str]]:
    return [
        (geometry, str(wkt))
        for zone in graph.objects(member, MOBILITEIT.zone)
        for geometry in graph.objects(zone, LOCN.geometry)
        for wkt in graph.objects(geometry, GEOSPARQL.asWKT)
    ]


def member_graph(
    version: int,
    generated_at: str,
    *,
    number: str = NUMBER,
    status: str = "In opmaak",
    shift_metres: tuple[float, float] = (0.0, 0.0),
    extra_zone_wkt: str | None = None,
    period: tuple[str, str | None] | None = ("2022-05-27T07:00:00Z", "2022-05-27T17:00:00Z"),
    consequence: str | None = None,
) -> tuple[Graph, URIRef]:
    """A version of the real hindrance (or of another `number`) and its member IRI."""
    graph = parse_graph(reference_text(), "nquads")
    hindrance = f"{API}mobility-hindrances/{number}"
    member = URIRef(f"{hindrance}/{version}")
    _replace_node(graph, MEMBER, member)
    if number != NUMBER:
        _replace_node(graph, URIRef(HINDRANCE), URIRef(hindrance))
        graph.set((member, URIRef("https://gipod.vlaanderen.be/ns/gipod#gipodId"),
                   Literal(number, datatype=XSD.integer)))  # fmt: skip
        for identifier in graph.objects(member, URIRef("http://www.w3.org/ns/adms#identifier")):
            graph.remove((identifier, SKOS.notation, None))
    # A zone per version: versions in one page are read from one merged graph (docs/gipod.md).
    zones = [zone for zone in graph.objects(member, MOBILITEIT.zone) if isinstance(zone, URIRef)]
    for index, zone in enumerate(sorted(zones)):
        _replace_node(graph, zone, URIRef(f"{hindrance}/zones/{version}-{index}"))
    graph.set((member, PROV.generatedAtTime, Literal(generated_at, datatype=XSD.dateTime)))
    status_iri = URIRef(f"{API}taxonomies/statuses/{status.lower().replace(' ', '-')}")
    graph.set((member, MOBILITEIT["Inname.status"], status_iri))
    graph.set((status_iri, SKOS.prefLabel, Literal(status, lang="nl-be")))
    for geometry, wkt in _zone_wkts(graph, member):
        body = wkt.split(">", 1)[1]
        moved = shapely.affinity.translate(shapely.wkt.loads(body), *shift_metres)
        graph.set((geometry, GEOSPARQL.asWKT,  # type: ignore[arg-type]
                   Literal(f"{LAMBERT72} {moved.wkt}", datatype=GEOSPARQL.wktLiteral)))  # fmt: skip
    if extra_zone_wkt is not None:
        zone, geometry = URIRef(f"{hindrance}/zones/extra"), URIRef(f"{hindrance}/zones/extra#g")
        graph.add((member, MOBILITEIT.zone, zone))
        graph.add((zone, RDF.type, MOBILITEIT.Zone))
        graph.add((zone, LOCN.geometry, geometry))
        graph.add(
            (geometry, GEOSPARQL.asWKT, Literal(extra_zone_wkt, datatype=GEOSPARQL.wktLiteral))
        )
    for old in list(graph.objects(member, MOBILITEIT.periode)):
        graph.remove((old, None, None))
    graph.remove((member, MOBILITEIT.periode, None))
    if period is not None:
        node = URIRef(f"{hindrance}/periods/{version}")
        graph.add((member, MOBILITEIT.periode, node))
        graph.add((node, RDF.type, M8G.PeriodOfTime))
        graph.add((node, M8G.startTime, Literal(period[0], datatype=XSD.dateTime)))
        if period[1] is not None:
            graph.add((node, M8G.endTime, Literal(period[1], datatype=XSD.dateTime)))
    if consequence is not None:
        slug = re.sub(r"[^a-z0-9]+", "-", consequence.lower())
        consequence_iri = URIRef(f"{API}taxonomies/consequencetypes/{slug}")
        for zone_node in graph.objects(member, MOBILITEIT.zone):
            graph.set((zone_node, MOBILITEIT.gevolg, consequence_iri))
        graph.add((consequence_iri, SKOS.prefLabel, Literal(consequence, lang="nl-be")))
    assert (member, DCTERMS.isVersionOf, URIRef(hindrance)) in graph
    return graph, member


def member_text(version: int, generated_at: str, **changes: object) -> str:
    """`member_graph` serialized as N-Quads."""
    graph, _ = member_graph(version, generated_at, **changes)  # type: ignore[arg-type]
    return graph.serialize(format="nt")


def page_text(members: list[str], page: str, next_page: str | None, next_from: str) -> str:
    """An LDES page (N-Quads) with these members and a GreaterThanOrEqualTo relation onward."""
    graph = Graph()
    for text in members:
        graph.parse(data=text, format="nt")
    node = URIRef(page)
    graph.add((node, RDF.type, TREE.Node))
    stream = URIRef(f"{API}ldes/mobility-hindrances")
    for member in graph.subjects(RDF.type, MOBILITEIT.Mobiliteitshinder):
        graph.add((stream, TREE.member, member))
    if next_page is not None:
        relation = URIRef(f"{page}#relation")
        graph.add((node, TREE.relation, relation))
        graph.add((relation, RDF.type, TREE.GreaterThanOrEqualToRelation))
        graph.add((relation, TREE.node, URIRef(next_page)))
        graph.add((relation, TREE.path, PROV.generatedAtTime))
        graph.add((relation, TREE.value, Literal(next_from, datatype=XSD.dateTime)))
    return graph.serialize(format="nt")
