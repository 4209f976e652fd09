"""Writing imported roadworks (CityWork) and their Alerts into `entities`, and `feed_state`.

The entities are stored exactly as POST /ngsi-ld/v1/entities stores them with the Smart Data
Models @context of their type: ngsi.entity_input.read_entity expands the short names with
the same terms ingest uses (ngsi/vocabulary.py). The importer owns only the attributes it
writes: attributes added to the entity through the API stay. Rows are locked in id order,
as ingest and the API lock them, so concurrent writers queue rather than deadlock; the
subscription triggers on `entities` see every change, so NGSI-LD subscriptions on CityWork
and Alert are notified of imported roadworks too.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Literal

import psycopg

from feeds.gipod import HindranceVersion
from feeds.roadwork_alerts import (
    ALERT_ATTRIBUTES,
    ALERT_TYPE,
    is_active,
    roadwork_alert,
    roadwork_alert_id,
)
from feeds.roadworks import CITYWORK_TYPE, Roadwork, roadwork_entity, roadwork_from_entity
from ngsi.entity_input import read_entity
from ngsi.vocabulary import IngestVocabulary
from storage.entities import instance_keys
from storage.entity_store import StoredEntity, jsonb
from storage.roadwork_store import ROADWORK_ATTRIBUTES

Outcome = Literal["created", "updated", "unchanged", "older"]

_LOCK = """
SELECT id, entity FROM entities WHERE tenant = %s AND id = ANY(%s) ORDER BY id FOR UPDATE
"""
# Type, further types and scope belong to whoever created the entity; an update replaces
# the document (already merged with the attributes the importer does not own).
_UPSERT = """
INSERT INTO entities AS current (tenant, id, type, extra_types, entity, instance_keys)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant, id) DO UPDATE
SET entity = EXCLUDED.entity, instance_keys = EXCLUDED.instance_keys, modified_at = now()
"""
_ENSURE_TENANT = "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING"
_LOAD_STATE = "SELECT state FROM feed_state WHERE name = %s"
_SAVE_STATE = """
INSERT INTO feed_state (name, state) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
"""


def load_feed_state(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """The state a feed importer saved under `name` ({} the first time)."""
    row = conn.execute(_LOAD_STATE, (name,)).fetchone()
    return dict(row[0]) if row and isinstance(row[0], dict) else {}


def save_feed_state(conn: psycopg.Connection, name: str, state: dict[str, Any]) -> None:
    """Remember `state` under `name` (in the caller's transaction)."""
    conn.execute(_SAVE_STATE, (name, jsonb(state)))


def stored_form(entity: dict[str, Any], entity_type: str) -> StoredEntity:
    """A normalized entity with short names in the form the API stores it."""
    vocabulary = IngestVocabulary()
    return read_entity(entity, partial(vocabulary.attribute, entity_type))


def _owned(entity_type: str, names: tuple[str, ...]) -> frozenset[str]:
    vocabulary = IngestVocabulary()
    return frozenset(vocabulary.attribute(entity_type, name) for name in names)


def _moment(attribute: Any) -> datetime | None:
    value = attribute.get("value") if isinstance(attribute, dict) else None
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _merged(
    entity: StoredEntity, previous: dict[str, Any] | None, owned: frozenset[str]
) -> dict[str, Any]:
    """The new document: the attributes the importer does not own kept from `previous`, an
    attribute that existed before keeping its createdAt."""
    if previous is None:
        return entity.attributes
    document = {name: value for name, value in previous.items() if name not in owned}
    for name, value in entity.attributes.items():
        before = previous.get(name)
        if isinstance(before, dict) and isinstance(value, dict) and "createdAt" in before:
            value = {**value, "createdAt": before["createdAt"]}
        document[name] = value
    return document


def _write(
    conn: psycopg.Connection,
    tenant: str,
    entity: StoredEntity,
    previous: dict[str, Any] | None,
    owned: frozenset[str],
) -> None:
    document = _merged(entity, previous, owned)
    keys, _ = instance_keys(document)
    conn.execute(
        _UPSERT,
        (tenant, entity.id, entity.types[0], entity.types[1:], jsonb(document), keys),
    )


def apply_version(conn: psycopg.Connection, tenant: str, version: HindranceVersion) -> Outcome:
    """Write one hindrance version as its CityWork and Alert, unless the stored CityWork is
    as new or newer (its dateLastReported is the version's generatedAtTime)."""
    vocabulary = IngestVocabulary()
    roadwork = version.roadwork
    alert_id = roadwork_alert_id(roadwork.id)
    conn.execute(_ENSURE_TENANT, (tenant,))
    rows = conn.execute(_LOCK, (tenant, sorted([roadwork.id, alert_id]))).fetchall()
    stored: dict[str, dict[str, Any]] = {row[0]: row[1] or {} for row in rows}
    previous = stored.get(roadwork.id)
    if previous is not None:
        reported = _moment(previous.get(vocabulary.attribute(CITYWORK_TYPE, "dateLastReported")))
        if reported is not None and version.generated_at <= reported:
            return "unchanged" if version.generated_at == reported else "older"
    city_work = stored_form(roadwork_entity(roadwork), CITYWORK_TYPE)
    _write(conn, tenant, city_work, previous, _owned(CITYWORK_TYPE, ROADWORK_ATTRIBUTES))
    issued = version.created_at or version.generated_at
    write_alert(conn, tenant, roadwork, stored.get(alert_id), issued, version.generated_at)
    return "updated" if previous is not None else "created"


def write_alert(
    conn: psycopg.Connection,
    tenant: str,
    roadwork: Roadwork,
    previous: dict[str, Any] | None,
    issued: datetime,
    at: datetime,
) -> None:
    """Raise, update or resolve the roadwork's Alert (its row locked by the caller), keeping
    when it was first issued and when it was resolved; `at` is when this state was known."""
    vocabulary = IngestVocabulary()

    def stored_moment(name: str) -> datetime | None:
        return _moment(previous.get(vocabulary.attribute(ALERT_TYPE, name))) if previous else None

    issued = stored_moment("dateIssued") or issued
    ended = None
    if not is_active(roadwork):
        state = previous.get(vocabulary.attribute(ALERT_TYPE, "alertState")) if previous else None
        was_resolved = isinstance(state, dict) and state.get("value") == "resolved"
        ended = (stored_moment("validTo") if was_resolved else None) or at
    alert = stored_form(roadwork_alert(roadwork, issued, ended), ALERT_TYPE)
    _write(conn, tenant, alert, previous, _owned(ALERT_TYPE, ALERT_ATTRIBUTES))


_STALE_ALERTS = """
SELECT c.tenant, c.id, c.modified_at
FROM entities AS c
LEFT JOIN entities AS a
       ON a.tenant = c.tenant AND a.id = 'urn:ngsi-ld:Alert:' || substr(c.id, 13)
WHERE (c.type = %(type)s OR %(type)s = ANY(c.extra_types))
  AND (a.id IS NULL OR a.modified_at < c.modified_at)
ORDER BY c.tenant, c.id
LIMIT %(limit)s
"""


def sync_roadwork_alerts(conn: psycopg.Connection, limit: int = 500) -> int:
    """Raise or update the Alert of every CityWork changed since its Alert was written, such
    as those written through the NGSI-LD API (the importer writes its own at once); the
    number of Alerts written. Commits."""
    vocabulary = IngestVocabulary()
    names = {vocabulary.attribute(CITYWORK_TYPE, name): name for name in ROADWORK_ATTRIBUTES}
    stale = conn.execute(
        _STALE_ALERTS, {"type": vocabulary.entity_type(CITYWORK_TYPE), "limit": limit}
    ).fetchall()
    written = 0
    for tenant, city_work_id, modified_at in stale:
        alert_id = roadwork_alert_id(city_work_id)
        with conn.transaction():
            rows = conn.execute(_LOCK, (tenant, sorted([city_work_id, alert_id]))).fetchall()
            stored: dict[str, dict[str, Any]] = {row[0]: row[1] or {} for row in rows}
            document = stored.get(city_work_id)
            if document is None:
                continue  # deleted meanwhile
            short = {names[key]: value for key, value in document.items() if key in names}
            roadwork = roadwork_from_entity({"id": city_work_id, **short})
            if roadwork is None:
                continue  # no location or startDate: nothing to place an alert at
            write_alert(conn, tenant, roadwork, stored.get(alert_id), modified_at, modified_at)
            written += 1
    conn.commit()
    return written
