"""Device health: last seen, message rate, battery, dead letters and state, per device.

Read side (`device_health`): the devices known from the registry, from `device_activity`
and from their dead letters, with the message counts of `device_activity_recent` (10-minute
buckets the batch writer fills), the battery of the `Device` entity (or of an entity that
names the device in `refDevice`) and the per-device dead letters.

Write side (`refresh_device_states`): sets `deviceState` of the `Device` entities of devices
not heard from within `silent_after` to "silent" (Smart Data Models Device: deviceState is
free text, "ok" is what ingest writes). Ingest writes `deviceState` "ok" as a context
property (no observedAt) with every message, and the entity merge (storage/entities.py)
replaces a context property whatever the stored instance's observedAt: the next message
sets "ok" again. docs/device-health.md explains why `newest_observed_at` is left alone.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from ngsi.mapping import entity_id, format_datetime
from ngsi.vocabulary import DOMAIN_OF_TYPE, IngestVocabulary
from storage.entity_store import jsonb

#: Width of the buckets of device_activity_recent (stadspuls_activity_bucket, migration 0013).
ACTIVITY_BUCKET = timedelta(minutes=10)
#: The message rate is averaged over this window (or since the first message, if later).
RATE_WINDOW = timedelta(hours=24)
#: Buckets older than this are deleted by refresh_device_states.
RECENT_RETENTION = RATE_WINDOW + timedelta(hours=1)
#: Devices marked silent per transaction: row locks are held only that long.
REFRESH_CHUNK = 500

DEVICE_PREFIX = entity_id("Device", "")


class DeviceState(enum.StrEnum):
    """What device health makes of a device's last message."""

    OK = "ok"
    SILENT = "silent"
    NEVER_SEEN = "never-seen"


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """One device's health at a moment."""

    tenant: str
    device_id: str
    #: The device group (DeviceModel) of a registered device, else the Device entity's.
    model: str | None
    #: When its last decoded message was received (dead letters do not count).
    last_seen: datetime | None
    #: Messages received in the last hour, counted in whole 10-minute buckets.
    messages_last_hour: int
    #: Messages per hour over the last 24 hours, or since the first message if later.
    messages_per_hour: float
    #: Smart Data Models batteryLevel, 0..1, of the Device entity or a data entity.
    battery_level: float | None
    #: batteryVoltage in volts, when the device reports a voltage instead.
    battery_voltage: float | None
    #: Distinct dead-lettered messages of this device, and the newest one's reason and time.
    dead_letters: int
    last_dead_letter_reason: str | None
    last_dead_letter_at: datetime | None
    state: DeviceState


@dataclass(frozen=True, slots=True)
class _Terms:
    """The expanded attribute names device health reads and writes."""

    device_state: str
    device_level: str
    device_voltage: str
    device_model: str
    #: Per entity type, the names of data entities (the same term has one IRI per domain).
    levels: list[str]
    voltages: list[str]
    references: list[str]


def _terms() -> _Terms:
    vocabulary = IngestVocabulary()
    # Data entities of a type no domain lists expand under the default context.
    types = [*DOMAIN_OF_TYPE, "Unlisted"]

    def every(term: str) -> list[str]:
        return sorted({vocabulary.attribute(entity_type, term) for entity_type in types})

    return _Terms(
        device_state=vocabulary.attribute("Device", "deviceState"),
        device_level=vocabulary.attribute("Device", "batteryLevel"),
        device_voltage=vocabulary.attribute("Device", "batteryVoltage"),
        device_model=vocabulary.attribute("Device", "refDeviceModel"),
        levels=every("batteryLevel"),
        voltages=every("batteryVoltage"),
        references=every("refDevice"),
    )


TERMS = _terms()

