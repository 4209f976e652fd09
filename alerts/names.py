"""Short display names for alert details."""

from __future__ import annotations


def short_name(attribute: str) -> str:
    """The last segment of an attribute IRI, for details: '.../pm25' → 'pm25'."""
    return attribute.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
