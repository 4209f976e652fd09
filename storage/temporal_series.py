"""The values the temporal reads and writes share: series of instances and their instanceIds.

A series is one (entity_id, attribute, dataset_id) of a tenant's observation history
(storage/temporal_reads.py reads them, storage/temporal_writes.py writes them).

instanceId (clause 4.5.7: "uniquely identifies an instance of an Attribute"): derived from
the primary key, so nothing extra is stored: `urn:ngsi-ld:instance:` + base64url (no
padding) of 8 bytes observedAt (signed big-endian microseconds since 1970-01-01 UTC),
6 bytes BLAKE2b of "<entity id>\\n<attribute IRI>" (the same instant of two attributes gets
two ids, and an id used on the wrong attribute is refused), and the datasetId in UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from storage.rollups import MICROSECOND

#: (entity_id, attribute, dataset_id); dataset_id '' is the default instance.
SeriesKey = tuple[str, str, str]

INSTANCE_PREFIX = "urn:ngsi-ld:instance:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Series:
    """One series' instances, oldest first."""

    entity_type: str
    times: np.ndarray  # datetime64[us], UTC
    values: np.ndarray  # float64; NaN where the value is not a number
    #: The values that are not numbers (value_json), aligned with times, None where numeric;
    #: None when every value is a number.
    others: list[Any] | None = None
    #: The unit code when every instance has the same (or none) ...
    unit_code: str | None = None
    #: ... otherwise each instance's, aligned with times.
    unit_codes: list[str | None] | None = None


@dataclass(slots=True)
class RollupSeries:
    """One series' hourly rollups, oldest hour first (NaN where an hour has no number)."""

    buckets: np.ndarray  # datetime64[us], the start of each UTC hour
    observation_counts: np.ndarray  # int64, every instance
    value_counts: np.ndarray  # int64, the numeric ones, which the rest summarize
    sums: np.ndarray
    sum_squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


def _series_digest(entity_id: str, attribute: str) -> bytes:
    return hashlib.blake2b(f"{entity_id}\n{attribute}".encode(), digest_size=6).digest()


def _encode(micros: int, tail: bytes) -> str:
    payload = micros.to_bytes(8, "big", signed=True) + tail
    return INSTANCE_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def instance_id(
    entity_id: str, attribute: str, dataset_id: str | None, observed_at: datetime
) -> str:
    """The instanceId of the instance with this primary key (see the module docstring)."""
    micros = (observed_at - _EPOCH) // MICROSECOND
    return _encode(micros, _series_digest(entity_id, attribute) + (dataset_id or "").encode())


def instance_ids(
    entity_id: str, attribute: str, dataset_id: str | None, times: np.ndarray
) -> list[str]:
    """`instance_id` for every time of a series (datetime64 in UTC)."""
    tail = _series_digest(entity_id, attribute) + (dataset_id or "").encode()
    micros = np.asarray(times, dtype="datetime64[us]").view(np.int64)
    return [_encode(value, tail) for value in micros.tolist()]


def parse_instance_id(instance: str, entity_id: str, attribute: str) -> tuple[datetime, str]:
    """(observedAt, datasetId) of an instanceId of this entity's attribute; ValueError if not."""
    if not instance.startswith(INSTANCE_PREFIX):
        raise ValueError(f"not an instanceId of this service: {instance!r}")
    text = instance[len(INSTANCE_PREFIX) :]
    try:
        padded = text + "=" * (-len(text) % 4)
        payload = base64.b64decode(padded, altchars=b"-_", validate=True)
        micros = int.from_bytes(payload[:8], "big", signed=True)
        observed_at = _EPOCH + timedelta(microseconds=micros)
        dataset_id = payload[14:].decode("utf-8")
    except (binascii.Error, ValueError, OverflowError) as error:
        raise ValueError(f"malformed instanceId {instance!r}") from error
    if len(payload) < 14 or payload[8:14] != _series_digest(entity_id, attribute):
        raise ValueError(f"{instance!r} is not an instance of {attribute} of {entity_id}")
    if instance_id(entity_id, attribute, dataset_id, observed_at) != instance:
        raise ValueError(f"malformed instanceId {instance!r}")  # not in canonical form
    return observed_at, dataset_id