# Every device anyone knows of: registered, heard from, or only dead-lettered. The state
# decides the order (silent ones first, longest silent first); the limit applies before the
# per-device look-ups, so a large fleet costs one pass over the device tables only.
_DEVICES = """
WITH known AS (
    SELECT tenant, device_id FROM devices
    UNION SELECT tenant, device_id FROM device_activity
    UNION SELECT tenant, device_id FROM dead_letters WHERE device_id IS NOT NULL
), ranked AS (
    SELECT k.tenant, k.device_id, d.model, a.first_message_at, a.last_message_at,
           CASE WHEN a.last_message_at IS NULL THEN 'never-seen'
                WHEN a.last_message_at < %(cutoff)s THEN 'silent'
                ELSE 'ok' END AS state
    FROM known AS k
    LEFT JOIN devices AS d ON d.tenant = k.tenant AND d.device_id = k.device_id
    LEFT JOIN device_activity AS a ON a.tenant = k.tenant AND a.device_id = k.device_id
    WHERE %(tenant)s::text IS NULL OR k.tenant = %(tenant)s
    ORDER BY CASE WHEN a.last_message_at IS NULL THEN 1
                  WHEN a.last_message_at < %(cutoff)s THEN 0 ELSE 2 END,
             a.last_message_at, k.tenant, k.device_id
    LIMIT %(limit)s
)
SELECT r.tenant, r.device_id, r.model, device.entity -> %(model_term)s ->> 'object',
       r.first_message_at, r.last_message_at,
       coalesce(recent.last_hour, 0), coalesce(recent.in_window, 0),
       device.entity -> %(level_term)s, device.entity -> %(voltage_term)s,
       letters.count, letters.reason, letters.last_at, r.state
FROM ranked AS r
LEFT JOIN entities AS device
    ON device.tenant = r.tenant COLLATE "C"
   AND device.id = (%(prefix)s || r.device_id) COLLATE "C"
LEFT JOIN LATERAL (
    SELECT sum(messages) FILTER (WHERE bucket >= %(hour_ago)s)::bigint AS last_hour,
           sum(messages)::bigint AS in_window
    FROM device_activity_recent
    WHERE tenant = r.tenant AND device_id = r.device_id
      AND bucket >= %(window_start)s AND bucket <= %(now)s
) AS recent ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS count,
           (array_agg(reason ORDER BY last_received_at DESC, id DESC))[1] AS reason,
           max(last_received_at) AS last_at
    FROM dead_letters
    WHERE tenant = r.tenant AND device_id = r.device_id
) AS letters ON true
ORDER BY CASE r.state WHEN 'silent' THEN 0 WHEN 'never-seen' THEN 1 ELSE 2 END,
         r.last_message_at, r.tenant, r.device_id
"""

# Battery attributes of data entities that name one of the devices in refDevice (a DL-PM
# reports batteryVoltage on its AirQualityObserved). No index helps here: one pass over
# the entities that carry a battery attribute at all.
_DATA_BATTERIES = """
SELECT e.tenant, reference.device, battery.key, battery.value
FROM entities AS e
CROSS JOIN LATERAL (
    SELECT value ->> 'object' AS device FROM jsonb_each(e.entity)
    WHERE key = ANY(%(references)s) AND jsonb_typeof(value) = 'object'
    LIMIT 1
) AS reference
CROSS JOIN LATERAL jsonb_each(e.entity) AS battery
WHERE e.tenant = ANY(%(tenants)s) AND e.entity ?| %(batteries)s
  AND reference.device = ANY(%(devices)s) AND battery.key = ANY(%(batteries)s)
"""

# Device entities of devices not heard from since the cutoff whose deviceState is not
# "silent" yet. SKIP LOCKED: a row ingest holds is being written because the device just
# spoke; the refresher never waits for ingest and so can never deadlock with it. Locking the
# device_activity row too makes PostgreSQL re-check last_message_at against a message
# committed after this statement's snapshot.
_MARK_SILENT = """
WITH candidates AS (
    SELECT e.tenant, e.id
    FROM device_activity AS a
    JOIN entities AS e
      ON e.tenant = a.tenant COLLATE "C" AND e.id = (%(prefix)s || a.device_id) COLLATE "C"
    WHERE a.last_message_at < %(cutoff)s
      AND (%(tenant)s::text IS NULL OR a.tenant = %(tenant)s)
      AND (e.entity -> %(term)s ->> 'value') IS DISTINCT FROM 'silent'
    ORDER BY e.tenant, e.id
    LIMIT %(chunk)s
    FOR UPDATE OF e, a SKIP LOCKED
)
UPDATE entities AS e
SET entity = jsonb_set(e.entity, ARRAY[%(term)s], %(silent)s),
    -- A multi-instance deviceState (only the API could write one) becomes one instance.
    instance_keys = CASE WHEN jsonb_typeof(e.entity -> %(term)s) = 'array'
        THEN ARRAY(SELECT key FROM unnest(e.instance_keys) AS key
                   WHERE left(key, length(%(term)s) + 1) <> %(term)s || ' ')
        ELSE e.instance_keys END,
    modified_at = now()
FROM candidates AS c
WHERE e.tenant = c.tenant AND e.id = c.id
  AND (e.entity -> %(term)s ->> 'value') IS DISTINCT FROM 'silent'
"""

_PRUNE_RECENT = """
DELETE FROM device_activity_recent
WHERE bucket < %(before)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
"""


def _number(attribute: Any) -> tuple[float, str] | None:
    """The numeric value of an attribute (first instance of several) and its observedAt."""
    instance = attribute[0] if isinstance(attribute, list) and attribute else attribute
    if not isinstance(instance, dict):
        return None
    value = instance.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value), str(instance.get("observedAt") or "")


def _model(registered: str | None, reference: str | None) -> str | None:
    if registered:
        return registered
    prefix = entity_id("DeviceModel", "")
    if reference and reference.startswith(prefix):
        return reference[len(prefix) :]
    return reference


