"""The DCAT-AP catalogue (`/catalog`): every dataset Stadspuls offers and each feed serving it.

Pure: rdflib graphs from a Publication (publisher, licence), the base URL and the tenant's
entity types. A dcat:Catalog with a dcat:Dataset per dataset (roadworks, traffic state, air
quality, alerts, the temporal history, and the current entities of each entity type the tenant
has) and a dcat:Distribution per feed and format, each with dcterms:license, titles in nl and
en, accessURL (and downloadURL for files), mediaType (IANA) and conformsTo (the spec). The
NGSI-LD API is a dcat:DataService. Every node is an IRI (no blank nodes), so one input gives
one document. Content negotiation: JSON-LD, Turtle, N-Quads, RDF/XML (`negotiate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF

from ngsi.vocabulary import IngestVocabulary
from storage.feed_store import TypeSummary

from .publication import LICENCE_TITLES, Publication

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
IANA = "https://www.iana.org/assignments/media-types/"
EU = "http://publications.europa.eu/resource/authority/"
#: The specifications the distributions conform to.
DATEX_II = "http://datex2.eu/schema/3/d2Payload"
WZDX = "https://raw.githubusercontent.com/usdot-jpo-ode/wzdx/main/schemas/4.2/WorkZoneFeed.json"
WAZE_CIFS = "https://developers.google.com/waze/data-feed/cifs-specification"
LDES = "https://w3id.org/ldes/specification"
OSLO_VERKEERSMETINGEN = "https://data.vlaanderen.be/doc/applicatieprofiel/verkeersmetingen/"
SOSA = "http://www.w3.org/ns/sosa/"
NGSI_LD = "https://www.etsi.org/deliver/etsi_gs/CIM/001_099/009/01.08.01_60/gs_CIM009v010801p.pdf"
#: The LDES streams (feeds/routes_ldes.py): `/ldes/<stream>`, `/ldes/tenants/<tenant>/<stream>`.
LDES_ROOT = "{ldes}"
LDES_PATHS = {name: f"{LDES_ROOT}/{name}" for name in ("traffic", "air-quality", "roadworks")}

Text = tuple[str, str]  # (nl, en)


@dataclass(frozen=True, slots=True)
class DistributionSpec:
    """One feed of a dataset."""

    key: str
    path: str
    media_type: str
    title: Text
    conforms_to: tuple[str, ...]
    #: A document to download (a feed), not an API to query.
    is_file: bool = True


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset: titles, descriptions, theme, the entity types it covers, its feeds."""

    key: str
    title: Text
    description: Text
    theme: str
    entity_types: tuple[str, ...]
    distributions: tuple[DistributionSpec, ...]


def _entities(entity_type: str) -> DistributionSpec:
    return DistributionSpec(
        f"ngsi-ld-{entity_type}",
        f"/ngsi-ld/v1/entities?type={entity_type}",
        "application/ld+json",
        (f"NGSI-LD-entiteiten {entity_type}", f"NGSI-LD {entity_type} entities"),
        (NGSI_LD,),
        is_file=False,
    )


def _temporal(entity_type: str) -> DistributionSpec:
    return DistributionSpec(
        f"ngsi-ld-temporal-{entity_type}",
        f"/ngsi-ld/v1/temporal/entities?type={entity_type}",
        "application/ld+json",
        (f"Historiek van {entity_type} (NGSI-LD)", f"History of {entity_type} (NGSI-LD)"),
        (NGSI_LD,),
        is_file=False,
    )


def _ldes(stream: str, title: Text, *vocabularies: str) -> DistributionSpec:
    return DistributionSpec(
        f"ldes-{stream}", LDES_PATHS[stream], "application/ld+json", title,
        (LDES, *vocabularies), is_file=False,
    )  # fmt: skip


