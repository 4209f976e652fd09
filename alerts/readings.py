"""The evaluator's input: a columnar batch of readings, and what it knows about each entity.

Columns are numpy arrays of equal length. `observed_at` is datetime64[us] in UTC (numpy has
no time zones; the evaluator uses its int64 view, microseconds since the epoch). `value` is
float64, NaN when the reading is not a number: threshold, window, rate and congestion rules
ignore such readings; silence rules still count them as a sign of life.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from alerts.times import to_microseconds

_TEXT_COLUMNS = ("tenant", "entity_id", "entity_type", "attribute")


class EntityInfo(NamedTuple):
    """What scoping needs of an entity besides its type: its device model and its position."""

    device_model: str | None = None
    longitude: float | None = None
    latitude: float | None = None


@dataclass(frozen=True, eq=False)
class Readings:
    """A batch of readings as equal-length columns (see the module docstring for dtypes)."""

    tenant: np.ndarray
    entity_id: np.ndarray
    entity_type: np.ndarray
    attribute: np.ndarray
    observed_at: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        size = len(self.value)
        for name in (*_TEXT_COLUMNS, "observed_at"):
            if len(getattr(self, name)) != size:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, not {size}")
        if self.observed_at.dtype != np.dtype("datetime64[us]"):
            raise ValueError(f"observed_at must be datetime64[us], not {self.observed_at.dtype}")
        if self.value.dtype != np.float64:
            raise ValueError(f"value must be float64, not {self.value.dtype}")

    def __len__(self) -> int:
        return len(self.value)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> Readings:
        """Readings from tuples in storage.records.ObservationRow order (Batch.observations)."""
        rows = list(rows)
        tenants, entities, types, attributes, times, values = [], [], [], [], [], []
        for row in rows:
            tenants.append(row[0])
            entities.append(row[1])
            types.append(row[2])
            attributes.append(row[3])
            times.append(to_microseconds(row[5]))
            number = row[6]
            values.append(np.nan if number is None or isinstance(number, bool) else number)
        return cls.from_columns(tenants, entities, types, attributes, times, values)

    @classmethod
    def from_columns(
        cls,
        tenant: Sequence[str] | np.ndarray,
        entity_id: Sequence[str] | np.ndarray,
        entity_type: Sequence[str] | np.ndarray,
        attribute: Sequence[str] | np.ndarray,
        observed_at: Sequence[int | datetime] | np.ndarray,
        value: Sequence[float] | np.ndarray,
    ) -> Readings:
        """Readings from columns; times as datetimes, datetime64 or epoch microseconds."""
        times = np.asarray(observed_at)
        if times.dtype == object:
            times = np.array([to_microseconds(moment) for moment in times], dtype=np.int64)
        if times.dtype.kind != "M":
            times = times.astype(np.int64)
        return cls(
            _text(tenant),
            _text(entity_id),
            _text(entity_type),
            _text(attribute),
            times.astype("datetime64[us]"),
            np.asarray(value, dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> Readings:
        """A batch without readings."""
        return cls.from_columns([], [], [], [], np.array([], dtype=np.int64), [])

    def take(self, indices: np.ndarray) -> Readings:
        """The readings at `indices` (an index array or a boolean mask), in that order."""
        return Readings(
            self.tenant[indices],
            self.entity_id[indices],
            self.entity_type[indices],
            self.attribute[indices],
            self.observed_at[indices],
            self.value[indices],
        )

    @property
    def microseconds(self) -> np.ndarray:
        """observed_at as int64 microseconds since the epoch."""
        return self.observed_at.view(np.int64)


def _text(column: Sequence[str] | np.ndarray) -> np.ndarray:
    array = np.empty(len(column), dtype=object)
    array[:] = list(column) if not isinstance(column, np.ndarray) else column
    return array
