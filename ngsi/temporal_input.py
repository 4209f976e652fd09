"""Temporal write bodies → observation rows and latest-state instances (pure, no DB).

A temporal entity (ETSI GS CIM 009 v1.8, clause 4.5.9; 5.6.11, 5.6.13) is an entity whose
attributes are arrays of instances, each with its own `observedAt`. Every instance becomes
one row of `observations` (docs/temporal.md); the newest instance of each attribute and
datasetId also goes to the latest state in `entities`, where it replaces an older one only
(the same rule ingest follows), so a backfill never overwrites a newer reading.

How a value is stored, so that it can be read back with its attribute type:
- Property: a number in `value_num`, anything else as it is in `value_json` (as ingest).
- GeoProperty: the GeoJSON geometry in `value_json` (read back as a GeoProperty because it
  is a geometry, the inference clause 4.5.3.3 makes for concise attributes).
- Every other attribute type: `{"type": <type>, <member>: <content>}` in `value_json`, e.g.
  `{"type": "Relationship", "object": "urn:..."}`. A Property whose value is exactly such an
  object would read back as that type; no real data is shaped like that.
Sub-attributes other than `observedAt`, `unitCode` and `datasetId` are not kept in history
(they are kept in the latest state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ngsi.entity_input import (
    ENTITY_MEMBERS,
    PROPERTY_KINDS,
    AttributeReader,
    check_name,
    is_uri,
    read_scope,
    read_types,
)
from ngsi.entity_update import instances, merge_instances
from ngsi.errors import bad_request
from storage.records import ObservationRow

Expand = Callable[[str], str]
#: Attribute types stored wrapped in value_json (see the module docstring).
WRAPPED_KINDS = frozenset(PROPERTY_KINDS) - {"Property", "GeoProperty"}


def encode_value(instance: dict[str, Any]) -> tuple[float | None, Any]:
    """(value_num, value_json) of one normalized instance, as described above."""
    kind = instance.get("type", "Property")
    member = PROPERTY_KINDS.get(kind, "value")
    content = instance.get(member)
    if kind in WRAPPED_KINDS:
        return None, {"type": kind, member: content}
    if type(content) is int or type(content) is float:
        try:
            return float(content), None
        except OverflowError:
            pass
    return None, content


def observed_at_of(instance: dict[str, Any], name: str) -> datetime:
    """The `observedAt` of a temporal instance, which every one must have."""
    text = instance.get("observedAt")
    if not isinstance(text, str):
        raise bad_request(f"every instance of {name!r} needs observedAt (clause 4.5.9)")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(slots=True)
class TemporalFragment:
    """What one temporal body writes: rows, plus the newest instance per attribute and
    datasetId for the latest state."""

    entity_id: str
    types: list[str]
    rows: list[ObservationRow] = field(default_factory=list)
    #: attribute IRI → {datasetId: (observedAt, normalized instance)}
    newest: dict[str, dict[str, tuple[datetime, dict[str, Any]]]] = field(default_factory=dict)
    scope: list[str] | None = None

    def add(self, tenant: str, attribute: str, instance: dict[str, Any], name: str) -> None:
        """Add one normalized instance of `attribute` (IRI) as a row and a newest candidate."""
        moment = observed_at_of(instance, name)
        number, other = encode_value(instance)
        dataset = str(instance.get("datasetId", ""))
        self.rows.append(
            ObservationRow(
                tenant,
                self.entity_id,
                self.types[0],
                attribute,
                dataset,
                moment,
                number,
                other,
                instance.get("unitCode"),
            )
        )
        held = self.newest.setdefault(attribute, {}).get(dataset)
        if held is None or held[0] <= moment:
            self.newest[attribute][dataset] = (moment, instance)

    def absorb(self, other: TemporalFragment) -> None:
        """Take another fragment of the same entity in (its rows, its newer instances)."""
        self.rows.extend(other.rows)
        for attribute, by_dataset in other.newest.items():
            mine = self.newest.setdefault(attribute, {})
            for dataset, (moment, instance) in by_dataset.items():
                held = mine.get(dataset)
                if held is None or held[0] <= moment:
                    mine[dataset] = (moment, instance)

    def attributes(self) -> dict[str, list[dict[str, Any]]]:
        """The newest instances per attribute, for the latest state."""
        return {
            attribute: [instance for _, instance in by_dataset.values()]
            for attribute, by_dataset in self.newest.items()
        }


def _instances_of(name: str, raw: Any) -> list[Any]:
    """The instances an attribute of a temporal body holds: an array, or one object."""
    if isinstance(raw, list):
        if not raw:
            raise bad_request(f"attribute {name!r} has no instances")
        return raw
    return [raw]


def read_temporal_attributes(
    body: dict[str, Any], fragment: TemporalFragment, tenant: str, reader: AttributeReader
) -> None:
    """Every attribute instance of a temporal body (members other than id, type ...)."""
    for name, raw in body.items():
        if name in ENTITY_MEMBERS:
            continue
        check_name(name, "attribute name")
        attribute = reader.expand(name)
        for item in _instances_of(name, raw):
            fragment.add(tenant, attribute, reader.instance(name, item, 0), name)


def read_temporal_entity(
    body: Any,
    expand: Expand,
    tenant: str,
    now: str | None = None,
    expand_type: Expand | None = None,
) -> TemporalFragment:
    """A temporal entity body (POST /temporal/entities, backfill JSON) as a fragment; types
    expand with `expand_type` when given (ingest's vocabulary expands types apart)."""
    if not isinstance(body, dict):
        raise bad_request("a temporal entity must be a JSON object")
    entity_id = body.get("id")
    if not is_uri(entity_id):
        raise bad_request(f"entity id must be a URI, not {entity_id!r}")
    if "type" not in body:
        raise bad_request(f"entity {entity_id} has no type")
    fragment = TemporalFragment(str(entity_id), read_types(body["type"], expand_type or expand))
    fragment.scope = read_scope(body.get("scope"))
    read_temporal_attributes(body, fragment, tenant, AttributeReader(expand, now))
    return fragment


def read_temporal_fragment(
    body: Any, entity_id: str, types: list[str], expand: Expand, tenant: str
) -> TemporalFragment:
    """The attributes of POST /temporal/entities/{id}/attrs (clause 5.6.13) as a fragment."""
    if not isinstance(body, dict):
        raise bad_request("the attributes must be a JSON object")
    if body.get("id", entity_id) != entity_id:
        raise bad_request(f"the body's id {body.get('id')!r} is not the path's {entity_id!r}")
    fragment = TemporalFragment(entity_id, types)
    read_temporal_attributes(body, fragment, tenant, AttributeReader(expand))
    if not fragment.rows:
        raise bad_request("the body has no attribute instances")
    return fragment


def _moment(instance: dict[str, Any]) -> datetime | None:
    text = instance.get("observedAt")
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def merge_newest(current: dict[str, Any], newest: dict[str, list[dict[str, Any]]]) -> bool:
    """Merge newest instances into latest-state attributes where they are not older than the
    stored instance of their datasetId (ingest's rule); whether anything changed."""
    changed = False
    for attribute, candidates in newest.items():
        held = {str(i.get("datasetId", "")): i for i in instances(current.get(attribute))}
        for instance in candidates:
            old = held.get(str(instance.get("datasetId", "")))
            old_moment = _moment(old) if old is not None else None
            moment = _moment(instance)
            if old_moment is not None and moment is not None and old_moment > moment:
                continue
            current[attribute], _ = merge_instances(current.get(attribute), instance)
            changed = True
    return changed


def rows_of(fragments: Iterable[TemporalFragment]) -> list[ObservationRow]:
    """Every row of several fragments."""
    return [row for fragment in fragments for row in fragment.rows]
