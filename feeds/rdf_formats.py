"""RDF answers by content negotiation (RFC 9110 §12.5.1): JSON-LD, Turtle, N-Quads, RDF/XML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rdflib import Graph


@dataclass(frozen=True, slots=True)
class RdfFormat:
    """A media type and the rdflib serializer that writes it."""

    media_type: str
    serializer: str


JSON_LD = RdfFormat("application/ld+json", "json-ld")
TURTLE = RdfFormat("text/turtle", "turtle")
# A graph without named graphs: its N-Triples lines are N-Quads lines too.
N_QUADS = RdfFormat("application/n-quads", "nt")
N_TRIPLES = RdfFormat("application/n-triples", "nt")
RDF_XML = RdfFormat("application/rdf+xml", "xml")
FORMATS = {f.media_type: f for f in (JSON_LD, TURTLE, N_QUADS, N_TRIPLES, RDF_XML)}
#: Also answered: plain JSON clients get JSON-LD.
ALIASES = {"application/json": JSON_LD, "application/*": JSON_LD, "text/*": TURTLE}
DEFAULT = JSON_LD
#: Media types offered, for a 406 answer.
OFFERED = ", ".join(FORMATS)


def _ranges(accept: str) -> list[tuple[float, int, str]]:
    ranges = []
    for position, item in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type and quality > 0:
            ranges.append((-quality, position, media_type.lower()))
    return sorted(ranges)


def negotiate(accept: str | None) -> RdfFormat | None:
    """The format to answer an Accept header with; None when nothing acceptable is offered."""
    if not accept or not accept.strip():
        return DEFAULT
    for _, _, media_type in _ranges(accept):
        if media_type == "*/*":
            return DEFAULT
        found = FORMATS.get(media_type) or ALIASES.get(media_type)
        if found is not None:
            return found
    return None


def serialize(graph: Graph, rdf_format: RdfFormat, context: dict[str, Any] | None = None) -> bytes:
    """The graph in `rdf_format` (JSON-LD compacted with `context` when given)."""
    if rdf_format.serializer == "json-ld" and context is not None:
        return graph.serialize(format="json-ld", context=context, auto_compact=True).encode()
    return graph.serialize(format=rdf_format.serializer, encoding="utf-8")
