"""IoT Agent attribute entries ⇄ AttributeMapping and context properties (pure).

iotagent-node-lib "Entity attributes": `attributes` entries are `{object_id, name, type,
metadata}` (a `metadata.unitCode` `{"type": "Text", "value": "GQ"}` becomes the UN/CEFACT
unit code); `static_attributes` entries are `{name, type, value, metadata}`: a `location`
geo:point ("latitude, longitude") or GeoJSON Point is the default location, a Relationship
becomes an NGSI-LD Relationship, other geo types a GeoProperty. The field readers raise
ProvisioningError naming the item and field (`devices[2].attributes[0].name: ...`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isfinite
from types import MappingProxyType
from typing import Any

from devices.model import AttributeMapping

#: Characters that would break the MQTT topic `/json/<apikey>/<device_id>/attrs`.
TOPIC_UNSAFE = frozenset("/+#\x00")
RESERVED_NAMES = frozenset({"id", "type"})
GEO_TYPES = frozenset({"geo:point", "geo:json", "GeoProperty"})


class ProvisioningError(ValueError):
    """A payload that cannot be provisioned; `name` is the IoT Agent's error name."""

    def __init__(self, message: str, name: str = "WRONG_SYNTAX") -> None:
        super().__init__(message)
        self.name = name
        self.message = message


# ---------------------------------------------------------------- field readers


def text_field(
    item: Mapping[str, Any], field: str, where: str, *, required: bool = False
) -> str | None:
    """A string member; None when absent or empty (an error when `required`)."""
    value = item.get(field)
    if value is None or value == "":
        if required:
            raise ProvisioningError(f"{where}.{field}: missing (a non-empty string)")
        return None
    if not isinstance(value, str):
        raise ProvisioningError(f"{where}.{field}: expected a string, got {value!r}")
    return value


def topic_level(item: Mapping[str, Any], field: str, where: str) -> str:
    """A required string that must be usable as one MQTT topic level."""
    value = text_field(item, field, where, required=True)
    assert value is not None
    if TOPIC_UNSAFE & set(value):
        raise ProvisioningError(f"{where}.{field}: {value!r} must not contain / + # (MQTT topic)")
    return value


def list_field(item: Mapping[str, Any], field: str, where: str) -> list[Any]:
    """An array member; empty when absent."""
    value = item.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProvisioningError(f"{where}.{field}: expected an array, got {value!r}")
    return value


def object_field(value: Any, where: str) -> Mapping[str, Any]:
    """`value` checked to be a JSON object."""
    if not isinstance(value, dict):
        raise ProvisioningError(f"{where}: expected an object, got {value!r}")
    return value


def items_of(body: Any, members: Sequence[str]) -> tuple[str, list[Mapping[str, Any]]]:
    """The member name and the objects of a `{"services"|"groups"|"devices": [...]}` body."""
    document = object_field(body, "body")
    for member in members:
        if member in document:
            items = list_field(document, member, "body")
            if not items:
                raise ProvisioningError(f"body.{member}: the array is empty")
            return member, [object_field(item, f"{member}[{i}]") for i, item in enumerate(items)]
    raise ProvisioningError(f"body: expected a {' or '.join(repr(m) for m in members)} array")


# ---------------------------------------------------------------- attributes


def _unit_code(metadata: Any, where: str) -> str | None:
    if metadata is None:
        return None
    unit = object_field(metadata, f"{where}.metadata").get("unitCode")
    if isinstance(unit, dict):  # {"type": "Text", "value": "GQ"}
        unit = unit.get("value")
    if unit is None:
        return None
    if not isinstance(unit, str) or not unit:
        raise ProvisioningError(f"{where}.metadata.unitCode: expected a UN/CEFACT code string")
    return unit


def attribute_from_iota(item: Any, where: str) -> AttributeMapping:
    """One `{"object_id", "name", "type", "metadata"}` entry as an AttributeMapping."""
    entry = object_field(item, where)
    name = text_field(entry, "name", where, required=True)
    assert name is not None
    if name in RESERVED_NAMES:
        raise ProvisioningError(f"{where}.name: {name!r} is not a valid attribute name")
    source = text_field(entry, "object_id", where) or name
    kind = text_field(entry, "type", where) or "Property"
    scale = entry.get("scale")  # a Stadspuls extension, e.g. 0.01 for hPa from Pa
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)):
        raise ProvisioningError(f"{where}.scale: expected a number, got {scale!r}")
    return AttributeMapping(
        source,
        name,
        _unit_code(entry.get("metadata"), where),
        kind,
        float(scale) if scale else None,
    )


