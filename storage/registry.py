"""The device registry tables: device groups (device models) and registered devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
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


def load_registry(
    conn: psycopg.Connection,
) -> tuple[list[tuple[str, DeviceConfig]], list[DeviceGroup]]:
    """All registered devices (with their device keys) and device groups."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        device_rows = cursor.execute(
            "SELECT * FROM devices ORDER BY profile, device_key"
        ).fetchall()
        group_rows = cursor.execute("SELECT * FROM device_groups ORDER BY name").fetchall()
    devices = [
        (
            row["device_key"],
            DeviceConfig(
                **_shared_fields(row),
                device_id=row["device_id"],
                model=row["model"],
                entity_name=row["entity_name"],
            ),
        )
        for row in device_rows
    ]
    groups = [
        DeviceGroup(
            **_shared_fields(row),
            name=row["name"],
            key_prefix=row["key_prefix"],
            autoprovision=row["autoprovision"],
        )
        for row in group_rows
    ]
    return devices, groups
