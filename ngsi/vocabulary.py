"""The terms ingest writes, expanded to IRIs with the Smart Data Models domain contexts.

Entities are stored with expanded attribute names and types (docs/ngsi-api.md): the Smart
Data Models domains give one term several IRIs (`temperature`, `refDevice`, `category` ...),
so a term only means something together with the context of its entity type. The NGSI-LD
core context comes last and wins, as it does for API callers (ETSI GS CIM 009, 5.5.7).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

CORE_CONTEXT_FILE = "ngsi-ld-core-context-v1.8.jsonld"
#: Smart Data Models domain of each entity type Stadspuls writes.
DOMAIN_OF_TYPE = {
    "TrafficFlowObserved": "Transportation",
    "ItemFlowObserved": "Transportation",
    "CrowdFlowObserved": "Transportation",
    "RoadSegment": "Transportation",
    "CityWork": "Transportation",
    "AirQualityObserved": "Environment",
    "Device": "Device",
    "DeviceModel": "Device",
    "Alert": "Alert",
}
DOMAINS = ("Alert", "Device", "Environment", "Transportation")


def domain_context_file(domain: str) -> str:
    """The bundled file of a Smart Data Models domain context."""
    return f"sdm-dataModel.{domain}.context.jsonld"


@cache
def bundled_document(file_name: str) -> dict[str, Any]:
    """A JSON-LD context document bundled in `ngsi/contexts/`."""
    text = resources.files("ngsi").joinpath("contexts", file_name).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _flat_terms(context: dict[str, Any]) -> dict[str, str]:
    """Term → IRI of a flat context, compact IRIs (`ngsi-ld:x`) resolved through its prefixes."""
    raw = {
        term: definition if isinstance(definition, str) else definition.get("@id", "")
        for term, definition in context.items()
        if not term.startswith("@") and isinstance(definition, str | dict)
    }

    def resolve(iri: str) -> str:
        prefix, colon, suffix = iri.partition(":")
        if colon and not suffix.startswith("//") and prefix in raw and prefix != iri:
            return raw[prefix] + suffix
        return iri

    return {term: resolve(iri) for term, iri in raw.items() if iri and not iri.startswith("@")}


@cache
def core_terms() -> dict[str, str]:
    """Term → IRI of the NGSI-LD core context."""
    return _flat_terms(bundled_document(CORE_CONTEXT_FILE)["@context"])


def default_vocabulary() -> str:
    """The core context's @vocab: where unknown terms expand to."""
    vocab: str = bundled_document(CORE_CONTEXT_FILE)["@context"]["@vocab"]
    return vocab


@cache
def domain_terms(domain: str) -> dict[str, str]:
    """Term → IRI of a Smart Data Models domain, with the core terms winning."""
    terms = _flat_terms(bundled_document(domain_context_file(domain))["@context"])
    terms.update(core_terms())
    return terms


def _terms_of_type(entity_type: str) -> dict[str, str]:
    domain = DOMAIN_OF_TYPE.get(entity_type)
    return domain_terms(domain) if domain else core_terms()


def is_iri(term: str) -> bool:
    """Whether `term` is already an absolute IRI (`scheme:...`), not a term to expand."""
    scheme, colon, rest = term.partition(":")
    return (
        bool(colon)
        and scheme.isascii()
        and scheme.isalpha()
        and (rest.startswith("//") or scheme == "urn")
    )


class IngestVocabulary:
    """Expands the terms of ingest's readings, memoized: this runs for every reading."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, str], str] = {}
        self._types: dict[str, str] = {}

    def attribute(self, entity_type: str, term: str) -> str:
        """The IRI of attribute `term` of an entity of (short) type `entity_type`."""
        key = (entity_type, term)
        iri = self._attributes.get(key)
        if iri is None:
            iri = self._attributes[key] = expand_term(_terms_of_type(entity_type), term)
        return iri

    def entity_type(self, entity_type: str) -> str:
        """The IRI of a (short) entity type."""
        iri = self._types.get(entity_type)
        if iri is None:
            iri = self._types[entity_type] = expand_term(_terms_of_type(entity_type), entity_type)
        return iri


def expand_term(terms: dict[str, str], term: str) -> str:
    """`term` through `terms`, else as an IRI if it is one, else under the default @vocab."""
    iri = terms.get(term)
    if iri is not None:
        return iri
    if is_iri(term):
        return term
    return default_vocabulary() + term
