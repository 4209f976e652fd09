"""Series of observations → the temporal representations (ETSI GS CIM 009 v1.8): pure.

- normalized temporal representation (clause 4.5.9): each attribute is an array of its
  instances, oldest first, with `value` (or `object`, `languageMap` ... by attribute type),
  `observedAt`, `unitCode`, `datasetId` and `instanceId` (storage/temporal_series.py derives
  it from the row's key). Instances of several datasetIds are listed datasetId by datasetId.
- simplified temporal representation, `temporalValues` (clause 4.5.18): per attribute
  `{"type": "Property", "values": [[value, observedAt], ...]}`; the member is `objects` for a
  Relationship, `languageMaps` for a LanguageProperty and so on (table 4.5.18-1); with several
  datasetIds an array of such objects, each with its `datasetId`.
- aggregated temporal representation, `aggregatedValues` (clause 4.5.19): per attribute
  `{"type": "Property", "avg": [[value, startAt, endAt], ...], ...}`, one element per period;
  a period without a value has null (ngsi/aggregate.py decides which).

Names are compacted with the caller's @context. Stored values are decoded as
ngsi/temporal_input.py encoded them. `lang` turns a LanguageProperty into a Property holding
one language (clause 4.15); `pick` and `omit` (clause 4.21) keep or drop members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ngsi.context import ActiveContext
from ngsi.entity_input import PROPERTY_KINDS, is_geometry
from ngsi.errors import bad_request
from ngsi.temporal_input import WRAPPED_KINDS
from storage.temporal_series import Series, SeriesKey, instance_ids

#: Table 4.5.18-1: the member holding the [value, time] pairs of each attribute type.
SIMPLIFIED_MEMBERS = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "JsonProperty": "jsons",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
}
NORMALIZED, TEMPORAL_VALUES, AGGREGATED_VALUES = "normalized", "temporalValues", "aggregatedValues"
FORMATS = (NORMALIZED, TEMPORAL_VALUES, AGGREGATED_VALUES)


def iso_times(times: np.ndarray) -> list[str]:
    """datetime64 UTC times as the API's ISO 8601 strings (microseconds, `Z`)."""
    text = np.datetime_as_string(np.asarray(times, dtype="datetime64[us]"), unit="us")
    return [f"{moment}Z" for moment in text.tolist()]


