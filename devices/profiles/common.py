"""Helpers shared by the device profiles: JSON, times, numbers, topics, GeoJSON, results.

Everything here runs on the ingest hot path: no regex compiled per call, no pydantic,
no clock. Errors are DecodeError with a short stable reason code.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from math import isfinite
from typing import Any

import orjson

from devices.model import (
    AttributeMapping,
    Decoded,
    DecodeError,
    DeviceConfig,
    EntityRef,
    Reading,
    Value,
)

#: Strings that sensors send for "no value" (airRohr writes "nan"; others leave it empty).
MISSING_STRINGS = frozenset({"", "nan", "NaN", "NAN", "null", "None", "-"})

#: IoT Agent attribute types whose values are numbers (iotagent-node-lib documentation,
#: "Device provisioning": Number, Integer, Float); NGSI-LD "Property" stays as sent.
NUMERIC_TYPES = frozenset({"Number", "Integer", "Float", "number", "integer", "float"})
BOOLEAN_TYPES = frozenset({"Boolean", "boolean", "Bool"})
TEXT_TYPES = frozenset({"Text", "String", "text", "string"})
JSON_TYPES = frozenset({"StructuredValue", "Object", "Array", "object", "array", "json"})
#: Types whose values `coerce` checks or keeps as sent, never reading a number into them.
CHECKED_TYPES = BOOLEAN_TYPES | TEXT_TYPES | JSON_TYPES
#: The types orjson gives JSON numbers (bool is not one of them, unlike with isinstance).
JSON_NUMBER_TYPES = frozenset({int, float})

# Forms fromisoformat may refuse: nanosecond fractions (TTS writes them) and a "Z" suffix.
_ISO_FIX = re.compile(r"(\.\d{6})\d+")


def load_json(payload: bytes) -> Any:
    """Parse JSON with orjson; DecodeError("invalid_json") for anything that is not JSON."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise DecodeError("invalid_json", str(error)) from None


def load_object(payload: bytes) -> dict[str, Any]:
    """Parse a JSON object; DecodeError("invalid_payload") when the top level is not one."""
    document = load_json(payload)
    if not isinstance(document, dict):
        raise DecodeError("invalid_payload", f"expected a JSON object, got {_kind(document)}")
    return document


def as_records(document: Any, list_key: str | None = None) -> list[dict[str, Any]]:
    """One object, an array of objects, or an object holding them under `list_key`."""
    if isinstance(document, dict):
        if list_key is None or list_key not in document:
            return [document]
        document = document[list_key]
        # XML-to-JSON converters write a lone element as an object rather than an array.
        return [document] if isinstance(document, dict) else object_list(document, list_key)
    return object_list(document, "payload")


def object_list(value: Any, where: str) -> list[dict[str, Any]]:
    """`value` checked to be an array of objects."""
    if not isinstance(value, list):
        raise DecodeError("invalid_payload", f"{where}: expected an array, got {_kind(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise DecodeError(
                "invalid_payload", f"{where}[{index}]: expected an object, got {_kind(item)}"
            )
    return value


