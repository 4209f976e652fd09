"""Stored entities → the representations a caller asks for (ETSI GS CIM 009, 4.5).

normalized (4.5.1), concise (4.5.3.3), keyValues/simplified (4.5.4), with or without the
system attributes (`options=sysAttrs`), one language of each LanguageProperty (`lang`,
4.15), projected by `attrs`, `pick` and `omit` (v1.8, 4.21), and as GeoJSON features (4.5.16).
Names are compacted with the caller's @context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ngsi.context import ActiveContext
from ngsi.entity_input import CORE_MEMBERS, PROPERTY_KINDS, SYSTEM_MEMBERS
from storage.entity_store import StoredEntity

FORMATS = ("normalized", "concise", "keyValues")
#: Entity members `pick` and `omit` may name besides attributes.
ENTITY_MEMBERS = ("id", "type", "scope")
LOCATION_IRI = "https://uri.etsi.org/ngsi-ld/location"


@dataclass(frozen=True, slots=True)
class Representation:
    """How to render entities for one request."""

    format: str = "normalized"
    sys_attrs: bool = False
    lang: str | None = None
    #: Attributes to include (IRIs); None for all.
    attributes: frozenset[str] | None = None
    #: Entity members (`id`, `type`, `scope`) and attribute IRIs to keep / to drop.
    pick: frozenset[str] | None = None
    omit: frozenset[str] = frozenset()
    #: GeoJSON: the GeoProperty (IRI) that becomes the feature's geometry.
    geometry_property: str = LOCATION_IRI


def iso(moment: datetime | None) -> str | None:
    """A timestamp column in the representation's UTC form."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _wanted(name: str, representation: Representation) -> bool:
    if representation.attributes is not None and name not in representation.attributes:
        return False
    if representation.pick is not None and name not in representation.pick:
        return False
    return name not in representation.omit


def _language_value(language_map: dict[str, Any], lang: str) -> tuple[Any, str]:
    """The value for `lang` (4.15): that tag, else `@none`, else the first one."""
    if lang in language_map:
        return language_map[lang], lang
    if lang == "*":
        return language_map, "*"
    if "@none" in language_map:
        return language_map["@none"], "@none"
    first = next(iter(language_map), None)
    return (language_map[first], first) if first is not None else ("", lang)


class Renderer:
    """Renders entities with one context and one representation."""

    def __init__(self, context: ActiveContext, representation: Representation) -> None:
        self.context = context
        self.representation = representation

    def entity(self, entity: StoredEntity) -> dict[str, Any]:
        """One entity in the requested format."""
        rep = self.representation
        compact = self.context.compact
        body: dict[str, Any] = {}
        if self._keeps("id"):
            body["id"] = entity.id
        if self._keeps("type"):
            types = [compact(t) for t in entity.types]
            body["type"] = types[0] if len(types) == 1 else types
        if entity.scope is not None and self._keeps("scope"):
            body["scope"] = entity.scope[0] if len(entity.scope) == 1 else entity.scope
        if rep.sys_attrs:
            body["createdAt"] = iso(entity.created_at)
            body["modifiedAt"] = iso(entity.modified_at)
        for name, value in entity.attributes.items():
            if _wanted(name, rep):
                body[compact(name)] = self.attribute(value)
        return body

    def _keeps(self, member: str) -> bool:
        rep = self.representation
        return (rep.pick is None or member in rep.pick) and member not in rep.omit

    def attribute(self, value: Any) -> Any:
        """An attribute (one instance or several) in the requested format."""
        if isinstance(value, list):
            rendered = [self.instance(instance) for instance in value]
            return rendered[0] if len(rendered) == 1 else rendered
        return self.instance(value)

    def instance(self, instance: dict[str, Any]) -> Any:
        """One attribute instance in the requested format."""
        kind = instance.get("type", "Property")
        member = PROPERTY_KINDS.get(kind, "value")
        content = instance.get(member)
        lang = self.representation.lang
        if kind == "LanguageProperty" and lang is not None and isinstance(content, dict):
            content, tag = _language_value(content, lang)
            kind, member = "Property", "value"
            instance = {**instance, "lang": tag}
        if self.representation.format == "keyValues":
            if kind == "VocabProperty":
                return self._vocab(content)
            return content
        out: dict[str, Any] = {"type": kind, member: content}
        if kind == "VocabProperty":
            out[member] = self._vocab(content)
        for key, item in instance.items():
            if key in ("type", "value", "object", "languageMap", "vocab", "json"):
                continue
            if key in SYSTEM_MEMBERS:
                if self.representation.sys_attrs:
                    out[key] = item
            elif key in CORE_MEMBERS:
                out[key] = item
            elif isinstance(item, dict):
                out[self.context.compact(key)] = self.instance(item)
        if self.representation.format == "concise":
            return _concise(out, member)
        return out

    def _vocab(self, content: Any) -> Any:
        if isinstance(content, list):
            return [self.context.compact(term) for term in content]
        return self.context.compact(content) if isinstance(content, str) else content

    def feature(self, entity: StoredEntity) -> dict[str, Any]:
        """One entity as a GeoJSON Feature (clause 4.5.16)."""
        geometry_name = self.representation.geometry_property
        geo = entity.attributes.get(geometry_name)
        if isinstance(geo, list):
            geo = next((i for i in geo if "datasetId" not in i), geo[0] if geo else None)
        properties = self.entity(entity)
        feature_id = properties.pop("id", entity.id)
        return {
            "id": feature_id,
            "type": "Feature",
            "geometry": geo.get("value") if isinstance(geo, dict) else None,
            "properties": properties,
        }

    def features(self, entities: Iterable[StoredEntity]) -> dict[str, Any]:
        """Entities as a GeoJSON FeatureCollection."""
        return {"type": "FeatureCollection", "features": [self.feature(e) for e in entities]}


def _concise(out: dict[str, Any], member: str) -> Any:
    """Drop what the concise format leaves implicit (clause 4.5.3.3)."""
    kind = out.pop("type")
    if len(out) == 1 and member == "value":
        content = out["value"]
        # A bare JSON object could be read back as an attribute object or a geometry.
        if kind == "GeoProperty" or not isinstance(content, dict):
            return content
    return out
