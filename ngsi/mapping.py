"""Readings → NGSI-LD: observation rows for history and attribute fragments for latest state.

Entity ids follow the NGSI-LD convention `urn:ngsi-ld:<Type>:<local id>` (ETSI GS CIM 009,
clause 4.5.2 recommends URNs); types and attribute names are Smart Data Models terms.
Attributes are NGSI-LD normalized attribute objects (clause 4.5.2/5.2.5): `observedAt`
carries the observation time, `unitCode` the UN/CEFACT unit, `datasetId` the instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from devices.model import Decoded, DeviceConfig, EntityRef, Reading
from ngsi.vocabulary import IngestVocabulary
from storage.records import DeviceActivity, EntityFragment

ATTRIBUTE_TYPES = frozenset({"Property", "GeoProperty", "Relationship", "LanguageProperty"})
#: Attributes whose value is a geometry (clause 4.7: GeoProperty).
GEO_ATTRIBUTES = frozenset({"location", "observationSpace", "operationSpace"})


def entity_id(entity_type: str, key: str) -> str:
    """The stable NGSI-LD id of an entity of `entity_type` known locally as `key`."""
    return f"urn:ngsi-ld:{entity_type}:{key}"


def device_entity_id(device: DeviceConfig) -> str:
    """The id of the `Device` entity that represents the sensor itself."""
    return entity_id("Device", device.device_id)


def format_datetime(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and `Z`: one fixed width, so strings sort by time."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def point(location: tuple[float, float]) -> dict[str, Any]:
    """A GeoJSON Point from (longitude, latitude)."""
    return {"type": "Point", "coordinates": [location[0], location[1]]}


def context_attribute(name: str, value: Any) -> dict[str, Any]:
    """An attribute object for a context property (not an observation)."""
    if isinstance(value, dict) and value.get("type") in ATTRIBUTE_TYPES:
        return value
    if name in GEO_ATTRIBUTES:
        return {"type": "GeoProperty", "value": value}
    return {"type": "Property", "value": value}


def relationship(target: str) -> dict[str, Any]:
    """A Relationship attribute object pointing at `target`."""
    return {"type": "Relationship", "object": target}


class _EntityState:
    """Attributes gathered for one entity within one batch; the newest reading wins."""

    __slots__ = ("entity_type", "context", "newest", "context_time")

    def __init__(self, entity_type: str) -> None:
        self.entity_type = entity_type
        # Context properties as given (raw values or full attribute objects); wrapped into
        # attribute objects once, at the end of the batch.
        self.context: dict[str, Any] = {}
        #: Observation time of the newest message that set context properties.
        self.context_time: datetime | None = None
        # (attribute, datasetId) → newest reading; attribute objects are built once, at the end.
        self.newest: dict[tuple[str, str], Reading] = {}

    def stamp(self, observed: datetime) -> bool:
        """Note a message observed at `observed`; whether its context is the newest so far.

        Messages of a batch arrive in any order: an older message must not overwrite the
        context (location, dateObservedFrom, rssi...) that a newer one set.
        """
        if self.context_time is None or self.context_time <= observed:
            self.context_time = observed
            return True
        return False

    def attributes(
        self, iso: Callable[[datetime], str], vocabulary: IngestVocabulary
    ) -> dict[str, Any]:
        """Context properties and observed attributes (names expanded), instances as a list."""
        entity_type = self.entity_type
        result: dict[str, Any] = {
            vocabulary.attribute(entity_type, name): context_attribute(name, value)
            for name, value in self.context.items()
        }
        grouped: dict[str, list[dict[str, Any]]] = {}
        for (name, dataset), reading in self.newest.items():
            attribute: dict[str, Any] = {
                "type": "Property",
                "value": reading.value,
                "observedAt": iso(reading.observed_at),
            }
            if reading.unit_code:
                attribute["unitCode"] = reading.unit_code
            if dataset:
                attribute["datasetId"] = dataset
            grouped.setdefault(name, []).append(attribute)
        for name, instances in grouped.items():
            single = len(instances) == 1 and "datasetId" not in instances[0]
            result[vocabulary.attribute(entity_type, name)] = instances[0] if single else instances
        return result


class BatchMapper:
    """Maps the decoded messages of one batch into storage rows, merging per entity."""

    def __init__(self, vocabulary: IngestVocabulary | None = None) -> None:
        #: Expands types and attribute names: entities and history are stored with IRIs.
        self.vocabulary = vocabulary or IngestVocabulary()
        #: Rows in ObservationRow field order, as plain tuples (cheaper to build and to COPY).
        self.observations: list[tuple[Any, ...]] = []
        self._entities: dict[tuple[str, str], _EntityState] = {}
        self._activity: dict[tuple[str, str], list[Any]] = {}
        self._times: dict[datetime, str] = {}
        # id(device) → (device, constant context, location); devices repeat within a batch.
        self._devices: dict[int, tuple[DeviceConfig, dict[str, Any], Any]] = {}

    def add(self, device: DeviceConfig, decoded: Decoded, received_at: datetime) -> int:
        """Add one decoded message from `device`; return how many readings it carried."""
        tenant = device.tenant
        device_id = device_entity_id(device)
        fed = self._feed_readings(tenant, device, decoded.readings)
        fed.discard(device_id)
        observed = decoded.observed_at or received_at
        self._add_context(tenant, device, decoded.entity_properties, fed, observed)
        self._add_device(tenant, device, decoded, observed)
        self._count(tenant, device.device_id, len(decoded.readings), received_at)
        return len(decoded.readings)

    def fragments(self) -> list[EntityFragment]:
        """One fragment per entity touched by the batch."""
        fragments = []
        for (tenant, eid), state in self._entities.items():
            # Oldest: of its observations (or of its context, without any). Newest: of
            # observations and context together, so the context of a new message carrying
            # old readings still counts as new (storage/entities.py decides on both).
            times = [reading.observed_at for reading in state.newest.values()]
            stamps = times + ([state.context_time] if state.context_time else [])
            fragments.append(
                EntityFragment(
                    tenant,
                    eid,
                    self.vocabulary.entity_type(state.entity_type),
                    state.attributes(self._iso, self.vocabulary),
                    min(times or stamps) if stamps else None,
                    max(stamps) if stamps else None,
                )
            )
        return fragments

    def activity(self) -> list[DeviceActivity]:
        """Per-device message and reading counts of the batch."""
        return [
            DeviceActivity(tenant, device_id, messages, readings, last)
            for (tenant, device_id), (messages, readings, last) in self._activity.items()
        ]

    def _state(self, tenant: str, eid: str, entity_type: str) -> _EntityState:
        state = self._entities.get((tenant, eid))
        if state is None:
            state = self._entities[(tenant, eid)] = _EntityState(entity_type)
        return state

    def _iso(self, moment: datetime) -> str:
        # Readings of one message share their datetime object; format it once.
        text = self._times.get(moment)
        if text is None:
            text = self._times[moment] = format_datetime(moment)
        return text

    def _feed_readings(
        self, tenant: str, device: DeviceConfig, readings: Iterable[Reading]
    ) -> set[str]:
        # The hot loop of ingest: plain tuples, no per-reading dicts or string formatting.
        fed: set[str] = set()
        append = self.observations.append
        vocabulary = self.vocabulary
        last_ref: tuple[str, str] | None = None
        eid = type_iri = ""
        newest: dict[tuple[str, str], Reading] = {}
        for reading in readings:
            ref = (reading.entity_type, reading.entity_key)
            if ref != last_ref:
                last_ref = ref
                eid = entity_id(*ref)
                type_iri = vocabulary.entity_type(reading.entity_type)
                newest = self._state(tenant, eid, reading.entity_type).newest
                fed.add(eid)
            value = reading.value
            numeric = type(value) is float or type(value) is int
            dataset = reading.dataset_id or ""
            append(
                (
                    tenant,
                    eid,
                    type_iri,
                    vocabulary.attribute(reading.entity_type, reading.attribute),
                    dataset,
                    reading.observed_at,
                    float(value) if numeric else None,  # type: ignore[arg-type]
                    None if numeric else value,
                    reading.unit_code,
                )
            )
            key = (reading.attribute, dataset)
            held = newest.get(key)
            if held is None or held.observed_at <= reading.observed_at:
                newest[key] = reading
        return fed

    def _add_context(
        self,
        tenant: str,
        device: DeviceConfig,
        properties: Mapping[EntityRef, Mapping[str, Any]],
        fed: set[str],
        observed: datetime,
    ) -> None:
        """Context of the data entities: location, refDevice, static and profile properties."""
        constant, location = self._device_context(device)
        touched = {entity_id(*ref): ref[0] for ref in properties}
        for eid in fed:
            touched.setdefault(eid, eid.split(":", 3)[2])
        newest: set[str] = set()
        for eid, entity_type in touched.items():
            state = self._state(tenant, eid, entity_type)
            if not state.stamp(observed):
                continue
            newest.add(eid)
            state.context.update(constant)
            if location is not None:
                state.context.setdefault("location", location)
        for (entity_type, key), values in properties.items():
            eid = entity_id(entity_type, key)
            if eid in newest:
                self._state(tenant, eid, entity_type).context.update(values)

    def _device_context(self, device: DeviceConfig) -> tuple[dict[str, Any], Any]:
        """What every entity of `device` gets (refDevice, static attributes), and its location."""
        cached = self._devices.get(id(device))
        if cached is None or cached[0] is not device:
            constant = {"refDevice": relationship(device_entity_id(device))}
            constant.update(device.static_attributes)
            location = point(device.location) if device.location else None
            cached = self._devices[id(device)] = (device, constant, location)
        return cached[1], cached[2]

    def _add_device(
        self,
        tenant: str,
        device: DeviceConfig,
        decoded: Decoded,
        observed: datetime,
    ) -> None:
        """The Device entity: last report time, state, model, and what the profile knows."""
        state = self._state(tenant, device_entity_id(device), "Device")
        if not state.stamp(observed):
            return  # a newer message of this device in the batch already set all of this
        context = state.context
        context["dateLastValueReported"] = {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": self._iso(observed)},
        }
        context["deviceState"] = "ok"
        if device.model:
            context["refDeviceModel"] = relationship(entity_id("DeviceModel", device.model))
        if device.location:
            context["location"] = self._device_context(device)[1]
        context.update(decoded.device_properties)

    def _count(self, tenant: str, device_id: str, readings: int, received_at: datetime) -> None:
        counts = self._activity.get((tenant, device_id))
        if counts is None:
            self._activity[(tenant, device_id)] = [1, readings, received_at]
        else:
            counts[0] += 1
            counts[1] += readings
            counts[2] = max(counts[2], received_at)
