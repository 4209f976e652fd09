"""What the feeds' catalogue and push need to know about the stored entities, per tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from feeds.roadworks import CITYWORK_TYPE
from ngsi.vocabulary import IngestVocabulary

_ROADWORK_REVISIONS = """
SELECT tenant, count(*), max(modified_at) FROM entities
WHERE type = %(type)s OR %(type)s = ANY(extra_types)
GROUP BY tenant ORDER BY tenant
"""

_TYPE_SUMMARIES = """
SELECT t.type, count(*), max(e.modified_at)
FROM entities AS e CROSS JOIN LATERAL unnest(array_prepend(e.type, e.extra_types)) AS t(type)
WHERE e.tenant = %(tenant)s
GROUP BY t.type ORDER BY t.type
"""


@dataclass(frozen=True, slots=True)
class TypeSummary:
    """One entity type of a tenant (expanded IRI): how many entities, newest modification."""

    type: str
    count: int
    modified_at: datetime | None


def roadwork_revisions(conn: psycopg.Connection) -> dict[str, tuple[int, datetime | None]]:
    """Per tenant with CityWork entities: how many, and when one last changed."""
    rows = conn.execute(
        _ROADWORK_REVISIONS, {"type": IngestVocabulary().entity_type(CITYWORK_TYPE)}
    ).fetchall()
    return {tenant: (int(count), modified) for tenant, count, modified in rows}


def type_summaries(conn: psycopg.Connection, tenant: str) -> list[TypeSummary]:
    """Every entity type of a tenant with its entity count and newest modification."""
    rows = conn.execute(_TYPE_SUMMARIES, {"tenant": tenant}).fetchall()
    return [TypeSummary(type_, int(count), modified) for type_, count, modified in rows]
