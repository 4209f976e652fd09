"""The DCAT-AP catalogue: parses as RDF in every format, and every dataset, distribution and
data service carries what DCAT-AP asks for (licence, titles in nl and en, URLs, media type)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF

from feeds.dcat import DATASETS, catalog_graph, short_type
from feeds.publication import CC_BY_4, LICENCE_TITLES, MODEL_LICENCE, Publication
from feeds.rdf_formats import JSON_LD, N_QUADS, N_TRIPLES, RDF_XML, TURTLE, negotiate, serialize
from feeds.routes_feeds import CATALOG_CONTEXT
from storage.feed_store import TypeSummary

# A plain Namespace: pytest probing rdflib's closed DCAT namespace makes it warn.
DCAT = Namespace("http://www.w3.org/ns/dcat#")
BASE = "https://data.stad.example"
MOMENT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
TRANSPORT = "https://smartdatamodels.org/dataModel.Transportation/"
TYPES = [
    TypeSummary(TRANSPORT + "CityWork", 3, MOMENT),
    TypeSummary(TRANSPORT + "TrafficFlowObserved", 12, MOMENT.replace(hour=10)),
    TypeSummary("https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", 4, None),
]


def parsed(publication: Publication, rdf_format, types=TYPES) -> Graph:
    """The catalogue serialized in `rdf_format` and parsed back."""
    body = serialize(catalog_graph(publication, BASE, types, "gent"), rdf_format, CATALOG_CONTEXT)
    graph = Graph()
    graph.parse(data=body, format=rdf_format.serializer)
    return graph


def literal(node: object) -> object:
    """The Python value of a literal node."""
    assert isinstance(node, Literal), node
    return node.toPython()


def texts(graph: Graph, subject, predicate) -> dict[str | None, str]:
    return {o.language: str(o) for o in graph.objects(subject, predicate) if isinstance(o, Literal)}


@pytest.mark.parametrize("rdf_format", [JSON_LD, TURTLE, N_QUADS, N_TRIPLES, RDF_XML])
@pytest.mark.parametrize("licence", [MODEL_LICENCE, CC_BY_4])
def test_catalogue_parses_and_everything_has_a_licence(rdf_format, licence: str) -> None:
    graph = parsed(Publication("Stad Gent", licence, "open.data@stad.gent"), rdf_format)
    (catalog,) = graph.subjects(RDF.type, DCAT.Catalog)
    assert catalog == URIRef(f"{BASE}/catalog")
    publisher = graph.value(catalog, DCTERMS.publisher)
    assert str(graph.value(publisher, FOAF.name)) == "Stad Gent"
    datasets = set(graph.objects(catalog, DCAT.dataset))
    assert datasets == set(graph.subjects(RDF.type, DCAT.Dataset))
    distributions = set(graph.subjects(RDF.type, DCAT.Distribution))
    assert len(datasets) == len(DATASETS) + len(TYPES)
    for resource in (
        catalog,
        *datasets,
        *distributions,
        *graph.subjects(RDF.type, DCAT.DataService),
    ):  # noqa: E501
        assert graph.value(resource, DCTERMS.license) == URIRef(licence), resource
        assert texts(graph, resource, DCTERMS.title).keys() >= {"nl", "en"}, resource
    for dataset in datasets:
        assert texts(graph, dataset, DCTERMS.description).keys() == {"nl", "en"}
        assert graph.value(dataset, DCTERMS.publisher) == publisher
        assert set(graph.objects(dataset, DCAT.distribution)) <= distributions
        assert graph.value(dataset, DCAT.contactPoint) is not None
    for distribution in distributions:
        assert str(graph.value(distribution, DCAT.accessURL)).startswith(BASE + "/")
        assert str(graph.value(distribution, DCAT.mediaType)).startswith(
            "https://www.iana.org/assignments/media-types/"
        )
        assert graph.value(distribution, DCTERMS.conformsTo) is not None
    assert texts(graph, URIRef(licence), DCTERMS.title) == dict(
        zip(("nl", "en"), LICENCE_TITLES[licence], strict=True)
    )


def test_every_feed_is_a_distribution_with_its_spec() -> None:
    graph = parsed(Publication(), TURTLE)
    urls = {
        str(graph.value(d, DCAT.accessURL)): {str(s) for s in graph.objects(d, DCTERMS.conformsTo)}
        for d in graph.subjects(RDF.type, DCAT.Distribution)
    }
    for path in (
        "/feeds/datex2/situations",
        "/feeds/datex2/measured-data",
        "/feeds/datex2/measurement-sites",
    ):
        assert urls[BASE + path] == {"http://datex2.eu/schema/3/d2Payload"}
    assert urls[BASE + "/feeds/wzdx"] == {
        "https://raw.githubusercontent.com/usdot-jpo-ode/wzdx/main/schemas/4.2/WorkZoneFeed.json"
    }
    assert "https://w3id.org/ldes/specification" in urls[BASE + "/ldes/tenants/gent/traffic"]
    assert BASE + "/feeds/waze" in urls
    encoded = "https%3A%2F%2Fsmartdatamodels.org%2FdataModel.Transportation%2FCityWork"
    assert BASE + f"/ngsi-ld/v1/entities?type={encoded}" in urls


def test_modified_dates_follow_the_entities() -> None:
    graph = parsed(Publication(), TURTLE)
    catalog = URIRef(f"{BASE}/catalog")
    assert literal(graph.value(catalog, DCTERMS.modified)) == MOMENT.replace(hour=10)
    roadworks = URIRef(f"{BASE}/catalog#dataset-roadworks")
    assert literal(graph.value(roadworks, DCTERMS.modified)) == MOMENT
    air = URIRef(f"{BASE}/catalog#dataset-air-quality")
    assert graph.value(air, DCTERMS.modified) is None


def test_empty_tenant_still_has_the_standard_datasets_and_no_contact_point() -> None:
    graph = parsed(Publication(), JSON_LD, types=[])
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == len(DATASETS)
    assert not set(graph.subjects(RDF.type, URIRef("http://www.w3.org/2006/vcard/ns#Kind")))


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/ld+json"),
        ("", "application/ld+json"),
        ("*/*", "application/ld+json"),
        ("text/turtle", "text/turtle"),
        ("application/n-quads", "application/n-quads"),
        ("application/rdf+xml", "application/rdf+xml"),
        ("application/json", "application/ld+json"),
        ("text/html, text/turtle;q=0.9, */*;q=0.1", "text/turtle"),
        ("application/ld+json;q=0.5, text/turtle", "text/turtle"),
        ("text/turtle;q=0, application/rdf+xml", "application/rdf+xml"),
        ("text/*", "text/turtle"),
        ("text/html", None),
        ("image/png, text/turtle;q=0", None),
    ],
)
def test_negotiation(accept: str | None, media_type: str | None) -> None:
    found = negotiate(accept)
    assert (found.media_type if found else None) == media_type


@pytest.mark.parametrize(
    ("iri", "name"),
    [(TRANSPORT + "CityWork", "CityWork"), ("urn:x#Thing", "Thing"), ("Plain", "Plain")],
)
def test_short_type(iri: str, name: str) -> None:
    assert short_type(iri) == name


@pytest.mark.parametrize(
    ("tenant", "stream_url"),
    [("", BASE + "/ldes/roadworks"), ("stad gent", BASE + "/ldes/tenants/stad%20gent/roadworks")],
)
def test_ldes_urls_follow_the_tenant(tenant: str, stream_url: str) -> None:
    graph = catalog_graph(Publication(), BASE, [], tenant)
    assert URIRef(stream_url) in set(graph.objects(None, DCAT.accessURL))