def mapping_at(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The object under `key`, or an empty mapping when absent or null (TTS omits empties)."""
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError("invalid_payload", f"{key}: expected an object, got {_kind(value)}")
    return value


def parse_time(value: Any) -> datetime:
    """An ISO 8601 string as a tz-aware UTC datetime; a string without zone is taken as UTC."""
    if not isinstance(value, str):
        raise DecodeError("invalid_time", f"expected an ISO 8601 string, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(_ISO_FIX.sub(r"\1", value).replace("Z", "+00:00"))
        except ValueError:
            raise DecodeError("invalid_time", f"not an ISO 8601 time: {value!r}") from None
    zone = moment.tzinfo
    # fromisoformat gives "Z" and "+00:00" the UTC singleton: the common case costs one test.
    if zone is UTC:
        return moment
    if zone is not None and moment.utcoffset():
        return moment.astimezone(UTC)
    # Same as moment.replace(tzinfo=UTC), which costs four times as much (keyword parsing);
    # sensor.community stamps carry no zone, so this runs for every one of their messages.
    return datetime.combine(moment.date(), moment.time(), UTC)


def to_iso(moment: datetime) -> str:
    """A UTC datetime as ISO 8601 with `Z` (the Smart Data Models notation)."""
    return moment.isoformat().replace("+00:00", "Z")


def to_float(value: Any, where: str = "value") -> float | None:
    """A number or numeric string as float; None for missing ("nan", "", null, NaN, inf)."""
    # Exact types first: they are what orjson gives, and a bool must not pass as an int.
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        number = float(value)
    elif value is None:
        return None
    elif isinstance(value, str):
        text = value.strip()
        if text in MISSING_STRINGS:
            return None
        try:
            number = float(text)
        except ValueError:
            raise DecodeError("wrong_type", f"{where}: not a number: {value!r}") from None
    elif isinstance(value, bool):
        raise DecodeError("wrong_type", f"{where}: expected a number, got a boolean")
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise DecodeError("wrong_type", f"{where}: expected a number, got {_kind(value)}")
    return number if isfinite(number) else None


def to_bool(value: Any, where: str = "value") -> bool | None:
    """true/false, 1/0 and their string forms as bool; None for missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "on", "yes"):
            return True
        if text in ("false", "0", "off", "no"):
            return False
        if text in MISSING_STRINGS:
            return None
    raise DecodeError("wrong_type", f"{where}: expected a boolean, got {value!r}")


def coerce(value: Any, mapping: AttributeMapping) -> Value:
    """A payload value converted by the mapping's type and scale; None means "no reading".

    Numbers are scaled; IoT Agent types (Number, Boolean, Text, StructuredValue, ...) are
    enforced; any other type ("Property", "DateTime", ...) keeps the value as sent.
    """
    kind = mapping.type
    if kind in NUMERIC_TYPES or (kind not in CHECKED_TYPES and type(value) in JSON_NUMBER_TYPES):
        number = to_float(value, mapping.source)
        if number is None or mapping.scale is None:
            return number
        return number * mapping.scale
    if kind in BOOLEAN_TYPES:
        return to_bool(value, mapping.source)
    if kind in TEXT_TYPES:
        return _text(value, mapping.source)
    return value


def point(longitude: float, latitude: float) -> dict[str, Any]:
    """A GeoJSON Point (RFC 7946: longitude first)."""
    return {"type": "Point", "coordinates": [longitude, latitude]}


def point_from(latitude: Any, longitude: Any, where: str = "location") -> dict[str, Any] | None:
    """A GeoJSON Point from latitude/longitude numbers or strings; None when either is missing."""
    if latitude is None and longitude is None:  # most messages carry no position
        return None
    lat = to_float(latitude, f"{where}.latitude")
    lon = to_float(longitude, f"{where}.longitude")
    if lat is None or lon is None:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise DecodeError("invalid_location", f"{where}: latitude {lat}, longitude {lon}")
    return point(lon, lat)


def topic_levels(topic: str, pattern: tuple[str | None, ...]) -> list[str] | None:
    """The levels of `topic` where `pattern` has None (a `+`), or None if it does not match."""
    return match_levels(topic.split("/"), pattern)


def match_levels(levels: list[str], pattern: tuple[str | None, ...]) -> list[str] | None:
    """`topic_levels` for a topic already split on "/".

    Empty wildcard levels are refused: an empty device key identifies nothing.
    """
    if len(levels) != len(pattern):
        return None
    captured: list[str] = []
    for level, expected in zip(levels, pattern, strict=True):
        if expected is None:
            if not level:
                return None
            captured.append(level)
        elif level != expected:
            return None
    return captured


