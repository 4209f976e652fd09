"""Reading the versions of the roadworks (table `roadwork_versions`, migration 0015) for the
append-only roadworks LDES: which time windows hold versions, and one window's versions.

Both queries run on the index (tenant, version_at, position): a window is one index range,
and finding the windows that hold versions is one existence probe per window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from feeds.ldes_members import RoadworkVersion
from feeds.roadworks import CITYWORK_TYPE, roadwork_from_entity
from ngsi.vocabulary import IngestVocabulary
from storage.roadwork_store import ROADWORK_ATTRIBUTES

_WINDOWS = """
SELECT w.start FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz,
                                    %(step)s::interval) AS w(start)
WHERE EXISTS (
    SELECT 1 FROM roadwork_versions v
    WHERE v.tenant = %(tenant)s AND v.version_at >= w.start AND v.version_at < w.start + %(step)s
)
ORDER BY w.start
"""

_VERSIONS = """
SELECT entity_id, version_at, document, deleted FROM roadwork_versions
WHERE tenant = %(tenant)s AND version_at >= %(start)s AND version_at < %(end)s
ORDER BY version_at, position
OFFSET %(offset)s LIMIT %(limit)s
"""


def roadwork_version_windows(
    conn: psycopg.Connection, tenant: str, first: datetime, last: datetime, step: timedelta
) -> list[datetime]:
    """The starts of the windows from `first` to `last` (inclusive) that hold versions."""
    parameters = {"tenant": tenant, "first": first, "last": last, "step": step}
    return [row[0] for row in conn.execute(_WINDOWS, parameters).fetchall()]


def _roadwork_version(
    entity_id: str, version_at: datetime, document: dict[str, Any], deleted: bool,
    names: dict[str, str],
) -> RoadworkVersion:  # fmt: skip
    if deleted:
        return RoadworkVersion(entity_id, version_at, None, deleted=True)
    attributes = document.get("entity") or {}
    short = {names[key]: value for key, value in attributes.items() if key in names}
    roadwork = roadwork_from_entity({"id": entity_id, **short}, version_at)
    return RoadworkVersion(entity_id, version_at, roadwork)


def load_roadwork_versions(
    conn: psycopg.Connection, tenant: str, start: datetime, end: datetime, limit: int,
    offset: int,
) -> list[RoadworkVersion]:  # fmt: skip
    """The versions of a tenant's roadworks stamped in [start, end), in stream order (version
    time, then recording order), paged; a deletion or an unplaceable state has no roadwork."""
    vocabulary = IngestVocabulary()
    names = {vocabulary.attribute(CITYWORK_TYPE, name): name for name in ROADWORK_ATTRIBUTES}
    parameters = {"tenant": tenant, "start": start, "end": end, "limit": limit, "offset": offset}
    rows = conn.execute(_VERSIONS, parameters).fetchall()
    return [
        _roadwork_version(entity_id, version_at, document or {}, deleted, names)
        for entity_id, version_at, document, deleted in rows
    ]
