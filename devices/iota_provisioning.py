"""FIWARE IoT Agent provisioning payloads ⇄ DeviceGroup / DeviceConfig (pure, no I/O).

Follows the iotagent-node-lib "Config group API" and "Device API" (doc/api.md): a config
group (`services` or `groups`) is identified by its `apikey`; a device by its `device_id`
within the `Fiware-Service` (the tenant). Measures reach us over MQTT on
`/json/<apikey>/<device_id>/attrs`, so a group becomes a DeviceGroup of the `iotagent-json`
profile with key prefix `<apikey>/`, and a device gets the key `<apikey>/<device_id>`.

Kept: apikey, entity_type (alias `type`), attributes (object_id, name, type, metadata.unitCode),
static_attributes (a `location` geo:point becomes the default location), autoprovision (default
true, as in the IoT Agent), entity_name, device apikey. Accepted and ignored: resource, cbroker,
cbHost, trust, lazy, commands, internal_attributes, explicitAttrs, timestamp, transport,
expressions and the other members (the MQTT topic carries no resource; commands and lazy
attributes need a southbound this service does not have).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from devices.iota_attributes import (
    ProvisioningError,
    attribute_to_iota,
    attributes_from_iota,
    items_of,
    list_field,
    object_field,
    statics_from_iota,
    statics_to_iota,
    text_field,
    topic_level,
)
from devices.model import DeviceConfig, DeviceGroup

IOTA_PROFILE = "iotagent-json"
GROUP_NAME_PREFIX = "iota-"
#: The IoT Agent JSON's default resource; reported for every group, since none is stored.
DEFAULT_RESOURCE = "/iot/json"
#: The entity type the IoT Agent gives devices of a group without one.
DEFAULT_ENTITY_TYPE = "Thing"
#: Same convention as ngsi.mapping.entity_id (`urn:ngsi-ld:<Type>:<local id>`).
ENTITY_ID_PREFIX = "urn:ngsi-ld:"
#: Protocols whose measures are not IoT Agent JSON; a device provisioned with one would
#: only ever produce dead letters.
FOREIGN_PROTOCOLS = ("ul", "ultralight", "lwm2m", "opcua", "sigfox", "lorawan")


def group_name(apikey: str) -> str:
    """The registry name of the device group an IoT Agent config group becomes."""
    return f"{GROUP_NAME_PREFIX}{apikey}"


def device_key(apikey: str, device_id: str) -> str:
    """The iotagent-json device key of `device_id` under `apikey`."""
    return f"{apikey}/{device_id}"


def group_apikey(group: DeviceGroup) -> str:
    """The apikey of an iotagent-json group (its key prefix without the slash)."""
    return group.apikey or group.key_prefix.rstrip("/")


def _mappings(item: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    return attributes_from_iota(list_field(item, "attributes", where), f"{where}.attributes")


# ---------------------------------------------------------------- groups


def _autoprovision(item: Mapping[str, Any], where: str, default: bool) -> bool:
    value = item.get("autoprovision", default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # the IoT Agent also takes the string forms
    if not isinstance(value, bool):
        raise ProvisioningError(f"{where}.autoprovision: expected true or false, got {value!r}")
    return value


def group_from_iota(item: Mapping[str, Any], tenant: str, where: str) -> DeviceGroup:
    """One IoT Agent config group of service `tenant` as a DeviceGroup."""
    apikey = topic_level(item, "apikey", where)
    entity_type = text_field(item, "entity_type", where) or text_field(item, "type", where)
    statics, location = statics_from_iota(
        list_field(item, "static_attributes", where), f"{where}.static_attributes"
    )
    return DeviceGroup(
        name=group_name(apikey),
        profile=IOTA_PROFILE,
        key_prefix=f"{apikey}/",
        tenant=tenant,
        entity_type=entity_type,
        attributes=attributes_from_iota(
            list_field(item, "attributes", where), f"{where}.attributes"
        ),
        static_attributes=statics,
        location=location,
        apikey=apikey,
        autoprovision=_autoprovision(item, where, True),
    )


def parse_groups(body: Any, tenant: str) -> list[DeviceGroup]:
    """A `POST /iot/services` or `/iot/groups` body; an apikey given twice is an error."""
    member, items = items_of(body, ("groups", "services"))
    groups: list[DeviceGroup] = []
    for index, item in enumerate(items):
        group = group_from_iota(item, tenant, f"{member}[{index}]")
        if any(other.key_prefix == group.key_prefix for other in groups):
            raise ProvisioningError(
                f"{member}[{index}].apikey: {group.apikey!r} is given twice", "DUPLICATE_GROUP"
            )
        groups.append(group)
    return groups


def group_update(group: DeviceGroup, changes: Any) -> DeviceGroup:
    """`group` with the members of a `PUT /iot/groups` body (absent members stay as they are)."""
    body = object_field(changes, "body")
    merged: dict[str, Any] = group_to_iota(group)
    merged.update(body)
    if "entity_type" not in body and "type" in body:
        merged["entity_type"] = body["type"]
    if text_field(merged, "apikey", "body") != group_apikey(group):
        raise ProvisioningError("body.apikey: the apikey of a group cannot be changed")
    updated = group_from_iota(merged, group.tenant, "body")
    # A group provisioned from YAML keeps its own name; only the IoT Agent view changed.
    return DeviceGroup(**{**_fields(updated), "name": group.name})


def _fields(group: DeviceGroup) -> dict[str, Any]:
    return {name: getattr(group, name) for name in DeviceGroup.__dataclass_fields__}


def group_to_iota(group: DeviceGroup) -> dict[str, Any]:
    """A DeviceGroup as an IoT Agent config group (what `GET /iot/groups` lists)."""
    return {
        "resource": DEFAULT_RESOURCE,
        "apikey": group_apikey(group),
        "entity_type": group.entity_type or DEFAULT_ENTITY_TYPE,
        "service": group.tenant,
        "subservice": "/",
        "autoprovision": group.autoprovision,
        "attributes": [attribute_to_iota(mapping) for mapping in group.attributes.values()],
        "static_attributes": statics_to_iota(group.static_attributes, group.location),
        "lazy": [],
        "commands": [],
        "internal_attributes": [],
        "stadspuls": {"name": group.name, "profile": group.profile, "key_prefix": group.key_prefix},
    }


# ---------------------------------------------------------------- devices


def _check_protocol(item: Mapping[str, Any], where: str) -> None:
    protocol = text_field(item, "protocol", where)
    if protocol is None:
        return
    words = protocol.lower().replace("_", "-").split("-")
    if any(word in FOREIGN_PROTOCOLS for word in words):
        raise ProvisioningError(
            f"{where}.protocol: {protocol!r} is not supported; devices send IoT Agent JSON"
            " measures over MQTT (/json/<apikey>/<device_id>/attrs)"
        )


def _entity_name(
    item: Mapping[str, Any], entity_type: str | None, where: str
) -> tuple[str | None, str | None]:
    """(entity type, local entity name) from `entity_name`, which may be a full entity id."""
    name = text_field(item, "entity_name", where)
    if name is None or not name.startswith(ENTITY_ID_PREFIX):
        if name is not None and entity_type and name.startswith(f"{entity_type}:"):
            return entity_type, name[len(entity_type) + 1 :]  # NGSI-v2 style "<type>:<id>"
        return entity_type, name
    parts = name.split(":", 3)
    if len(parts) != 4 or not parts[3]:
        raise ProvisioningError(f"{where}.entity_name: {name!r} is not urn:ngsi-ld:<Type>:<id>")
    if entity_type and parts[2] != entity_type:
        raise ProvisioningError(
            f"{where}.entity_name: {name!r} is not of entity_type {entity_type!r}"
        )
    return parts[2], parts[3]


def find_group(
    apikey: str | None,
    entity_type: str | None,
    tenant: str,
    groups: Sequence[DeviceGroup],
    where: str,
) -> DeviceGroup | None:
    """The iotagent-json group a device belongs to (by apikey, else the service's only one)."""
    if apikey is not None:
        for group in groups:
            if group.profile == IOTA_PROFILE and group.key_prefix == f"{apikey}/":
                if group.tenant != tenant:
                    raise ProvisioningError(
                        f"{where}.apikey: {apikey!r} belongs to another service",
                        "DEVICE_GROUP_NOT_FOUND",
                    )
                return group
        return None  # a device may carry an apikey of its own, without a group
    own = [g for g in groups if g.profile == IOTA_PROFILE and g.tenant == tenant]
    typed = [g for g in own if entity_type and g.entity_type == entity_type]
    for candidates in (own, typed):
        if len(candidates) == 1:
            return candidates[0]
    raise ProvisioningError(
        f"{where}.apikey: missing, and the service has {len(own)} config groups"
        f"{' of that entity_type' if typed else ''}; say which apikey the device uses",
        "DEVICE_GROUP_NOT_FOUND",
    )


def device_from_iota(
    item: Mapping[str, Any], tenant: str, groups: Sequence[DeviceGroup], where: str
) -> tuple[str, DeviceConfig]:
    """One IoT Agent device as (device key, DeviceConfig); `groups` are the known groups."""
    device_id = topic_level(item, "device_id", where)
    _check_protocol(item, where)
    own_apikey = topic_level(item, "apikey", where) if item.get("apikey") else None
    entity_type, entity_name = _entity_name(item, text_field(item, "entity_type", where), where)
    group = find_group(own_apikey, entity_type, tenant, groups, where)
    apikey = own_apikey or (group_apikey(group) if group else None)
    if apikey is None:
        raise ProvisioningError(f"{where}.apikey: missing", "DEVICE_GROUP_NOT_FOUND")
    statics, location = statics_from_iota(
        list_field(item, "static_attributes", where), f"{where}.static_attributes"
    )
    device = DeviceConfig(
        device_id=device_id,
        profile=IOTA_PROFILE,
        tenant=tenant,
        model=group.name if group else None,
        entity_type=entity_type,
        entity_name=entity_name,
        location=location,
        attributes=attributes_from_iota(
            list_field(item, "attributes", where), f"{where}.attributes"
        ),
        static_attributes=statics,
        apikey=own_apikey,
    )
    return device_key(apikey, device_id), device


def parse_devices(
    body: Any, tenant: str, groups: Sequence[DeviceGroup]
) -> list[tuple[str, DeviceConfig]]:
    """A `POST /iot/devices` body; a device_id given twice is an error."""
    member, items = items_of(body, ("devices",))
    devices: list[tuple[str, DeviceConfig]] = []
    for index, item in enumerate(items):
        key, device = device_from_iota(item, tenant, groups, f"{member}[{index}]")
        if any(other.device_id == device.device_id for _, other in devices):
            raise ProvisioningError(
                f"{member}[{index}].device_id: {device.device_id!r} is given twice",
                "DUPLICATE_DEVICE_ID",
            )
        devices.append((key, device))
    return devices


def device_update(
    key: str, device: DeviceConfig, changes: Any, groups: Sequence[DeviceGroup]
) -> DeviceConfig:
    """`device` with the members of a `PUT /iot/devices/{id}` body (absent ones unchanged).

    The device id and the apikey (which make the MQTT topic, hence the device key) stay.
    """
    body = object_field(changes, "body")
    if body.get("device_id") not in (None, device.device_id):
        raise ProvisioningError("body.device_id: the device id cannot be changed")
    apikey = text_field(body, "apikey", "body")
    if (
        apikey is not None
        and device.profile == IOTA_PROFILE
        and key != device_key(apikey, device.device_id)
    ):
        raise ProvisioningError(
            "body.apikey: the apikey cannot be changed (it is part of the MQTT topic);"
            " delete the device and provision it again"
        )
    _check_protocol(body, "body")
    entity_type, entity_name = _entity_name(
        body, text_field(body, "entity_type", "body") or device.entity_type, "body"
    )
    statics, location = device.static_attributes, device.location
    if "static_attributes" in body:
        statics, location = statics_from_iota(
            list_field(body, "static_attributes", "body"), "body.static_attributes"
        )
    attributes = device.attributes
    if "attributes" in body:
        attributes = attributes_from_iota(list_field(body, "attributes", "body"), "body.attributes")
    return DeviceConfig(
        device_id=device.device_id,
        profile=device.profile,
        tenant=device.tenant,
        model=device.model,
        entity_type=entity_type,
        entity_name=entity_name if "entity_name" in body else device.entity_name,
        location=location,
        attributes=attributes,
        static_attributes=statics,
        apikey=device.apikey,
    )


def device_to_iota(key: str, device: DeviceConfig, group: DeviceGroup | None) -> dict[str, Any]:
    """A registered device as an IoT Agent device (what `GET /iot/devices` lists)."""
    entity_type = device.entity_type or (group.entity_type if group else None)
    entity_type = entity_type or DEFAULT_ENTITY_TYPE
    apikey = device.apikey or (group_apikey(group) if group else None)
    iotagent = device.profile == IOTA_PROFILE
    document: dict[str, Any] = {
        "device_id": device.device_id,
        "service": device.tenant,
        "service_path": "/",
        "entity_name": f"{ENTITY_ID_PREFIX}{entity_type}:{device.entity_key}",
        "entity_type": entity_type,
        "protocol": "IoTA-JSON" if iotagent else device.profile,
        "transport": "MQTT",
        "attributes": [attribute_to_iota(mapping) for mapping in device.attributes.values()],
        "lazy": [],
        "commands": [],
        "static_attributes": statics_to_iota(device.static_attributes, device.location),
        "internal_attributes": [],
        "stadspuls": {"profile": device.profile, "key": key, "model": device.model},
    }
    if apikey is not None:
        document["apikey"] = apikey
    return document