def attributes_from_iota(items: list[Any], where: str) -> Mapping[str, AttributeMapping]:
    """The `attributes` array keyed by payload key; a key mapped twice is an error."""
    mappings: dict[str, AttributeMapping] = {}
    for index, item in enumerate(items):
        mapping = attribute_from_iota(item, f"{where}[{index}]")
        if mapping.source in mappings:
            raise ProvisioningError(f"{where}[{index}].object_id: {mapping.source!r} mapped twice")
        mappings[mapping.source] = mapping
    return MappingProxyType(mappings)


def attribute_to_iota(mapping: AttributeMapping) -> dict[str, Any]:
    """An AttributeMapping as an IoT Agent attribute entry."""
    entry: dict[str, Any] = {
        "object_id": mapping.source,
        "name": mapping.name,
        "type": mapping.type,
    }
    if mapping.unit_code:
        entry["metadata"] = {"unitCode": {"type": "Text", "value": mapping.unit_code}}
    if mapping.scale is not None:
        entry["scale"] = mapping.scale
    return entry


# ---------------------------------------------------------------- static attributes


def _point(value: Any, kind: str, where: str) -> tuple[float, float] | None:
    """(longitude, latitude) of a geo:point "lat, lon" or a GeoJSON Point; None otherwise."""
    if kind == "geo:point" and isinstance(value, str):
        parts = value.split(",")
        try:
            latitude, longitude = (float(part) for part in parts)
        except ValueError:
            raise ProvisioningError(f"{where}.value: geo:point is 'latitude, longitude'") from None
    elif isinstance(value, dict) and value.get("type") == "Point":
        coordinates = value.get("coordinates")
        if not (isinstance(coordinates, list) and len(coordinates) >= 2):
            raise ProvisioningError(f"{where}.value: a Point needs [longitude, latitude]")
        longitude, latitude = coordinates[0], coordinates[1]
        if not all(isinstance(c, int | float) for c in (longitude, latitude)):
            raise ProvisioningError(f"{where}.value: Point coordinates must be numbers")
    else:
        return None
    if not (isfinite(latitude) and -90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ProvisioningError(f"{where}.value: latitude {latitude}, longitude {longitude}")
    return float(longitude), float(latitude)


def statics_from_iota(
    items: list[Any], where: str
) -> tuple[Mapping[str, Any], tuple[float, float] | None]:
    """`static_attributes` as entity context properties, and the `location` point if any."""
    statics: dict[str, Any] = {}
    location: tuple[float, float] | None = None
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        entry = object_field(item, here)
        name = text_field(entry, "name", here, required=True)
        assert name is not None
        if name in RESERVED_NAMES:
            raise ProvisioningError(f"{here}.name: {name!r} is not a valid attribute name")
        kind = text_field(entry, "type", here) or "Property"
        value = entry.get("value")
        point = _point(value, kind, here) if kind in GEO_TYPES or name == "location" else None
        if name == "location" and point is not None:
            location = point
        elif kind == "Relationship":
            statics[name] = {"type": "Relationship", "object": str(value)}
        elif kind in GEO_TYPES:
            statics[name] = {"type": "GeoProperty", "value": value}
        elif (unit := _unit_code(entry.get("metadata"), here)) is not None:
            statics[name] = {"type": "Property", "value": value, "unitCode": unit}
        else:
            statics[name] = value
    return MappingProxyType(statics), location


def _iota_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "Text"
    return "StructuredValue"


def statics_to_iota(
    statics: Mapping[str, Any], location: tuple[float, float] | None
) -> list[dict[str, Any]]:
    """Context properties (and a location) as IoT Agent static attributes."""
    entries: list[dict[str, Any]] = []
    for name, value in statics.items():
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "Relationship":
            entries.append({"name": name, "type": "Relationship", "value": value.get("object")})
        elif kind == "GeoProperty":
            entries.append({"name": name, "type": "geo:json", "value": value.get("value")})
        elif kind == "Property":
            entry = {"name": name, "type": _iota_type(value.get("value")), "value": value["value"]}
            if value.get("unitCode"):
                entry["metadata"] = {"unitCode": {"type": "Text", "value": value["unitCode"]}}
            entries.append(entry)
        else:
            entries.append({"name": name, "type": _iota_type(value), "value": value})
    if location is not None:
        entries.append({"name": "location", "type": "geo:point", "value": _lat_lon(location)})
    return entries


def _lat_lon(location: tuple[float, float]) -> str:
    return f"{location[1]}, {location[0]}"