class Collector:
    """Accumulates readings and context of one message and freezes them into a Decoded."""

    __slots__ = ("readings", "entities", "device", "times")

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.entities: dict[EntityRef, dict[str, Any]] = {}
        self.device: dict[str, Any] = {}
        self.times: list[datetime] = []

    def add(
        self,
        entity: EntityRef,
        attribute: str,
        value: Value,
        observed_at: datetime,
        unit_code: str | None = None,
        dataset_id: str | None = None,
    ) -> None:
        """Add one reading unless `value` is missing (None).

        For readings a record has once; loops over many values append `Reading`s directly,
        as this call would cost as much again as building the reading.
        """
        if value is not None:
            self.readings.append(
                Reading(entity[0], entity[1], attribute, value, observed_at, unit_code, dataset_id)
            )

    def context(self, entity: EntityRef) -> dict[str, Any]:
        """The (mutable) context properties of `entity`."""
        properties = self.entities.get(entity)
        if properties is None:
            properties = self.entities[entity] = {}
        return properties

    def result(self, received_at: datetime) -> Decoded:
        """The Decoded result; its time is the newest group time, else `received_at`."""
        entities = {ref: props for ref, props in self.entities.items() if props}
        return Decoded(
            readings=self.readings,
            entity_properties=entities,
            device_properties=self.device,
            observed_at=max(self.times) if self.times else received_at,
        )


def _text(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise DecodeError("wrong_type", f"{where}: expected text, got {_kind(value)}")


def _kind(value: Any) -> str:
    """A JSON-flavoured name for the type of `value`, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


#: Characters a device key level may not hold when it is put into a topic for publishing:
#: MQTT wildcards and the level separator (MQTT 5.0 §4.7), NUL (refused in topic names,
#: §1.5.4), and whitespace and control characters, which would end or split a line of the
#: Mosquitto ACL file a topic is written into.
_FORBIDDEN_IN_LEVEL = re.compile(r"[+#/\x00-\x20\x7f-\x9f\s]")


def topic_level(value: str, what: str = "device key") -> str:
    """`value` checked to be usable as one topic level; ValueError says what is wrong."""
    if not value:
        raise ValueError(f"{what}: an empty topic level identifies nothing")
    found = _FORBIDDEN_IN_LEVEL.search(value)
    if found:
        raise ValueError(f"{what}: {found.group()!r} is not allowed in a topic level: {value!r}")
    return value


def split_key(device_key: str, parts: int, form: str) -> list[str]:
    """A device key of `parts` "/"-separated levels (`form` names them), each checked."""
    levels = device_key.split("/")
    if len(levels) != parts:
        raise ValueError(f"device key must read {form}, got {device_key!r}")
    return [topic_level(level) for level in levels]


def filter_pattern(topic_filter: str) -> tuple[str | None, ...]:
    """A topic filter as a `topic_levels` pattern: `+` levels become None."""
    return tuple(None if level == "+" else level for level in topic_filter.split("/"))


class RecordProfile(ABC):
    """Base of the profiles whose topic has one `+` level (the device key) and whose
    payload is a list of independent records decoded one by one into a Collector."""

    name: str = ""
    topic_filters: tuple[str, ...] = ()
    #: Key under which a wrapper object holds the records (`{"report": [...]}`).
    list_key: str | None = None

    def __init__(self) -> None:
        self._pattern = filter_pattern(self.topic_filters[0])

    def device_key(self, topic: str) -> str | None:
        """The topic level under the filter's `+`."""
        levels = topic_levels(topic, self._pattern)
        return levels[0] if levels else None

    def device_topics(self, device_key: str) -> tuple[str, ...]:
        """The topic the device publishes on: the filter with its `+` set to the key."""
        key = topic_level(device_key)
        return ("/".join(key if level is None else level for level in self._pattern),)

    def decode(
        self, topic: str, payload: bytes, device: DeviceConfig, received_at: datetime
    ) -> Decoded:
        """Every record of the payload into one Decoded."""
        out = Collector()
        for record in self.records(load_json(payload)):
            self.add_record(out, device, record, received_at)
        return out.result(received_at)

    def records(self, document: Any) -> list[Any]:
        """The records of a parsed payload: one object, an array, or under `list_key`."""
        return as_records(document, self.list_key)

    @abstractmethod
    def add_record(
        self, out: Collector, device: DeviceConfig, record: Any, received_at: datetime
    ) -> None:
        """Decode one record into `out` (each profile's own part)."""
