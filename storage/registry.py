"""The device registry tables: device groups (device models) and registered devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from devices.model import AttributeMapping, DeviceConfig, DeviceGroup

_UPSERT_GROUP = """
INSERT INTO device_groups (name, profile, key_prefix, tenant, entity_type, attributes,
                           static_attributes, longitude, latitude, apikey, autoprovision)
VALUES (%(name)s, %(profile)s, %(key_prefix)s, %(tenant)s, %(entity_type)s, %(attributes)s,
        %(static_attributes)s, %(longitude)s, %(latitude)s, %(apikey)s, %(autoprovision)s)
ON CONFLICT (name) DO UPDATE
SET (profile, key_prefix, tenant, entity_type, attributes, static_attributes, longitude,
     latitude, apikey, autoprovision, modified_at)
  = (EXCLUDED.profile, EXCLUDED.key_prefix, EXCLUDED.tenant, EXCLUDED.entity_type,
     EXCLUDED.attributes, EXCLUDED.static_attributes, EXCLUDED.longitude, EXCLUDED.latitude,
     EXCLUDED.apikey, EXCLUDED.autoprovision, now())
"""

_UPSERT_DEVICE = """
INSERT INTO devices (profile, device_key, device_id, tenant, model, entity_type, entity_name,
                     attributes, static_attributes, longitude, latitude, apikey)
VALUES (%(profile)s, %(device_key)s, %(device_id)s, %(tenant)s, %(model)s, %(entity_type)s,
        %(entity_name)s, %(attributes)s, %(static_attributes)s, %(longitude)s, %(latitude)s,
        %(apikey)s)
ON CONFLICT (profile, device_key) DO UPDATE
SET (device_id, tenant, model, entity_type, entity_name, attributes, static_attributes,
     longitude, latitude, apikey, modified_at)
  = (EXCLUDED.device_id, EXCLUDED.tenant, EXCLUDED.model, EXCLUDED.entity_type,
     EXCLUDED.entity_name, EXCLUDED.attributes, EXCLUDED.static_attributes, EXCLUDED.longitude,
     EXCLUDED.latitude, EXCLUDED.apikey, now())
"""


# The same insert without the update: provisioning must not overwrite a registered device.
_INSERT_DEVICE = _UPSERT_DEVICE.split("ON CONFLICT", 1)[0]


class DuplicateDevice(ValueError):
    """Devices whose (tenant, device id) or (profile, device key) is registered already."""

    def __init__(self, taken: Sequence[str]) -> None:
        super().__init__("already registered: " + ", ".join(taken))
        self.taken = list(taken)


class GroupInUse(ValueError):
    """A device group that registered devices still name as their model."""

    def __init__(self, name: str, devices: int) -> None:
        super().__init__(f"device group {name!r} is the model of {devices} registered devices")
        self.devices = devices


@dataclass(frozen=True, slots=True)
class SilentDevice:
    """A device not heard from since a moment: registered (profile set) or only seen before."""

    tenant: str
    device_id: str
    profile: str | None
    device_key: str | None
    model: str | None
    #: None for a registered device that never sent anything.
    last_message_at: datetime | None


def _attributes_json(attributes: Mapping[str, AttributeMapping]) -> Jsonb:
    return Jsonb({key: asdict(mapping) for key, mapping in attributes.items()})


def _attributes_from_json(data: Mapping[str, Any]) -> Mapping[str, AttributeMapping]:
    return MappingProxyType({key: AttributeMapping(**value) for key, value in data.items()})


def _shared_parameters(item: DeviceConfig | DeviceGroup) -> dict[str, Any]:
    """Columns devices and groups have in common."""
    longitude, latitude = item.location if item.location is not None else (None, None)
    return {
        "profile": item.profile,
        "tenant": item.tenant,
        "entity_type": item.entity_type,
        "attributes": _attributes_json(item.attributes),
        "static_attributes": Jsonb(dict(item.static_attributes)),
        "longitude": longitude,
        "latitude": latitude,
        "apikey": item.apikey,
    }


def _shared_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments devices and groups have in common."""
    location = (row["longitude"], row["latitude"]) if row["longitude"] is not None else None
    return {
        "profile": row["profile"],
        "tenant": row["tenant"],
        "entity_type": row["entity_type"],
        "attributes": _attributes_from_json(row["attributes"]),
        "static_attributes": MappingProxyType(row["static_attributes"]),
        "location": location,
        "apikey": row["apikey"],
    }


