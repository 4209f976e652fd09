"""Reading the stored CityWork entities as roadworks (feeds/roadworks.py) for the exports."""

from __future__ import annotations

from datetime import datetime

import psycopg

from feeds.roadworks import CITYWORK_TYPE, Roadwork, roadwork_from_entity
from ngsi.vocabulary import IngestVocabulary

#: The CityWork attributes the feeds read (feeds/roadworks.py documents them).
ROADWORK_ATTRIBUTES = (
    "name", "location", "startDate", "endDate", "description", "workNature", "workState",
    "closure", "lanesClosed", "workDisposition", "source", "version", "dateLastReported",
)  # fmt: skip

_ROADWORKS = """
SELECT id, entity, modified_at FROM entities
WHERE tenant = %(tenant)s AND (type = %(type)s OR %(type)s = ANY(extra_types))
ORDER BY id
"""

_REVISION = """
SELECT count(*), max(modified_at) FROM entities
WHERE tenant = %(tenant)s AND (type = %(type)s OR %(type)s = ANY(extra_types))
"""


def _names(vocabulary: IngestVocabulary) -> dict[str, str]:
    return {vocabulary.attribute(CITYWORK_TYPE, name): name for name in ROADWORK_ATTRIBUTES}


def load_roadworks(conn: psycopg.Connection, tenant: str) -> list[Roadwork]:
    """Every roadwork of a tenant that an export can place (location and startDate), by id."""
    vocabulary = IngestVocabulary()
    names = _names(vocabulary)
    rows = conn.execute(
        _ROADWORKS, {"tenant": tenant, "type": vocabulary.entity_type(CITYWORK_TYPE)}
    ).fetchall()
    roadworks = []
    for entity_id, document, modified_at in rows:
        short = {names[key]: value for key, value in (document or {}).items() if key in names}
        roadwork = roadwork_from_entity({"id": entity_id, **short}, modified_at)
        if roadwork is not None:
            roadworks.append(roadwork)
    return roadworks


def roadworks_revision(conn: psycopg.Connection, tenant: str) -> tuple[int, datetime | None]:
    """How many CityWork entities a tenant has and when one last changed (for ETags)."""
    row = conn.execute(
        _REVISION, {"tenant": tenant, "type": IngestVocabulary().entity_type(CITYWORK_TYPE)}
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]
