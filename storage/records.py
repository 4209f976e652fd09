"""The rows one ingest batch hands to storage: plain values, built once per batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class ObservationRow(NamedTuple):
    """One row of the observations hypertable; numbers in value_num, anything else in value_json."""

    tenant: str
    entity_id: str
    entity_type: str
    attribute: str
    #: '' for the default instance (NGSI-LD datasetId absent).
    dataset_id: str
    observed_at: datetime
    value_num: float | None
    value_json: Any
    unit_code: str | None


@dataclass(slots=True)
class EntityFragment:
    """Attributes of one entity as NGSI-LD normalized attribute objects, to merge into latest state.

    An attribute value is one attribute object, or a list of them when several datasetId
    instances are present. Each carries `observedAt` (ISO 8601, UTC, `Z`) when it is an
    observation, which decides which instance is newer when merging.
    """

    tenant: str
    entity_id: str
    entity_type: str
    attributes: dict[str, Any]
    #: Oldest and newest observedAt among the observed attributes (None without any): when
    #: the oldest is newer than anything stored, the merge takes its shortcut.
    oldest_observed_at: datetime | None = None
    newest_observed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be decoded or mapped, kept whole with its reason."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    received_at: datetime
    tenant: str = ""
    device_id: str | None = None


class DeviceActivity(NamedTuple):
    """Per-device counters of one batch, for `stadspuls status` and device health."""

    tenant: str
    device_id: str
    messages: int
    readings: int
    last_message_at: datetime


@dataclass(slots=True)
class Batch:
    """Everything one ingest batch writes, in one transaction."""

    #: Rows in ObservationRow field order; plain tuples on the hot path.
    observations: list[tuple[Any, ...]] = field(default_factory=list)
    entities: list[EntityFragment] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    activity: list[DeviceActivity] = field(default_factory=list)