def write_registry(
    conn: psycopg.Connection,
    devices: Sequence[tuple[str, DeviceConfig]],
    groups: Sequence[DeviceGroup],
) -> None:
    """Insert or update devices (by profile and device key) and groups (by name), then commit."""
    ordered_groups = sorted(groups, key=lambda group: group.name)
    ordered_devices = sorted(devices, key=lambda item: (item[1].profile, item[0]))
    with conn.transaction(), conn.cursor() as cursor:
        if ordered_groups:
            cursor.executemany(
                _UPSERT_GROUP,
                [
                    {
                        **_shared_parameters(group),
                        "name": group.name,
                        "key_prefix": group.key_prefix,
                        "autoprovision": group.autoprovision,
                    }
                    for group in ordered_groups
                ],
            )
        if ordered_devices:
            cursor.executemany(
                _UPSERT_DEVICE,
                [
                    {
                        **_shared_parameters(device),
                        "device_key": device_key,
                        "device_id": device.device_id,
                        "model": device.model,
                        "entity_name": device.entity_name,
                    }
                    for device_key, device in ordered_devices
                ],
            )


def _device(row: Mapping[str, Any]) -> tuple[str, DeviceConfig]:
    """A devices row as (device key, DeviceConfig)."""
    device = DeviceConfig(
        **_shared_fields(row),
        device_id=row["device_id"],
        model=row["model"],
        entity_name=row["entity_name"],
    )
    return row["device_key"], device


def _group(row: Mapping[str, Any]) -> DeviceGroup:
    """A device_groups row as a DeviceGroup."""
    return DeviceGroup(
        **_shared_fields(row),
        name=row["name"],
        key_prefix=row["key_prefix"],
        autoprovision=row["autoprovision"],
    )


def load_registry(
    conn: psycopg.Connection,
) -> tuple[list[tuple[str, DeviceConfig]], list[DeviceGroup]]:
    """All registered devices (with their device keys) and device groups."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        device_rows = cursor.execute(
            "SELECT * FROM devices ORDER BY profile, device_key"
        ).fetchall()
        group_rows = cursor.execute("SELECT * FROM device_groups ORDER BY name").fetchall()
    return [_device(row) for row in device_rows], [_group(row) for row in group_rows]


def list_devices(
    conn: psycopg.Connection,
    *,
    tenant: str | None = None,
    model: str | None = None,
    profile: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[int, list[tuple[str, DeviceConfig]]]:
    """(total count, one page of (device key, device)) ordered by tenant and device id."""
    filters = {"tenant": tenant, "model": model, "profile": profile}
    where = """
        WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
          AND (%(model)s::text IS NULL OR model = %(model)s)
          AND (%(profile)s::text IS NULL OR profile = %(profile)s)
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        total = cursor.execute(f"SELECT count(*) AS n FROM devices {where}", filters).fetchone()
        rows = cursor.execute(
            f"SELECT * FROM devices {where} ORDER BY tenant, device_id"
            " LIMIT %(limit)s OFFSET %(offset)s",
            {**filters, "limit": limit, "offset": offset},
        ).fetchall()
    return (total["n"] if total else 0), [_device(row) for row in rows]


