"""What the LDES (feeds/ldes.py) reads for its observation streams: readings from the
observations table, with the latest state of their entities for context. The roadworks
stream reads its CityWork versions from storage/roadwork_versions.py.

Queries use the observations index (tenant, entity_type, attribute, observed_at): a window
is one index range per type and attribute, and finding the windows that hold members is one
existence probe per window, however many readings there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from feeds.ldes_members import STREAM_READINGS, EntityContext, ObservationRecord
from ngsi.vocabulary import IngestVocabulary

_SELECTED = """
o.tenant = %(tenant)s AND o.entity_type = ANY(%(types)s) AND o.attribute = ANY(%(attributes)s)
AND o.value_num IS NOT NULL
"""

_WINDOWS = f"""
SELECT w.start FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz,
                                    %(step)s::interval) AS w(start)
WHERE EXISTS (
    SELECT 1 FROM observations o
    WHERE {_SELECTED} AND o.observed_at >= w.start AND o.observed_at < w.start + %(step)s
)
ORDER BY w.start
"""

_PAGE = f"""
SELECT o.entity_id, o.entity_type, o.attribute, o.dataset_id, o.observed_at, o.value_num,
       o.unit_code
FROM observations o
WHERE {_SELECTED} AND o.observed_at >= %(start)s AND o.observed_at < %(end)s
ORDER BY o.observed_at, o.entity_id, o.attribute, o.dataset_id
OFFSET %(offset)s LIMIT %(limit)s
"""

_REVISION = f"""
SELECT count(*), max(o.observed_at) FROM observations o
WHERE {_SELECTED} AND o.observed_at >= %(start)s AND o.observed_at < %(end)s
"""

_ENTITIES = "SELECT id, entity FROM entities WHERE tenant = %(tenant)s AND id = ANY(%(ids)s)"


@dataclass(frozen=True, slots=True)
class _Selection:
    """The expanded types and attributes of one stream, and their short names."""

    types: list[str]
    attributes: list[str]
    short_types: dict[str, str]
    short_attributes: dict[str, str]


def _selection(stream: str) -> _Selection:
    vocabulary = IngestVocabulary()
    short_types: dict[str, str] = {}
    short_attributes: dict[str, str] = {}
    for entity_type, attributes in STREAM_READINGS[stream].items():
        short_types[vocabulary.entity_type(entity_type)] = entity_type
        for attribute in attributes:
            short_attributes[vocabulary.attribute(entity_type, attribute)] = attribute
    return _Selection(list(short_types), list(short_attributes), short_types, short_attributes)


def _parameters(tenant: str, selection: _Selection, **extra: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "types": selection.types,
        "attributes": selection.attributes,
        **extra,
    }


def observation_windows(
    conn: psycopg.Connection, tenant: str, stream: str, first: datetime, last: datetime,
    step: timedelta,
) -> list[datetime]:  # fmt: skip
    """The starts of the windows from `first` to `last` (inclusive) that hold readings."""
    parameters = _parameters(tenant, _selection(stream), first=first, last=last, step=step)
    return [row[0] for row in conn.execute(_WINDOWS, parameters).fetchall()]


def observation_revision(
    conn: psycopg.Connection, tenant: str, stream: str, start: datetime, end: datetime
) -> tuple[int, datetime | None]:
    """How many readings a window holds and the newest one's time (for ETags)."""
    parameters = _parameters(tenant, _selection(stream), start=start, end=end)
    row = conn.execute(_REVISION, parameters).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _text(document: dict[str, Any], key: str, member: str = "value") -> str | None:
    node = document.get(key)
    if isinstance(node, list):
        node = node[0] if node else None
    if isinstance(node, dict) and isinstance(node.get(member), str):
        return str(node[member])
    return None


def _period(document: dict[str, Any], vocabulary: IngestVocabulary, kind: str) -> timedelta | None:
    names = ("dateObservedFrom", "dateObservedTo")
    values = [_text(document, vocabulary.attribute(kind, name)) for name in names]
    try:
        begin, end = (
            datetime.fromisoformat((value or "").replace("Z", "+00:00")) for value in values
        )
    except ValueError:
        return None
    return end - begin if end > begin else None


def entity_context(document: dict[str, Any], entity_type: str) -> EntityContext:
    """What a member takes from its entity's latest state (expanded attribute names)."""
    vocabulary = IngestVocabulary()

    def name(term: str) -> str:
        return vocabulary.attribute(entity_type, term)

    location = document.get(name("location"))
    geometry = location.get("value") if isinstance(location, dict) else None
    sampled = _text(document, name("refRoadSegment"), "object") or _text(
        document, name("refTrafficFlowObserved"), "object"
    )
    return EntityContext(
        vehicle_type=_text(document, name("vehicleType")) or _text(document, name("itemType")),
        device=_text(document, name("refDevice"), "object"),
        road_segment=sampled,
        location=geometry if isinstance(geometry, dict) else None,
        period=_period(document, vocabulary, entity_type),
    )


def observation_page(
    conn: psycopg.Connection, tenant: str, stream: str, start: datetime, end: datetime,
    offset: int, limit: int,
) -> list[ObservationRecord]:  # fmt: skip
    """Readings of a window in member order (time, entity, attribute, dataset), paged."""
    selection = _selection(stream)
    parameters = _parameters(tenant, selection, start=start, end=end, offset=offset, limit=limit)
    rows = conn.execute(_PAGE, parameters).fetchall()
    ids = sorted({row[0] for row in rows})
    documents: dict[str, dict[str, Any]] = dict(
        conn.execute(_ENTITIES, {"tenant": tenant, "ids": ids}).fetchall()
    )
    contexts: dict[str, EntityContext] = {}
    records = []
    for entity_id, type_iri, attribute_iri, dataset_id, observed_at, value, unit_code in rows:
        entity_type = selection.short_types[type_iri]
        if entity_id not in contexts:
            contexts[entity_id] = entity_context(documents.get(entity_id) or {}, entity_type)
        records.append(
            ObservationRecord(
                entity_id=entity_id,
                entity_type=entity_type,
                attribute=selection.short_attributes[attribute_iri],
                attribute_iri=attribute_iri,
                dataset_id=dataset_id,
                observed_at=observed_at,
                value=value,
                unit_code=unit_code,
                context=contexts[entity_id],
            )
        )
    return records
