"""The Things Stack v3 uplinks (`v3/{application}@{tenant}/devices/{device}/up`).

Message format: TTS documentation, "Integrations > MQTT" and "Reference > Data Formats"
(uplink_message with decoded_payload, rx_metadata, locations). TTS leaves out fields whose
value is empty, 0 or false, so f_port, f_cnt, decoded_payload and rx_metadata may be absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devices.model import AttributeMapping, Decoded, DecodeError, DeviceConfig, EntityRef, Reading
from devices.profiles.common import (
    JSON_NUMBER_TYPES,
    Collector,
    coerce,
    load_object,
    mapping_at,
    object_list,
    parse_time,
    point_from,
    split_key,
    to_float,
    topic_levels,
)

_TOPIC = ("v3", None, "devices", None, "up")
#: TTS tenants whose `{application}@{tenant}` topic form a device is granted besides the bare
#: one: `ttn` is The Things Network's community cluster (TTS documentation, "MQTT Server":
#: the username is `{application}@{tenant}`). The device key carries no tenant (it is dropped
#: in `device_key`), so other TTS Cloud tenants cannot be derived from it.
TTS_TENANTS = ("ttn",)


class TtnV3Profile:
    """Decodes TTS v3 uplinks through the device's attribute mappings."""

    name: str = "ttn-v3"
    topic_filters: tuple[str, ...] = ("v3/+/devices/+/up",)

    def device_key(self, topic: str) -> str | None:
        """`{application_id}/{device_id}`; the `@tenant` suffix of TTS Cloud is dropped."""
        levels = topic_levels(topic, _TOPIC)
        if levels is None:
            return None
        application = levels[0].partition("@")[0]
        return f"{application}/{levels[1]}" if application else None

    def device_topics(self, device_key: str) -> tuple[str, ...]:
        """`v3/{application}/devices/{device}/up` and its `@ttn` form; inverse of device_key."""
        application, device = split_key(device_key, 2, "{application_id}/{device_id}")
        if "@" in application:
            # device_key cuts at the first "@": such a key could never come back from a topic.
            raise ValueError(f"a TTS application id holds no '@': {application!r}")
        owners = (application, *(f"{application}@{tenant}" for tenant in TTS_TENANTS))
        return tuple(f"v3/{owner}/devices/{device}/up" for owner in owners)

    def decode(
        self, topic: str, payload: bytes, device: DeviceConfig, received_at: datetime
    ) -> Decoded:
        """Readings from `decoded_payload`, radio metadata as device properties."""
        message = load_object(payload)
        uplink = mapping_at(message, "uplink_message")
        if not uplink:
            raise DecodeError("invalid_payload", "no uplink_message")
        gateways = object_list(uplink.get("rx_metadata") or [], "uplink_message.rx_metadata")
        observed = _observed_at(message, uplink, gateways, received_at)
        out = Collector()
        out.times.append(observed)
        entity = (device.entity_type or "Device", device.entity_key)
        decoded = mapping_at(uplink, "decoded_payload")
        if device.attributes:
            _mapped(out, entity, decoded, device.attributes, observed)
        else:
            _unmapped(out, entity, decoded, observed)
        _radio(out.device, message, uplink, gateways)
        return out.result(received_at)


def _observed_at(
    message: Mapping[str, Any],
    uplink: Mapping[str, Any],
    gateways: list[dict[str, Any]],
    received_at: datetime,
) -> datetime:
    """Application Server time, else Network Server time, else the first gateway's time."""
    for candidate in (message.get("received_at"), uplink.get("received_at")):
        if candidate:
            return parse_time(candidate)
    for gateway in gateways:
        if gateway.get("time"):
            return parse_time(gateway["time"])
    return received_at


def _value(value: Any) -> Any:
    """The reading inside a Decentlab-style `{displayName, unit, value}` object."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _mapped(
    out: Collector,
    entity: EntityRef,
    decoded: Mapping[str, Any],
    attributes: Mapping[str, AttributeMapping],
    observed: datetime,
) -> None:
    # Only mapped keys count: a device model that names its fields has said what matters.
    entity_type, entity_key = entity
    append = out.readings.append
    for source, mapping in attributes.items():
        if source in decoded:
            value = coerce(_value(decoded[source]), mapping)
            if value is not None:
                unit = mapping.unit_code
                append(Reading(entity_type, entity_key, mapping.name, value, observed, unit))


def _unmapped(
    out: Collector, entity: EntityRef, decoded: Mapping[str, Any], observed: datetime
) -> None:
    # Without mappings, numbers pass through under their own key; nested objects are skipped.
    entity_type, entity_key = entity
    append = out.readings.append
    for key, raw in decoded.items():
        value = _value(raw)
        if type(value) in JSON_NUMBER_TYPES:
            number = to_float(value, key)
            if number is not None:
                append(Reading(entity_type, entity_key, key, number, observed))


def _radio(
    properties: dict[str, Any],
    message: Mapping[str, Any],
    uplink: Mapping[str, Any],
    gateways: list[dict[str, Any]],
) -> None:
    """devEui, fPort, fCnt, best-gateway rssi/snr, gateway ids and the user-set location."""
    dev_eui = mapping_at(message, "end_device_ids").get("dev_eui")
    if dev_eui:
        properties["devEui"] = dev_eui
    # TTS leaves out zero values, so an absent counter is 0 (a frame counter reset after a
    # rejoin is exactly what the Device entity should show) and an absent port is 0.
    properties["fPort"] = uplink.get("f_port", 0)
    properties["fCnt"] = uplink.get("f_cnt", 0)
    if gateways:
        properties["gateways"] = [
            mapping_at(gateway, "gateway_ids").get("gateway_id") for gateway in gateways
        ]
        best = max(gateways, key=_signal)
        rssi = best.get("rssi", best.get("channel_rssi"))
        if rssi is not None:
            properties["rssi"] = rssi
        if best.get("snr") is not None:
            properties["snr"] = best["snr"]
    user = mapping_at(mapping_at(uplink, "locations"), "user")
    if user:
        location = point_from(user.get("latitude"), user.get("longitude"), "locations.user")
        if location is not None:
            properties["location"] = location


def _signal(gateway: Mapping[str, Any]) -> float:
    rssi = gateway.get("rssi", gateway.get("channel_rssi"))
    return rssi if isinstance(rssi, int | float) else float("-inf")


PROFILE = TtnV3Profile()
