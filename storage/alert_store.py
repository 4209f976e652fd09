"""Alert rules, their per-entity states and their transitions in PostgreSQL (0011_alerts.sql)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

#: (tenant, rule id, entity id), as alerts/state.py keys its states.
StateKey = tuple[str, str, str]

_UPSERT_RULE = """
INSERT INTO alert_rules (tenant, id, rule, enabled) VALUES (%s, %s, %s, %s)
ON CONFLICT (tenant, id) DO UPDATE
SET rule = EXCLUDED.rule, enabled = EXCLUDED.enabled, modified_at = now()
RETURNING (xmax = 0)
"""

_LOCK_STATES = """
SELECT tenant, rule_id, entity_id, state FROM alert_states
WHERE (tenant, rule_id, entity_id) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
ORDER BY tenant, rule_id, entity_id
FOR UPDATE
"""

_UPSERT_STATES = """
INSERT INTO alert_states (tenant, rule_id, entity_id, state)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::jsonb[])
ON CONFLICT (tenant, rule_id, entity_id) DO UPDATE
SET state = EXCLUDED.state, updated_at = now()
"""

_INSERT_EVENTS = """
INSERT INTO alert_events (tenant, rule_id, entity_id, alert_id, change, at, value, detail)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::timestamptz[], %s::float8[], %s::text[])
"""


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule row: its JSON form (alerts.rules.parse_rule reads it) and when it last changed."""

    tenant: str
    id: str
    document: dict[str, Any]
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One recorded transition."""

    tenant: str
    rule_id: str
    entity_id: str
    alert_id: str
    change: str
    at: datetime
    value: float | None
    detail: str


def load_rules(conn: psycopg.Connection, tenant: str | None = None) -> list[StoredRule]:
    """Every rule (of one tenant, when given), in id order."""
    if tenant is None:
        rows = conn.execute(
            "SELECT tenant, id, rule, modified_at FROM alert_rules ORDER BY tenant, id"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT tenant, id, rule, modified_at FROM alert_rules WHERE tenant = %s ORDER BY id",
            [tenant],
        ).fetchall()
    return [StoredRule(*row) for row in rows]


def rules_revision(conn: psycopg.Connection) -> tuple[int, datetime | None]:
    """Changes when any rule is added, changed or deleted (count and newest change)."""
    row = conn.execute("SELECT count(*), max(modified_at) FROM alert_rules").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def save_rule(
    conn: psycopg.Connection, tenant: str, rule_id: str, document: dict[str, Any], enabled: bool
) -> bool:
    """Create or replace a rule; True when it was created."""
    row = conn.execute(_UPSERT_RULE, [tenant, rule_id, Jsonb(document), enabled]).fetchone()
    return bool(row and row[0])


def delete_rule(conn: psycopg.Connection, tenant: str, rule_id: str) -> bool:
    """Delete a rule and its states; False when there was none."""
    cursor = conn.execute(
        "DELETE FROM alert_rules WHERE tenant = %s AND id = %s", [tenant, rule_id]
    )
    return cursor.rowcount > 0


def reset_states(conn: psycopg.Connection, tenant: str, rule_id: str) -> None:
    """Forget a rule's states (it was changed: it starts afresh)."""
    conn.execute("DELETE FROM alert_states WHERE tenant = %s AND rule_id = %s", [tenant, rule_id])


def lock_states(conn: psycopg.Connection, keys: Iterable[StateKey]) -> dict[StateKey, Any]:
    """The stored states of `keys`, locked until the transaction ends (concurrent workers)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    tenants, rules, entities = (list(column) for column in zip(*keys, strict=True))
    rows = conn.execute(_LOCK_STATES, [tenants, rules, entities]).fetchall()
    return {(tenant, rule, entity): state for tenant, rule, entity, state in rows}


def firing_states(conn: psycopg.Connection, tenant: str) -> dict[StateKey, Any]:
    """The states of a tenant's silence checks: all of them, locked (the timer's transaction)."""
    rows = conn.execute(
        "SELECT tenant, rule_id, entity_id, state FROM alert_states WHERE tenant = %s"
        " ORDER BY rule_id, entity_id FOR UPDATE",
        [tenant],
    ).fetchall()
    return {(t, rule, entity): state for t, rule, entity, state in rows}


def save_states(conn: psycopg.Connection, states: dict[StateKey, dict[str, Any]]) -> None:
    """Write states (their JSON form) back."""
    if not states:
        return
    keys = sorted(states)
    conn.execute(
        _UPSERT_STATES,
        [
            [key[0] for key in keys],
            [key[1] for key in keys],
            [key[2] for key in keys],
            [Jsonb(states[key]) for key in keys],
        ],
    )


def record_events(conn: psycopg.Connection, events: Sequence[AlertEvent]) -> None:
    """Append transitions to alert_events."""
    if not events:
        return
    columns = list(zip(*(astuple(event) for event in events), strict=True))
    conn.execute(_INSERT_EVENTS, [list(column) for column in columns])


def list_events(
    conn: psycopg.Connection, tenant: str, rule_id: str | None = None, limit: int = 100
) -> list[AlertEvent]:
    """The newest transitions of a tenant (of one rule), newest first."""
    rows = conn.execute(
        "SELECT tenant, rule_id, entity_id, alert_id, change, at, value, detail"
        " FROM alert_events WHERE tenant = %s AND (%s::text IS NULL OR rule_id = %s)"
        " ORDER BY id DESC LIMIT %s",
        [tenant, rule_id, rule_id, limit],
    ).fetchall()
    return [AlertEvent(*row) for row in rows]


_ENTITY_INFO = """
SELECT e.id, substr(d.entity -> %(model_key)s ->> 'object', 25) AS model,
       e.entity -> %(location_key)s -> 'value' AS location
FROM entities AS e
LEFT JOIN entities AS d ON d.tenant = e.tenant AND d.id = (
    SELECT a.value ->> 'object' FROM jsonb_each(e.entity) AS a
    WHERE a.value ->> 'object' LIKE 'urn:ngsi-ld:Device:%%' LIMIT 1)
WHERE e.tenant = %(tenant)s AND e.id = ANY(%(ids)s)
"""


def entity_places(
    conn: psycopg.Connection,
    tenant: str,
    entity_ids: Sequence[str],
    *,
    model_key: str,
    location_key: str,
) -> dict[str, tuple[str | None, Any]]:
    """entity id → (device model, GeoJSON location) for scoping rules by model and area.

    The model is the `refDeviceModel` (`urn:ngsi-ld:DeviceModel:<model>`) of the Device entity
    the entity's refDevice points at.
    """
    rows = conn.execute(
        _ENTITY_INFO,
        {"tenant": tenant, "ids": list(entity_ids), "model_key": model_key,
         "location_key": location_key},
    ).fetchall()  # fmt: skip
    return {entity_id: (model, location) for entity_id, model, location in rows}


def last_seen(conn: psycopg.Connection, tenant: str) -> dict[str, tuple[str, datetime]]:
    """entity id → (type, newest observation time) of a tenant's observed entities."""
    rows = conn.execute(
        "SELECT id, type, newest_observed_at FROM entities"
        " WHERE tenant = %s AND newest_observed_at IS NOT NULL",
        [tenant],
    ).fetchall()
    return {entity_id: (kind, seen) for entity_id, kind, seen in rows}
