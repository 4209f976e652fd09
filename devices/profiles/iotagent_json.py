"""FIWARE IoT Agent JSON compatible measures (`/json/{apikey}/{device_id}/attrs`).

Follows the IoT Agent JSON user guide ("MQTT binding": `/json/<apikey>/<id>/attrs` for
multi-measures, `.../attrs/<object_id>` with the bare value, the legacy topics without
`/json`, arrays of measure groups, `TimeInstant` as observation time) and iotagent-node-lib
("Device provisioning": object_id → name/type mappings, static_attributes, entity type
`Thing` by default, unmapped measures kept under their own name when explicitAttrs=false).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from devices.model import AttributeMapping, Decoded, DecodeError, DeviceConfig, EntityRef, Reading
from devices.profiles.common import (
    Collector,
    as_records,
    coerce,
    load_json,
    match_levels,
    parse_time,
    point_from,
    split_key,
)

#: Topic patterns by number of levels; the leading "/" gives an empty first level.
#: Each entry: (pattern, whether the last wildcard is an object_id).
_TOPICS: dict[int, tuple[tuple[tuple[str | None, ...], bool], ...]] = {
    4: ((("", None, None, "attrs"), False),),
    5: ((("", "json", None, None, "attrs"), False), (("", None, None, "attrs", None), True)),
    6: ((("", "json", None, None, "attrs", None), True),),
}
DEFAULT_ENTITY_TYPE = "Thing"
TIME_INSTANT = "TimeInstant"
GEO_TYPES = frozenset({"geo:point", "geo:json", "GeoProperty"})
#: Mapping types that go to the entity's context rather than to readings.
CONTEXT_TYPES = GEO_TYPES | {"Relationship"}


def parse_topic(topic: str) -> tuple[str, str, str | None] | None:
    """(apikey, device_id, object_id or None) from an IoT Agent JSON measure topic."""
    levels = topic.split("/")
    for pattern, single in _TOPICS.get(len(levels), ()):
        captured = match_levels(levels, pattern)
        if captured is not None:
            return captured[0], captured[1], captured[2] if single else None
    return None


class IotAgentJsonProfile:
    """Decodes IoT Agent JSON measures through the device's attribute mappings."""

    name: str = "iotagent-json"
    topic_filters: tuple[str, ...] = (
        "/json/+/+/attrs",
        "/json/+/+/attrs/+",
        "/+/+/attrs",
        "/+/+/attrs/+",
    )

    def device_key(self, topic: str) -> str | None:
        """`{apikey}/{device_id}`."""
        parsed = parse_topic(topic)
        return f"{parsed[0]}/{parsed[1]}" if parsed else None

    def device_topics(self, device_key: str) -> tuple[str, ...]:
        """The multi-measure and single-measure topics, `/json` and legacy; `+` is object_id.

        The `+` levels make these ACL topic filters rather than topic names. The apikey
        `json` is refused: its legacy filter `/json/{device}/attrs/+` would also match
        `/json/{device}/attrs/attrs`, which is the `/json` topic of another device key.
        """
        apikey, device_id = split_key(device_key, 2, "{apikey}/{device_id}")
        if apikey == "json":
            raise ValueError("the apikey 'json' is ambiguous with the /json topics")
        return (
            f"/json/{apikey}/{device_id}/attrs",
            f"/json/{apikey}/{device_id}/attrs/+",
            f"/{apikey}/{device_id}/attrs",
            f"/{apikey}/{device_id}/attrs/+",
        )

    def decode(
        self, topic: str, payload: bytes, device: DeviceConfig, received_at: datetime
    ) -> Decoded:
        """Measure groups → readings of one entity; geo attributes → its context."""
        parsed = parse_topic(topic)
        if parsed is None:
            raise DecodeError("invalid_topic", f"not an IoT Agent JSON topic: {topic!r}")
        apikey, _device_id, object_id = parsed
        if device.apikey and device.apikey != apikey:
            # The apikey authenticates the service group (IoT Agent "provisioning API").
            raise DecodeError("apikey_mismatch", f"topic apikey {apikey!r} is not the device's")
        if object_id is None:
            groups = as_records(load_json(payload))
        else:
            groups = [{object_id: _bare_value(payload)}]
        out = Collector()
        entity = (device.entity_type or DEFAULT_ENTITY_TYPE, device.entity_key)
        context = out.context(entity)
        context.update(device.static_attributes)
        for group in groups:
            stamp = group.get(TIME_INSTANT)
            observed = parse_time(stamp) if stamp else received_at
            out.times.append(observed)
            _measures(out.readings, context, entity, group, device.attributes, observed)
        return out.result(received_at)


def _measures(
    readings: list[Reading],
    context: dict[str, Any],
    entity: EntityRef,
    group: dict[str, Any],
    attributes: Mapping[str, AttributeMapping],
    observed: datetime,
) -> None:
    """One measure group: measures → readings, geo attributes and relationships → context."""
    entity_type, entity_key = entity
    append = readings.append
    for key, raw in group.items():
        mapping = attributes.get(key)
        if mapping is None:
            # Unmapped measures keep their own name (IoT Agent explicitAttrs=false).
            if raw is not None and key != TIME_INSTANT:
                append(Reading(entity_type, entity_key, key, raw, observed))
        elif mapping.type in CONTEXT_TYPES:
            _set_context(context, mapping, raw)
        else:
            value = coerce(raw, mapping)
            if value is not None:
                unit = mapping.unit_code
                append(Reading(entity_type, entity_key, mapping.name, value, observed, unit))


def _bare_value(payload: bytes) -> Any:
    """A single-attribute payload: JSON if it parses, else the text as sent (`-m on`)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return payload.decode().strip()
        except UnicodeDecodeError:
            raise DecodeError("invalid_payload", "single measure is not UTF-8 text") from None


def _set_context(context: dict[str, Any], mapping: AttributeMapping, raw: Any) -> None:
    """A geo attribute or relationship: it describes the entity rather than an observation."""
    if mapping.type == "Relationship":
        if raw is not None:
            context[mapping.name] = {"type": "Relationship", "object": str(raw)}
    else:
        geometry = _geometry(raw, mapping)
        if geometry is not None:
            context[mapping.name] = _geo_property(mapping.name, geometry)


def _geometry(value: Any, mapping: AttributeMapping) -> dict[str, Any] | None:
    """GeoJSON from a geo:point "lat, lon" string or a geo:json object."""
    if value is None:
        return None
    if isinstance(value, str) and mapping.type == "geo:point":
        parts = value.split(",")
        if len(parts) != 2:
            raise DecodeError("wrong_type", f"{mapping.source}: geo:point is 'lat, lon'")
        return point_from(parts[0], parts[1], mapping.source)
    if isinstance(value, dict) and "type" in value and "coordinates" in value:
        return value
    raise DecodeError("wrong_type", f"{mapping.source}: expected {mapping.type}, got {value!r}")


def _geo_property(name: str, geometry: dict[str, Any]) -> dict[str, Any]:
    # The mapping layer treats `location` as a GeoProperty; other names must say so.
    return geometry if name == "location" else {"type": "GeoProperty", "value": geometry}


PROFILE = IotAgentJsonProfile()
