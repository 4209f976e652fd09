"""Value objects shared by the device profiles, the registry and the NGSI-LD mapping.

Everything here is immutable and free of I/O: profiles are pure functions from
(topic, payload bytes, device config) to a :class:`Decoded` result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

#: A reading's value: numbers go to the numeric column, everything else is stored as JSON.
Value = float | int | str | bool | dict[str, Any] | list[Any] | None

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[Any, Any]:
    return EMPTY


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    """How one payload key becomes an NGSI-LD attribute (IoT Agent `object_id` → `name`)."""

    source: str
    name: str
    unit_code: str | None = None
    #: IoT Agent attribute type (Number, Text, Boolean, ...) or NGSI-LD type; informative.
    type: str = "Property"
    #: Multiplier applied to numeric values (e.g. 0.001 for mV → V).
    scale: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """A registered device, resolved with the settings of its group (device model)."""

    device_id: str
    profile: str
    tenant: str = ""
    model: str | None = None
    #: Entity type for profiles that do not decide it themselves (iotagent-json, ttn-v3).
    entity_type: str | None = None
    #: Local part of the entity id; the device id when not given.
    entity_name: str | None = None
    #: (longitude, latitude) in WGS84.
    location: tuple[float, float] | None = None
    #: Payload key → attribute mapping.
    attributes: Mapping[str, AttributeMapping] = field(default_factory=_empty)
    #: Properties added to every entity of the device (IoT Agent static attributes).
    static_attributes: Mapping[str, Any] = field(default_factory=_empty)
    apikey: str | None = None

    @property
    def entity_key(self) -> str:
        """The local part used in the ids of the entities this device feeds."""
        return self.entity_name or self.device_id


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    """A device model (IoT Agent "service group"): settings shared by many devices.

    A group matches every device key that starts with `key_prefix` (for example the TTN
    application `"city-air/"` or the IoT Agent apikey `"4jggokgpepnvsb2uv4s40d59ov/"`).
    With `autoprovision`, a device that is not registered but matches is accepted with
    the group's settings and its device id taken from the rest of the key.
    """

    name: str
    profile: str
    key_prefix: str
    tenant: str = ""
    entity_type: str | None = None
    attributes: Mapping[str, AttributeMapping] = field(default_factory=_empty)
    static_attributes: Mapping[str, Any] = field(default_factory=_empty)
    location: tuple[float, float] | None = None
    apikey: str | None = None
    autoprovision: bool = False


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made up
# a third of decoding. Readings are still never changed after a profile makes them.
@dataclass(slots=True)
class Reading:
    """One observed value of one attribute of one entity."""

    entity_type: str
    entity_key: str
    attribute: str
    value: Value
    observed_at: datetime
    unit_code: str | None = None
    dataset_id: str | None = None


EntityRef = tuple[str, str]
"""(entity type, entity key): identifies an entity before its URN is built."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a profile makes of one message."""

    readings: list[Reading]
    #: Context properties per entity (location as GeoJSON, itemType, laneDirection, name, ...);
    #: these describe the entity rather than an observation and are not kept as history.
    entity_properties: Mapping[EntityRef, Mapping[str, Any]] = field(default_factory=_empty)
    #: Properties of the Device entity itself (batteryLevel, rssi, location, gateway metadata).
    device_properties: Mapping[str, Any] = field(default_factory=_empty)
    #: Observation time of the message as a whole (used for the Device entity).
    observed_at: datetime | None = None


class DecodeError(ValueError):
    """A payload that cannot be turned into readings; `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        #: The device the message came from, when known (set by the pipeline).
        self.device: DeviceConfig | None = None


class Profile(Protocol):
    """A payload family: which topics it listens on and how it decodes them."""

    name: str
    #: Default MQTT topic filters for this profile.
    topic_filters: tuple[str, ...]

    def device_key(self, topic: str) -> str | None:
        """The external device key carried by `topic`, or None if the topic is not ours."""
        ...

    def decode(
        self, topic: str, payload: bytes, device: DeviceConfig, received_at: datetime
    ) -> Decoded:
        """Decode one message; raise DecodeError for anything that is not a valid payload.

        `received_at` is when the broker handed us the message: the observation time of
        payloads that carry none.
        """
        ...

    def device_topics(self, device_key: str) -> tuple[str, ...]:
        """The topics (ACL topic filters) the device with `device_key` publishes on."""
        ...
