"""Content negotiation and serialization of the LDES documents (RFC 9110 §12.5.1).

JSON-LD (the default, with a compact inline @context: nothing to fetch), Turtle, N-Quads and
N-Triples. Every document is one default graph, so its N-Quads are its N-Triples.
"""

from __future__ import annotations

from typing import Any

from rdflib import Graph

from feeds.ldes import LDES, PREFIXES, TREE

JSON_LD = "application/ld+json"
TURTLE = "text/turtle"
N_QUADS = "application/n-quads"
N_TRIPLES = "application/n-triples"
#: Offered types in the server's order of preference (ties in the Accept header).
OFFERED = (JSON_LD, TURTLE, N_QUADS, N_TRIPLES)
#: Names a client may use for one of the offered types.
ALIASES = {"application/json": JSON_LD}
_RDFLIB_FORMATS = {JSON_LD: "json-ld", TURTLE: "turtle", N_QUADS: "nt", N_TRIPLES: "nt"}

#: The compact @context of the JSON-LD documents: the prefixes and the TREE/LDES terms.
JSON_LD_CONTEXT: dict[str, Any] = {
    **{prefix: str(namespace) for prefix, namespace in PREFIXES.items()},
    "member": {"@id": str(TREE.member), "@type": "@id"},
    "view": {"@id": str(TREE.view), "@type": "@id"},
    "relation": {"@id": str(TREE.relation)},
    "node": {"@id": str(TREE.node), "@type": "@id"},
    "path": {"@id": str(TREE.path), "@type": "@id"},
    "timestampPath": {"@id": str(LDES.timestampPath), "@type": "@id"},
    "versionOfPath": {"@id": str(LDES.versionOfPath), "@type": "@id"},
    "retentionPolicy": {"@id": str(LDES.retentionPolicy), "@type": "@id"},
}


def _ranges(accept: str) -> list[tuple[str, float]]:
    """(media range, q) of an Accept header; malformed q values count as 0."""
    ranges = []
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        if not media_range:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        ranges.append((ALIASES.get(media_range.lower(), media_range.lower()), quality))
    return ranges


def _quality(offered: str, ranges: list[tuple[str, float]]) -> float:
    """The q of `offered`: that of the most specific range matching it (0 when none)."""
    kind = offered.split("/", 1)[0]
    best: tuple[int, float] | None = None
    for media_range, quality in ranges:
        if media_range == offered:
            specificity = 3
        elif media_range == f"{kind}/*":
            specificity = 2
        elif media_range == "*/*":
            specificity = 1
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best[1] if best else 0.0


def negotiate(accept: str | None) -> str | None:
    """The offered media type that suits an Accept header best; None if none is acceptable.

    No Accept header (or an empty one) means anything: JSON-LD.
    """
    if not accept or not accept.strip():
        return JSON_LD
    ranges = _ranges(accept)
    scored = [(_quality(offered, ranges), -rank, offered) for rank, offered in enumerate(OFFERED)]
    quality, _, chosen = max(scored)
    return chosen if quality > 0 else None


def serialize(graph: Graph, media_type: str) -> bytes:
    """The graph in one of the offered media types."""
    rdflib_format = _RDFLIB_FORMATS[media_type]
    if rdflib_format == "json-ld":
        text = graph.serialize(format="json-ld", context=JSON_LD_CONTEXT, auto_compact=True)
    else:
        text = graph.serialize(format=rdflib_format)
    return text.encode("utf-8")
