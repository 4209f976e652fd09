"""Device configuration from a YAML file of `groups:` and `devices:` (validated by pydantic).

Example::

    groups:
      - name: dl-pm
        profile: ttn-v3
        key_prefix: "city-air/"
        entity_type: AirQualityObserved
        autoprovision: true
        attributes:
          - {source: pm2_5_mass_concentration, name: pm25, unit_code: GQ}
    devices:
      - key: "city-air/dl-pm-001"
        device_id: dl-pm-001
        profile: ttn-v3
        model: dl-pm
        location: [3.7174, 51.0543]
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.model import AttributeMapping, DeviceConfig, DeviceGroup
from devices.profiles.registry import PROFILES

Location = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeEntry(_Strict):
    """One payload key → attribute mapping."""

    source: str = Field(min_length=1)
    name: str = Field(min_length=1)
    unit_code: str | None = None
    type: str = "Property"
    scale: float | None = None

    def to_mapping(self) -> AttributeMapping:
        """The frozen value object used on the hot path."""
        return AttributeMapping(self.source, self.name, self.unit_code, self.type, self.scale)


class _Common(_Strict):
    profile: str
    tenant: str = ""
    entity_type: str | None = None
    location: Location | None = None
    attributes: list[AttributeEntry] = Field(default_factory=list)
    static_attributes: dict[str, Any] = Field(default_factory=dict)
    apikey: str | None = None

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}; known: {', '.join(sorted(PROFILES))}")
        return value

    @field_validator("location")
    @classmethod
    def _lon_lat(cls, value: Location | None) -> Location | None:
        # GeoJSON order; a swapped pair usually shows as a latitude outside ±90.
        if value is not None and not (-180 <= value[0] <= 180 and -90 <= value[1] <= 90):
            raise ValueError("location is [longitude, latitude] in WGS84")
        return value

    @field_validator("attributes")
    @classmethod
    def _unique_sources(cls, value: list[AttributeEntry]) -> list[AttributeEntry]:
        sources = [entry.source for entry in value]
        duplicates = sorted({source for source in sources if sources.count(source) > 1})
        if duplicates:
            raise ValueError(f"source mapped twice: {', '.join(duplicates)}")
        return value

    def _mappings(self) -> MappingProxyType[str, AttributeMapping]:
        return MappingProxyType({entry.source: entry.to_mapping() for entry in self.attributes})


class GroupEntry(_Common):
    """A device group (device model / IoT Agent service group)."""

    name: str = Field(min_length=1)
    key_prefix: str = ""
    autoprovision: bool = False

    def to_group(self) -> DeviceGroup:
        """The DeviceGroup value object."""
        return DeviceGroup(
            name=self.name,
            profile=self.profile,
            key_prefix=self.key_prefix,
            tenant=self.tenant,
            entity_type=self.entity_type,
            attributes=self._mappings(),
            static_attributes=MappingProxyType(dict(self.static_attributes)),
            location=self.location,
            apikey=self.apikey,
            autoprovision=self.autoprovision,
        )


class DeviceEntry(_Common):
    """One registered device."""

    key: str = Field(min_length=1)
    device_id: str = Field(min_length=1)
    model: str | None = None
    entity_name: str | None = None

    def to_device(self) -> DeviceConfig:
        """The DeviceConfig value object (not yet merged with its group)."""
        return DeviceConfig(
            device_id=self.device_id,
            profile=self.profile,
            tenant=self.tenant,
            model=self.model,
            entity_type=self.entity_type,
            entity_name=self.entity_name,
            location=self.location,
            attributes=self._mappings(),
            static_attributes=MappingProxyType(dict(self.static_attributes)),
            apikey=self.apikey,
        )


class ConfigDocument(_Strict):
    """The whole file."""

    groups: list[GroupEntry] = Field(default_factory=list)
    devices: list[DeviceEntry] = Field(default_factory=list)


def load_device_file(path: str | Path) -> tuple[list[tuple[str, DeviceConfig]], list[DeviceGroup]]:
    """Read and validate a device file; ValueError names the file and the place in it."""
    path = Path(path)
    return parse_device_file(path.read_text(encoding="utf-8"), str(path))


def parse_device_file(
    text: str, source: str = "<config>"
) -> tuple[list[tuple[str, DeviceConfig]], list[DeviceGroup]]:
    """Validate YAML text: (device key, DeviceConfig) pairs and the groups."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML: {error}") from None
    try:
        document = ConfigDocument.model_validate({} if data is None else data)
    except ValidationError as error:
        problems = "; ".join(
            f"{_path(problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        raise ValueError(f"{source}: {problems}") from None
    _check_references(document, source)
    devices = [(entry.key, entry.to_device()) for entry in document.devices]
    return devices, [entry.to_group() for entry in document.groups]


def _check_references(document: ConfigDocument, source: str) -> None:
    """Group names unique; a device's model names a group of the same profile."""
    groups: dict[str, GroupEntry] = {}
    for index, group in enumerate(document.groups):
        if group.name in groups:
            raise ValueError(f"{source}: groups[{index}].name: {group.name!r} is defined twice")
        groups[group.name] = group
    keys: set[tuple[str, str]] = set()
    for index, device in enumerate(document.devices):
        where = f"{source}: devices[{index}]"
        if (device.profile, device.key) in keys:
            raise ValueError(f"{where}.key: {device.key!r} is registered twice")
        keys.add((device.profile, device.key))
        if device.model is None:
            continue
        model = groups.get(device.model)
        if model is None:
            raise ValueError(f"{where}.model: no group named {device.model!r}")
        if model.profile != device.profile:
            raise ValueError(
                f"{where}.model: group {device.model!r} is for {model.profile}, "
                f"the device for {device.profile}"
            )


def _path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as `devices[2].location`."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"