def message_rate(in_window: int, first_seen: datetime | None, now: datetime) -> float:
    """Messages per hour over RATE_WINDOW, or since the first message when that is later."""
    if first_seen is None:
        return 0.0
    span = min(RATE_WINDOW, max(now - first_seen, timedelta(hours=1)))
    return in_window / (span / timedelta(hours=1))


def _data_batteries(
    conn: psycopg.Connection, devices: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """(tenant, device id) → (level, voltage) from data entities, the newest of each."""
    if not devices:
        return {}
    wanted = {(tenant, DEVICE_PREFIX + device) for tenant, device in devices}
    rows = conn.execute(
        _DATA_BATTERIES,
        {
            "references": TERMS.references,
            "batteries": TERMS.levels + TERMS.voltages,
            "tenants": sorted({tenant for tenant, _ in devices}),
            "devices": sorted({device for _, device in wanted}),
        },
    ).fetchall()
    newest: dict[tuple[str, str, bool], tuple[str, float]] = {}
    for tenant, device, key, value in rows:
        number = _number(value)
        if (tenant, device) not in wanted or number is None:
            continue
        slot = (tenant, device, key in TERMS.levels)
        held = newest.get(slot)
        if held is None or held[0] <= number[1]:
            newest[slot] = (number[1], number[0])
    result: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    for (tenant, device, is_level), (_, reading) in newest.items():
        key = (tenant, device.removeprefix(DEVICE_PREFIX))
        level, voltage = result.get(key, (None, None))
        result[key] = (reading, voltage) if is_level else (level, reading)
    return result


def device_health(
    conn: psycopg.Connection,
    *,
    tenant: str | None = None,
    now: datetime,
    silent_after: timedelta,
    limit: int,
) -> list[DeviceHealth]:
    """Up to `limit` devices (of `tenant`, or all), silent first, then never seen, then ok."""
    parameters = {
        "cutoff": now - silent_after,
        "tenant": tenant,
        "now": now,
        "hour_ago": now - timedelta(hours=1),
        "window_start": now - RATE_WINDOW,
        "prefix": DEVICE_PREFIX,
        "model_term": TERMS.device_model,
        "level_term": TERMS.device_level,
        "voltage_term": TERMS.device_voltage,
        "limit": limit,
    }
    with conn.transaction():
        rows = conn.execute(_DEVICES, parameters).fetchall()
        lacking = [
            (row[0], row[1]) for row in rows if _number(row[8]) is None and _number(row[9]) is None
        ]
        fallback = _data_batteries(conn, lacking)
    health = []
    for (
        row_tenant, device_id, registered_model, model_reference, first_seen, last_seen,
        last_hour, in_window, level, voltage, letters, reason, letter_at, state,
    ) in rows:  # fmt: skip
        level_value = _number(level)
        voltage_value = _number(voltage)
        levels = fallback.get((row_tenant, device_id), (None, None))
        health.append(
            DeviceHealth(
                tenant=row_tenant,
                device_id=device_id,
                model=_model(registered_model, model_reference),
                last_seen=last_seen,
                messages_last_hour=int(last_hour),
                messages_per_hour=message_rate(int(in_window), first_seen, now),
                battery_level=level_value[0] if level_value else levels[0],
                battery_voltage=voltage_value[0] if voltage_value else levels[1],
                dead_letters=int(letters),
                last_dead_letter_reason=reason,
                last_dead_letter_at=letter_at,
                state=DeviceState(state),
            )
        )
    return health


def refresh_device_states(
    conn: psycopg.Connection,
    *,
    now: datetime,
    silent_after: timedelta,
    tenant: str | None = None,
) -> int:
    """Mark the Device entities of devices silent for longer than `silent_after`; how many.

    Every tenant's devices, or only `tenant`'s. Ones already "silent" are left alone, so
    change notifications fire once per silence. Works in short transactions of REFRESH_CHUNK
    devices and never waits for ingest's row locks. Also deletes message buckets older than
    RECENT_RETENTION. Needs a connection outside any transaction (each chunk commits).
    """
    status = conn.info.transaction_status
    if status != TransactionStatus.IDLE:
        raise RuntimeError(f"refresh_device_states needs an idle connection; it is {status.name}")
    silent = {
        "type": "Property",
        "value": str(DeviceState.SILENT),
        "observedAt": format_datetime(now),
    }
    parameters = {
        "prefix": DEVICE_PREFIX,
        "cutoff": now - silent_after,
        "term": TERMS.device_state,
        "silent": jsonb(silent),
        "chunk": REFRESH_CHUNK,
        "tenant": tenant,
    }
    marked = 0
    while True:
        with conn.transaction():
            changed = conn.execute(_MARK_SILENT, parameters).rowcount
        marked += changed
        # Fewer than a chunk: done (a row skipped as locked is looked at on the next call).
        if changed < REFRESH_CHUNK:
            break
    with conn.transaction():
        conn.execute(_PRUNE_RECENT, {"before": now - RECENT_RETENTION, "tenant": tenant})
    return marked