def get_device(
    conn: psycopg.Connection, tenant: str, device_id: str
) -> tuple[str, DeviceConfig] | None:
    """The device `device_id` of `tenant` with its device key, or None."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            "SELECT * FROM devices WHERE tenant = %s AND device_id = %s", [tenant, device_id]
        ).fetchone()
    return _device(row) if row else None


def delete_device(conn: psycopg.Connection, tenant: str, device_id: str) -> bool:
    """Remove a registered device; False when there was none."""
    with conn.transaction():
        cursor = conn.execute(
            "DELETE FROM devices WHERE tenant = %s AND device_id = %s", [tenant, device_id]
        )
        return cursor.rowcount > 0


def insert_devices(conn: psycopg.Connection, devices: Sequence[tuple[str, DeviceConfig]]) -> None:
    """Register new devices, all or none; DuplicateDevice names those registered already."""
    tenants = [device.tenant for _, device in devices]
    ids = [device.device_id for _, device in devices]
    profiles = [device.profile for _, device in devices]
    keys = [key for key, _ in devices]
    try:
        with conn.transaction(), conn.cursor() as cursor:
            taken = cursor.execute(
                """
                SELECT tenant, device_id, profile, device_key FROM devices
                WHERE (tenant, device_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
                   OR (profile, device_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
                ORDER BY tenant, device_id
                """,
                [tenants, ids, profiles, keys],
            ).fetchall()
            if taken:
                raise DuplicateDevice(
                    [f"{device_id} ({profile} key {key!r})" for _, device_id, profile, key in taken]
                )
            cursor.executemany(
                _INSERT_DEVICE,
                [
                    {
                        **_shared_parameters(device),
                        "device_key": key,
                        "device_id": device.device_id,
                        "model": device.model,
                        "entity_name": device.entity_name,
                    }
                    for key, device in devices
                ],
            )
    except psycopg.errors.UniqueViolation as error:  # registered concurrently
        raise DuplicateDevice([str(error.diag.message_detail or error)]) from None


def list_groups(
    conn: psycopg.Connection, *, tenant: str | None = None, profile: str | None = None
) -> list[DeviceGroup]:
    """Device groups, optionally of one tenant and one profile, by name."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            """
            SELECT * FROM device_groups
            WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
              AND (%(profile)s::text IS NULL OR profile = %(profile)s)
            ORDER BY name
            """,
            {"tenant": tenant, "profile": profile},
        ).fetchall()
    return [_group(row) for row in rows]


def get_group(conn: psycopg.Connection, name: str) -> DeviceGroup | None:
    """The device group called `name`, or None."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute("SELECT * FROM device_groups WHERE name = %s", [name]).fetchone()
    return _group(row) if row else None


def delete_group(conn: psycopg.Connection, name: str) -> bool:
    """Remove a device group; GroupInUse while devices name it (the registry would not load)."""
    with conn.transaction():
        row = conn.execute("SELECT count(*) FROM devices WHERE model = %s", [name]).fetchone()
        if row and row[0]:
            raise GroupInUse(name, int(row[0]))
        return conn.execute("DELETE FROM device_groups WHERE name = %s", [name]).rowcount > 0


def silent_devices(
    conn: psycopg.Connection, since: datetime, tenant: str | None = None
) -> list[SilentDevice]:
    """Devices whose last message is older than `since`, and registered ones never heard from."""
    with conn.transaction(), conn.cursor() as cursor:
        rows = cursor.execute(
            """
            SELECT coalesce(d.tenant, a.tenant), coalesce(d.device_id, a.device_id),
                   d.profile, d.device_key, d.model, a.last_message_at
            FROM devices AS d
            FULL JOIN device_activity AS a ON a.tenant = d.tenant AND a.device_id = d.device_id
            WHERE (a.last_message_at IS NULL OR a.last_message_at < %(since)s)
              AND (%(tenant)s::text IS NULL OR coalesce(d.tenant, a.tenant) = %(tenant)s)
            ORDER BY a.last_message_at NULLS FIRST, 1, 2
            """,
            {"since": since, "tenant": tenant},
        ).fetchall()
    return [SilentDevice(*row) for row in rows]