DATASETS = (
    DatasetSpec(
        "roadworks",
        ("Wegenwerken en afsluitingen", "Roadworks and road closures"),
        (
            "Wegenwerken (CityWork) met periode, zone, aard, rijstrookhinder en afsluiting.",
            "Roadworks (CityWork) with period, zone, work nature, lane impact and closure.",
        ),
        "TRAN",
        ("CityWork",),
        (
            DistributionSpec(
                "datex2-situations", "/feeds/datex2/situations", "application/xml",
                ("DATEX II-situaties", "DATEX II situations"), (DATEX_II,),
            ),
            DistributionSpec(
                "wzdx", "/feeds/wzdx", "application/geo+json",
                ("WZDx 4.2 WorkZoneFeed", "WZDx 4.2 WorkZoneFeed"), (WZDX,),
            ),
            DistributionSpec(
                "waze", "/feeds/waze", "application/json",
                ("Waze CIFS-afsluitingen", "Waze CIFS closures"), (WAZE_CIFS,),
            ),
            _ldes("roadworks", ("Wegenwerken als LDES", "Roadworks as an LDES")),
            _entities("CityWork"),
        ),
    ),
    DatasetSpec(
        "traffic-state",
        ("Verkeerstoestand", "Traffic state"),
        (
            "Intensiteit, snelheid, bezetting en congestie per meetpunt, met de historiek.",
            "Flow, speed, occupancy and congestion per measurement site, with the history.",
        ),
        "TRAN",
        ("TrafficFlowObserved",),
        (
            DistributionSpec(
                "datex2-measured-data", "/feeds/datex2/measured-data", "application/xml",
                ("DATEX II-meetgegevens", "DATEX II measured data"), (DATEX_II,),
            ),
            DistributionSpec(
                "datex2-measurement-sites", "/feeds/datex2/measurement-sites", "application/xml",
                ("DATEX II-meetpunten", "DATEX II measurement sites"), (DATEX_II,),
            ),
            _ldes(
                "traffic", ("Verkeersmetingen (OSLO) als LDES", "Traffic measurements (OSLO) as an LDES"),  # noqa: E501
                OSLO_VERKEERSMETINGEN,
            ),
            _entities("TrafficFlowObserved"),
        ),
    ),
    DatasetSpec(
        "air-quality",
        ("Luchtkwaliteit", "Air quality"),
        (
            "Metingen van fijn stof en andere polluenten per meetstation.",
            "Particulate matter and other pollutant observations per station.",
        ),
        "ENVI",
        ("AirQualityObserved",),
        (
            _ldes("air-quality", ("Luchtkwaliteit (SOSA) als LDES", "Air quality (SOSA) as an LDES"), SOSA),  # noqa: E501
            _entities("AirQualityObserved"),
            _temporal("AirQualityObserved"),
        ),
    ),
    DatasetSpec(
        "alerts",
        ("Meldingen", "Alerts"),
        (
            "Meldingen bij overschreden drempels, congestie, stille sensoren en wegenwerken.",
            "Alerts on thresholds, congestion, silent sensors and roadworks.",
        ),
        "TRAN",
        ("Alert",),
        (_entities("Alert"),),
    ),
    DatasetSpec(
        "temporal-history",
        ("Historiek van alle metingen", "History of every measurement"),
        (
            "De tijdreeksen van alle entiteiten, met aggregatie (NGSI-LD temporal API).",
            "The time series of every entity, with aggregation (NGSI-LD temporal API).",
        ),
        "TRAN",
        (),
        (
            DistributionSpec(
                "ngsi-ld-temporal", "/ngsi-ld/v1/temporal/entities", "application/ld+json",
                ("NGSI-LD temporal API", "NGSI-LD temporal API"), (NGSI_LD,), is_file=False,
            ),
        ),
    ),
)  # fmt: skip


def short_type(entity_type: str) -> str:
    """The local name of an expanded entity type IRI (`.../CityWork` → `CityWork`)."""
    return entity_type.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def type_datasets(types: Sequence[TypeSummary]) -> list[DatasetSpec]:
    """A dataset per entity type of the tenant: its current entities and their history."""
    datasets = []
    for summary in types:
        name = short_type(summary.type)
        datasets.append(
            DatasetSpec(
                f"entities-{name}",
                (f"Entiteiten van het type {name}", f"Entities of type {name}"),
                (
                    f"De actuele toestand en historiek van {summary.count} {name}-entiteiten.",
                    f"The current state and history of {summary.count} {name} entities.",
                ),
                "TRAN",
                (name,),
                (_entities(quote(summary.type, safe="")), _temporal(quote(summary.type, safe=""))),
            )
        )
    return datasets


