"""A batch of readings prepared once for all rules: sorted by entity and time, text as codes.

Each rule then selects its rows with integer comparisons (tenant, attribute, entity type)
and one scope test per distinct entity (alerts/scope.py), and walks them entity by entity.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from alerts.readings import EntityInfo, Readings
from alerts.rules import Rule, SilenceRule


def _codes(column: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Integer codes of a text column; dicts beat np.unique on object arrays by far."""
    table = {text: code for code, text in enumerate(dict.fromkeys(column.tolist()))}
    codes = np.fromiter(map(table.__getitem__, column.tolist()), dtype=np.int64, count=len(column))
    return codes, table


@dataclass(frozen=True)
class Group:
    """The rows of one entity selected by one rule, in time order."""

    entity_id: str
    times: np.ndarray  # int64 epoch µs
    values: np.ndarray  # float64
    attributes: np.ndarray  # int64 attribute codes


class PreparedBatch:
    """Readings sorted by (entity, observed_at), stable, with codes for the text columns."""

    def __init__(self, readings: Readings, entities: Mapping[str, EntityInfo]) -> None:
        entity_codes, entity_table = _codes(readings.entity_id)
        order = np.lexsort((readings.microseconds, entity_codes))
        self.entity_codes = entity_codes[order]
        self.times = readings.microseconds[order]
        self.values = readings.value[order]
        self.tenant_codes, self.tenants = _codes(readings.tenant[order])
        self.attribute_codes, self.attributes = _codes(readings.attribute[order])
        self.type_codes, self.types = _codes(readings.entity_type[order])
        self.entity_ids = np.array(list(entity_table), dtype=object)
        infos = [entities.get(entity_id, EntityInfo()) for entity_id in entity_table]
        self.device_models = np.array([info.device_model for info in infos], dtype=object)
        self.longitudes = np.array(
            [np.nan if info.longitude is None else info.longitude for info in infos], dtype=float
        )
        self.latitudes = np.array(
            [np.nan if info.latitude is None else info.latitude for info in infos], dtype=float
        )

    def attribute_code(self, attribute: str) -> int:
        """The code of an attribute name in this batch, -1 when no reading has it."""
        return self.attributes.get(attribute, -1)

    def rows(self, rule: Rule) -> np.ndarray:
        """Indices of the rows the rule reads: its tenant, attributes, entity type and scope."""
        tenant = self.tenants.get(rule.tenant)
        if tenant is None:
            return np.empty(0, dtype=np.int64)
        mask = self.tenant_codes == tenant
        wanted = [self.attribute_code(name) for name in rule.attributes()]
        if wanted:
            mask &= np.isin(self.attribute_codes, wanted)
        if not isinstance(rule, SilenceRule):
            # Silence counts any reading as a sign of life; the others need a number.
            mask &= np.isfinite(self.values)
        if rule.scope.entity_type is not None:
            mask &= self.type_codes == self.types.get(rule.scope.entity_type, -1)
        admitted = rule.scope.entity_mask(
            self.entity_ids, self.device_models, self.longitudes, self.latitudes
        )
        mask &= admitted[self.entity_codes]
        return np.flatnonzero(mask)

    def groups(self, rows: np.ndarray) -> Iterator[Group]:
        """The selected rows split per entity."""
        if not len(rows):
            return
        codes = self.entity_codes[rows]
        starts = np.flatnonzero(np.append(True, codes[1:] != codes[:-1]))
        ends = np.append(starts[1:], len(rows))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            chosen = rows[start:end]
            yield Group(
                str(self.entity_ids[codes[start]]),
                self.times[chosen],
                self.values[chosen],
                self.attribute_codes[chosen],
            )