def iso(moment: datetime | None) -> str | None:
    """An aware datetime in the API's UTC form."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_value(number: float, other: Any) -> tuple[str, str, Any]:
    """(attribute type, member, content) of a stored value (ngsi/temporal_input.py)."""
    if other is None:
        return "Property", "value", None if number != number else number
    if isinstance(other, dict):
        kind = other.get("type")
        if kind in WRAPPED_KINDS and len(other) == 2 and PROPERTY_KINDS[kind] in other:
            return kind, PROPERTY_KINDS[kind], other[PROPERTY_KINDS[kind]]
        if is_geometry(other):
            return "GeoProperty", "value", other
    return "Property", "value", other


def language_value(language_map: Any, lang: str) -> tuple[Any, str]:
    """The value for `lang` (clause 4.15): that tag, else `@none`, else the first one."""
    if not isinstance(language_map, dict):
        return language_map, lang
    if lang == "*":
        return language_map, "*"
    for tag in (lang, "@none"):
        if tag in language_map:
            return language_map[tag], tag
    first = next(iter(language_map), None)
    return (language_map[first], first) if first is not None else ("", lang)


@dataclass(frozen=True, slots=True)
class EntityHead:
    """What a temporal entity shows besides its attributes."""

    id: str
    types: list[str]
    created_at: datetime | None = None
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AggregatedSeries:
    """One series' aggregation: method → one value (or None) per period."""

    kind: str
    results: Mapping[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class TemporalOptions:
    """How one request wants temporal entities rendered."""

    format: str = NORMALIZED
    sys_attrs: bool = False
    lang: str | None = None
    #: Members to keep (`id`, `type`, attribute IRIs) / to drop.
    pick: frozenset[str] | None = None
    omit: frozenset[str] = frozenset()


class TemporalRenderer:
    """Renders temporal entities with one @context and one set of options."""

    def __init__(self, context: ActiveContext, options: TemporalOptions) -> None:
        self.context = context
        self.options = options
        #: The last edges rendered and their period starts and ends: every entity of one
        #: answer has the same periods, so they are formatted once.
        self._periods: tuple[np.ndarray, list[str], list[str]] | None = None
        # Asked once per answer, not once per entity (1,000 entities in one answer).
        self._keeps_id, self._keeps_type = self._keeps("id"), self._keeps("type")

    def _keeps(self, member: str) -> bool:
        pick, omit = self.options.pick, self.options.omit
        return (pick is None or member in pick) and member not in omit

    def head(self, head: EntityHead) -> dict[str, Any]:
        """The entity's id, type and (sysAttrs) system attributes."""
        body: dict[str, Any] = {}
        if self._keeps_id:
            body["id"] = head.id
        if self._keeps_type:
            compact = self.context.compact
            types = head.types
            body["type"] = compact(types[0]) if len(types) == 1 else [compact(t) for t in types]
        if self.options.sys_attrs:
            for name, moment in (("createdAt", head.created_at), ("modifiedAt", head.modified_at)):
                if moment is not None:
                    body[name] = iso(moment)
        return body

    def entity(self, head: EntityHead, series: Mapping[SeriesKey, Series]) -> dict[str, Any]:
        """One entity in the normalized or simplified temporal representation."""
        body = self.head(head)
        for attribute, keys in _by_attribute(series):
            if not self._keeps(attribute):
                continue
            if self.options.format == TEMPORAL_VALUES:
                parts = [self.simplified(key, series[key]) for key in keys]
                body[self.context.compact(attribute)] = parts[0] if len(parts) == 1 else parts
            else:
                rendered = [i for key in keys for i in self.instances(key, series[key])]
                body[self.context.compact(attribute)] = rendered
        return body

    def aggregated(
        self,
        head: EntityHead,
        series: Mapping[SeriesKey, AggregatedSeries],
        edges: np.ndarray,
    ) -> dict[str, Any]:
        """One entity in the aggregated temporal representation over periods `edges`."""
        body = self.head(head)
        starts, ends = self._period_bounds(edges)
        for attribute, keys in _by_attribute(series):
            if not self._keeps(attribute):
                continue
            parts = []
            for key in keys:
                part: dict[str, Any] = {"type": series[key].kind}
                for method, values in series[key].results.items():
                    # Tuples: orjson writes them as arrays, and no list is built per period.
                    part[method] = list(zip(values, starts, ends, strict=True))
                if key[2]:
                    part["datasetId"] = key[2]
                parts.append(part)
            body[self.context.compact(attribute)] = parts[0] if len(parts) == 1 else parts
        return body

    def _period_bounds(self, edges: np.ndarray) -> tuple[list[str], list[str]]:
        """The periods' start and end times as the API writes them (formatted once)."""
        if self._periods is None or self._periods[0] is not edges:
            stamps = iso_times(edges)
            self._periods = (edges, stamps[:-1], stamps[1:])
        return self._periods[1], self._periods[2]

    def _content(self, kind: str, member: str, content: Any) -> tuple[str, str, Any, str | None]:
        """The content as shown: a LanguageProperty reduced to one language with `lang`."""
        if kind == "LanguageProperty" and self.options.lang is not None:
            value, tag = language_value(content, self.options.lang)
            return "Property", "value", value, tag
        if kind == "VocabProperty":
            content = self._vocab(content)
        return kind, member, content, None

    def _vocab(self, content: Any) -> Any:
        if isinstance(content, list):
            return [self.context.compact(t) if isinstance(t, str) else t for t in content]
        return self.context.compact(content) if isinstance(content, str) else content

    def _decoded(self, series: Series) -> Iterable[tuple[str, str, Any, str | None]]:
        others = series.others or [None] * len(series.values)
        for number, other in zip(series.values.tolist(), others, strict=True):
            yield self._content(*decode_value(number, other))

    def instances(self, key: SeriesKey, series: Series) -> list[dict[str, Any]]:
        """The normalized instances of one series, oldest first."""
        entity_id, attribute, dataset = key
        times = iso_times(series.times)
        ids = instance_ids(entity_id, attribute, dataset, series.times)
        units = series.unit_codes or [series.unit_code] * len(times)
        rendered = []
        for (kind, member, content, tag), moment, unit, instance in zip(
            self._decoded(series), times, units, ids, strict=True
        ):
            item: dict[str, Any] = {"type": kind, member: content, "observedAt": moment}
            if tag is not None:
                item["lang"] = tag
            if unit is not None:
                item["unitCode"] = unit
            if dataset:
                item["datasetId"] = dataset
            item["instanceId"] = instance
            rendered.append(item)
        return rendered

    def simplified(self, key: SeriesKey, series: Series) -> dict[str, Any]:
        """One series as `{"type": ..., "values": [[value, observedAt], ...]}`."""
        decoded = list(self._decoded(series))
        kind = decoded[-1][0] if decoded else "Property"
        pairs = [
            [content, moment]
            for (_, _, content, _), moment in zip(decoded, iso_times(series.times), strict=True)
        ]
        part: dict[str, Any] = {"type": kind, SIMPLIFIED_MEMBERS.get(kind, "values"): pairs}
        if key[2]:
            part["datasetId"] = key[2]
        return part


def _by_attribute(series: Mapping[SeriesKey, Any]) -> list[tuple[str, list[SeriesKey]]]:
    """Series keys grouped per attribute, the default datasetId first."""
    if len(series) == 1:
        (key,) = series
        return [(key[1], [key])]
    grouped: dict[str, list[SeriesKey]] = {}
    for key in sorted(series, key=lambda k: (k[1], k[2])):
        grouped.setdefault(key[1], []).append(key)
    return list(grouped.items())


def parse_temporal_options(options: str | None, format: str | None) -> tuple[str, bool]:
    """(representation, sysAttrs) from `options` and `format` (clause 6.3.12: `format`
    wins); `simplified` reads as temporalValues. BadRequestData for anything else."""
    tokens = [t.strip() for t in (options or "").split(",") if t.strip()]
    unknown = sorted(set(tokens) - {*FORMATS, "simplified", "sysAttrs"})
    if unknown:
        raise bad_request(
            f"unknown options {unknown}; use temporalValues, aggregatedValues and/or sysAttrs"
        )
    chosen = {_format_name(t) for t in tokens if t != "sysAttrs"}
    if format is not None:
        chosen = {_format_name(format)}
        if not chosen <= set(FORMATS):
            raise bad_request(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if len(chosen) > 1:
        raise bad_request(f"options ask for several representations at once: {sorted(chosen)}")
    return (chosen.pop() if chosen else NORMALIZED), "sysAttrs" in tokens


def _format_name(token: str) -> str:
    return TEMPORAL_VALUES if token == "simplified" else token