class _Builder:
    """Adds the catalogue's triples to one graph."""

    def __init__(self, publication: Publication, base_url: str, tenant: str) -> None:
        self.graph = Graph()
        self.ldes_root = f"/ldes/tenants/{quote(tenant, safe='')}" if tenant else "/ldes"
        self.publication = publication
        self.base = base_url.rstrip("/")
        self.catalog = URIRef(f"{self.base}/catalog")
        self.licence = URIRef(publication.license)
        for prefix, namespace in (("dcat", DCAT), ("dcterms", DCTERMS), ("foaf", FOAF)):
            self.graph.bind(prefix, namespace)
        self.graph.bind("vcard", VCARD)

    def node(self, fragment: str) -> URIRef:
        return URIRef(f"{self.catalog}#{fragment}")

    def texts(self, subject: URIRef, predicate: URIRef, text: Text) -> None:
        self.graph.add((subject, predicate, Literal(text[0], lang="nl")))
        self.graph.add((subject, predicate, Literal(text[1], lang="en")))

    def agents(self) -> tuple[URIRef, URIRef | None]:
        graph = self.graph
        publisher = self.node("publisher")
        graph.add((publisher, RDF.type, FOAF.Agent))
        graph.add((publisher, FOAF.name, Literal(self.publication.publisher)))
        graph.add((self.licence, RDF.type, DCTERMS.LicenseDocument))
        if self.publication.license in LICENCE_TITLES:
            self.texts(self.licence, DCTERMS.title, LICENCE_TITLES[self.publication.license])
        if not self.publication.contact_email:
            return publisher, None
        contact = self.node("contact")
        graph.add((contact, RDF.type, VCARD.Kind))
        graph.add((contact, VCARD.fn, Literal(self.publication.publisher)))
        graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{self.publication.contact_email}")))
        return publisher, contact

    def distribution(self, dataset: DatasetSpec, spec: DistributionSpec) -> URIRef:
        graph = self.graph
        node = self.node(f"distribution-{dataset.key}-{spec.key}")
        url = URIRef(self.base + spec.path.replace(LDES_ROOT, self.ldes_root))
        graph.add((node, RDF.type, DCAT.Distribution))
        self.texts(node, DCTERMS.title, spec.title)
        graph.add((node, DCAT.accessURL, url))
        if spec.is_file:
            graph.add((node, DCAT.downloadURL, url))
        else:
            graph.add((node, DCAT.accessService, self.node("ngsi-ld-api")))
        graph.add((node, DCAT.mediaType, URIRef(IANA + spec.media_type)))
        for standard in spec.conforms_to:
            graph.add((node, DCTERMS.conformsTo, URIRef(standard)))
        graph.add((node, DCTERMS.license, self.licence))
        return node

    def dataset(
        self,
        spec: DatasetSpec,
        publisher: URIRef,
        contact: URIRef | None,
        modified: datetime | None,
    ) -> URIRef:
        graph = self.graph
        node = self.node(f"dataset-{spec.key}")
        graph.add((self.catalog, DCAT.dataset, node))
        graph.add((node, RDF.type, DCAT.Dataset))
        graph.add((node, DCTERMS.identifier, Literal(str(node))))
        self.texts(node, DCTERMS.title, spec.title)
        self.texts(node, DCTERMS.description, spec.description)
        graph.add((node, DCTERMS.publisher, publisher))
        graph.add((node, DCTERMS.license, self.licence))
        graph.add((node, DCAT.theme, URIRef(f"{EU}data-theme/{spec.theme}")))
        graph.add((node, DCTERMS.accrualPeriodicity, URIRef(f"{EU}frequency/CONT")))
        if contact is not None:
            graph.add((node, DCAT.contactPoint, contact))
        if modified is not None:
            graph.add((node, DCTERMS.modified, Literal(modified, datatype=XSD.dateTime)))
        for distribution in spec.distributions:
            graph.add((node, DCAT.distribution, self.distribution(spec, distribution)))
        return node


def _modified(spec: DatasetSpec, types: Sequence[TypeSummary]) -> datetime | None:
    vocabulary = IngestVocabulary()
    covered = {vocabulary.entity_type(name) for name in spec.entity_types}
    moments = [
        t.modified_at
        for t in types
        if t.modified_at is not None and (not spec.entity_types or t.type in covered)
    ]
    return max(moments) if moments else None


def catalog_graph(
    publication: Publication, base_url: str, types: Sequence[TypeSummary], tenant: str = ""
) -> Graph:
    """The DCAT-AP catalogue of one tenant's datasets and feeds."""
    builder = _Builder(publication, base_url, tenant)
    graph, catalog = builder.graph, builder.catalog
    graph.add((catalog, RDF.type, DCAT.Catalog))
    builder.texts(catalog, DCTERMS.title, ("Stadspuls open data", "Stadspuls open data"))
    note = f" Tenant: stuur NGSILD-Tenant: {tenant}." if tenant else ""
    note_en = f" Tenant: send NGSILD-Tenant: {tenant}." if tenant else ""
    builder.texts(
        catalog,
        DCTERMS.description,
        (
            "Sensordata van de stad: verkeer, luchtkwaliteit, wegenwerken en meldingen." + note,
            "The city's sensor data: traffic, air quality, roadworks and alerts." + note_en,
        ),
    )
    publisher, contact = builder.agents()
    graph.add((catalog, DCTERMS.publisher, publisher))
    graph.add((catalog, DCTERMS.license, builder.licence))
    graph.add((catalog, FOAF.homepage, URIRef(builder.base + "/docs")))
    for language in ("NLD", "ENG"):
        graph.add((catalog, DCTERMS.language, URIRef(f"{EU}language/{language}")))
    newest = max((t.modified_at for t in types if t.modified_at is not None), default=None)
    if newest is not None:
        graph.add((catalog, DCTERMS.modified, Literal(newest, datatype=XSD.dateTime)))
    datasets = [
        builder.dataset(spec, publisher, contact, _modified(spec, types))
        for spec in (*DATASETS, *type_datasets(types))
    ]
    service = builder.node("ngsi-ld-api")
    graph.add((catalog, DCAT.service, service))
    graph.add((service, RDF.type, DCAT.DataService))
    builder.texts(service, DCTERMS.title, ("NGSI-LD API", "NGSI-LD API"))
    graph.add((service, DCAT.endpointURL, URIRef(builder.base + "/ngsi-ld/v1")))
    graph.add((service, DCAT.endpointDescription, URIRef(builder.base + "/openapi.json")))
    graph.add((service, DCTERMS.conformsTo, URIRef(NGSI_LD)))
    graph.add((service, DCTERMS.license, builder.licence))
    graph.add((service, DCTERMS.publisher, publisher))
    for dataset in datasets:
        graph.add((service, DCAT.servesDataset, dataset))
    return graph
