"""The in-memory device registry: device key → resolved DeviceConfig, in dict lookups.

Resolution follows the FIWARE IoT Agent model: a provisioned device inherits the settings
of its service group (here `DeviceGroup`, named by `DeviceConfig.model`), its own values
winning; an unknown device is accepted only when a group with `autoprovision` claims it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType

from devices.model import DeviceConfig, DeviceGroup

#: Autoprovisioned configs are cached so a known sender costs one dict lookup; the cap keeps
#: a flood of made-up keys from growing the cache without bound.
AUTOPROVISION_CACHE_LIMIT = 100_000


class DeviceRegistry:
    """Registered devices (merged with their groups) and autoprovisioning groups."""

    def __init__(
        self, devices: Iterable[tuple[str, DeviceConfig]], groups: Iterable[DeviceGroup]
    ) -> None:
        self.groups: dict[str, DeviceGroup] = {}
        for group in groups:
            if group.name in self.groups:
                raise ValueError(f"device group {group.name!r} is defined twice")
            self.groups[group.name] = group
        self._devices: dict[tuple[str, str], DeviceConfig] = {}
        for key, device in devices:
            if (device.profile, key) in self._devices:
                raise ValueError(f"{device.profile} device key {key!r} is registered twice")
            self._devices[(device.profile, key)] = merge_with_group(device, self.groups)
        # profile → ((prefix length, prefix → group), ...) longest first: one slice and one
        # dict lookup per distinct length instead of a scan over all groups.
        tables: dict[str, dict[int, dict[str, DeviceGroup]]] = {}
        for group in self.groups.values():
            if group.autoprovision:
                by_length = tables.setdefault(group.profile, {})
                by_length.setdefault(len(group.key_prefix), {})[group.key_prefix] = group
        self._prefixes = {
            profile: tuple(sorted(by_length.items(), reverse=True))
            for profile, by_length in tables.items()
        }
        self._provisioned: dict[tuple[str, str], DeviceConfig] = {}

    def __len__(self) -> int:
        """The number of registered (not autoprovisioned) devices."""
        return len(self._devices)

    def resolve(self, profile_name: str, key: str) -> DeviceConfig | None:
        """The device behind `key` for `profile_name`, autoprovisioned if a group allows it."""
        lookup = (profile_name, key)
        device = self._devices.get(lookup) or self._provisioned.get(lookup)
        if device is not None:
            return device
        for length, groups in self._prefixes.get(profile_name, ()):
            group = groups.get(key[:length]) if len(key) > length else None
            if group is not None:
                device = autoprovisioned(group, key[length:])
                if len(self._provisioned) < AUTOPROVISION_CACHE_LIMIT:
                    self._provisioned[lookup] = device
                return device
        return None


def merge_with_group(device: DeviceConfig, groups: dict[str, DeviceGroup]) -> DeviceConfig:
    """`device` with the settings of the group its `model` names; the device's own win."""
    if device.model is None:
        return device
    group = groups.get(device.model)
    if group is None:
        raise ValueError(f"device {device.device_id!r}: unknown device group {device.model!r}")
    if group.profile != device.profile:
        raise ValueError(
            f"device {device.device_id!r} ({device.profile}) is in group {group.name!r}"
            f" of profile {group.profile}"
        )
    return replace(
        device,
        tenant=device.tenant or group.tenant,
        entity_type=device.entity_type or group.entity_type,
        location=device.location or group.location,
        apikey=device.apikey or group.apikey,
        attributes=MappingProxyType({**group.attributes, **device.attributes}),
        static_attributes=MappingProxyType({**group.static_attributes, **device.static_attributes}),
    )


def autoprovisioned(group: DeviceGroup, device_id: str) -> DeviceConfig:
    """The config of an unregistered device of `group` (IoT Agent autoprovisioning)."""
    return DeviceConfig(
        device_id=device_id,
        profile=group.profile,
        tenant=group.tenant,
        model=group.name,
        entity_type=group.entity_type,
        location=group.location,
        attributes=group.attributes,
        static_attributes=group.static_attributes,
        apikey=group.apikey,
    )
