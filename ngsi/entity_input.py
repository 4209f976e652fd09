"""Request bodies → the stored form of entities and attributes (docs/ngsi-api.md).

Accepts the normalized representation and the concise one (ETSI GS CIM 009, 4.5.1.1 and
4.5.3.3: the attribute type is inferred from `value`, `object`, `languageMap`, `vocab`,
`json`, or a bare value). Names are expanded with the caller's @context; `observedAt` is
checked and rewritten in UTC; every failure is BadRequestData saying which attribute and why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ngsi.errors import bad_request
from storage.entity_store import StoredEntity

PROPERTY_KINDS = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
#: Members of an attribute instance that are not sub-attributes (clause 4.5.2, 4.5.3).
CORE_MEMBERS = frozenset(
    {
        "type",
        "observedAt",
        "unitCode",
        "datasetId",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "lang",
        "instanceId",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
    }
    | set(PROPERTY_KINDS.values())
)
SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt"})
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
#: Characters an attribute or type name may not contain (clause 4.6.2; as Orion-LD refuses).
FORBIDDEN_NAME_CHARACTERS = frozenset("<>\"'=;()&? \t\n")
MAX_NAME_LENGTH = 512
MAX_DEPTH = 8

Expand = Callable[[str], str]


def now_iso() -> str:
    """The current time as stored: ISO 8601 UTC with microseconds and `Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_uri(text: Any) -> bool:
    """Whether `text` is an absolute URI (`scheme:rest`), as ids and datasetIds must be."""
    if not isinstance(text, str) or not text or len(text) > 2048:
        return False
    scheme, colon, rest = text.partition(":")
    return (
        bool(colon and rest and scheme)
        and scheme[0].isascii()
        and scheme[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
        and not any(c.isspace() or c in '<>"{}|\\^`' for c in text)
    )


def parse_datetime(text: Any, what: str) -> str:
    """An ISO 8601 date-time with a zone, returned in the stored UTC form."""
    if not isinstance(text, str):
        raise bad_request(f"{what} must be an ISO 8601 date-time string, not {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{what} is not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_name(name: Any, what: str) -> str:
    """An attribute or type name as written; BadRequestData when it cannot be one."""
    if not isinstance(name, str) or not name:
        raise bad_request(f"{what} must be a non-empty string, not {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise bad_request(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    bad = sorted({c for c in name if c in FORBIDDEN_NAME_CHARACTERS or ord(c) < 32})
    if bad and not is_uri(name):
        raise bad_request(f"{what} {name!r} contains forbidden characters {''.join(bad)!r}")
    return name


def is_geometry(value: Any) -> bool:
    """Whether `value` looks like a GeoJSON geometry (type and coordinates)."""
    return (
        isinstance(value, dict)
        and value.get("type") in GEOMETRY_TYPES
        and isinstance(value.get("coordinates"), list)
    )


def _check_geometry(value: Any, where: str) -> None:
    if not is_geometry(value):
        raise bad_request(f"{where}: a GeoProperty value must be a GeoJSON geometry")

    def numbers(item: Any, depth: int) -> bool:
        if depth > 4:
            return False
        if isinstance(item, list) and item and all(isinstance(c, int | float) for c in item):
            return len(item) in (2, 3) and -180 <= item[0] <= 180 and -90 <= item[1] <= 90
        return isinstance(item, list) and bool(item) and all(numbers(c, depth + 1) for c in item)

    if not numbers(value["coordinates"], 0):
        raise bad_request(f"{where}: GeoJSON coordinates are not valid longitude/latitude pairs")


def _infer_kind(name: str, value: dict[str, Any]) -> str:
    """The attribute type of a concise attribute object (clause 4.5.3.3)."""
    for kind in ("Relationship", "LanguageProperty", "VocabProperty", "JsonProperty"):
        if PROPERTY_KINDS[kind] in value:
            return kind
    if "valueList" in value:
        return "ListProperty"
    if "objectList" in value:
        return "ListRelationship"
    return "GeoProperty" if is_geometry(value.get("value")) else "Property"


class AttributeReader:
    """Normalizes attributes of one request with the caller's expansion."""

    def __init__(self, expand: Expand, now: str | None = None) -> None:
        self.expand = expand
        self.now = now or now_iso()

    def attribute(self, name: str, raw: Any) -> Any:
        """One attribute (an instance or a list of instances) in the stored form."""
        if isinstance(raw, list) and raw and all(_is_instance(item) for item in raw):
            instances = [self.instance(name, item, 0) for item in raw]
            datasets = [i.get("datasetId", "") for i in instances]
            if len(set(datasets)) != len(datasets):
                raise bad_request(f"attribute {name!r} has two instances with one datasetId")
            if len(instances) == 1 and "datasetId" not in instances[0]:
                return instances[0]
            return instances
        return self.instance(name, raw, 0)

    def instance(self, name: str, raw: Any, depth: int) -> dict[str, Any]:
        """One attribute instance (normalized or concise) in the stored form."""
        if depth > MAX_DEPTH:
            raise bad_request(f"attribute {name!r} nests sub-attributes too deeply")
        if not isinstance(raw, dict) or not _is_instance(raw):
            if raw is None:
                raise bad_request(f"attribute {name!r} has a null value")
            bare = "GeoProperty" if is_geometry(raw) else "Property"
            return self._stamp({"type": bare, "value": raw})
        kind: Any = raw.get("type")
        if kind is None:
            kind = _infer_kind(name, raw)
        if kind not in PROPERTY_KINDS:
            raise bad_request(
                f"attribute {name!r} has type {kind!r}; expected one of {sorted(PROPERTY_KINDS)}"
            )
        member = PROPERTY_KINDS[kind]
        if member not in raw or raw[member] is None:
            raise bad_request(f"attribute {name!r} of type {kind} needs a non-null {member!r}")
        instance: dict[str, Any] = {"type": kind, member: raw[member]}
        self._check_content(name, kind, raw[member])
        for key, value in raw.items():
            if key in ("type", member) or key in SYSTEM_MEMBERS:
                continue
            if key == "observedAt":
                instance[key] = parse_datetime(value, f"observedAt of {name!r}")
            elif key == "datasetId":
                if not is_uri(value):
                    raise bad_request(f"datasetId of {name!r} must be a URI, not {value!r}")
                instance[key] = value
            elif key == "unitCode":
                if not isinstance(value, str) or not value:
                    raise bad_request(f"unitCode of {name!r} must be a non-empty string")
                instance[key] = value
            elif key in CORE_MEMBERS:
                continue  # previousValue, lang ...: output-only members
            else:
                check_name(key, f"sub-attribute of {name!r}")
                instance[self.expand(key)] = self.instance(key, value, depth + 1)
        return self._stamp(instance)

    def _check_content(self, name: str, kind: str, content: Any) -> None:
        where = f"attribute {name!r}"
        if kind == "GeoProperty":
            _check_geometry(content, where)
        elif kind == "Relationship":
            targets = content if isinstance(content, list) else [content]
            if not targets or not all(is_uri(t) for t in targets):
                raise bad_request(f"{where}: a Relationship object must be a URI")
        elif kind == "LanguageProperty":
            if not isinstance(content, dict) or not all(
                isinstance(k, str) and isinstance(v, str | list) for k, v in content.items()
            ):
                raise bad_request(f"{where}: languageMap must map language tags to strings")
        elif kind == "VocabProperty":
            terms = content if isinstance(content, list) else [content]
            if not all(isinstance(t, str) and t for t in terms):
                raise bad_request(f"{where}: vocab must be a term or a list of terms")

    def _stamp(self, instance: dict[str, Any]) -> dict[str, Any]:
        instance["createdAt"] = instance["modifiedAt"] = self.now
        return instance


def _is_instance(raw: Any) -> bool:
    """Whether `raw` is an attribute object rather than a bare (concise) value."""
    if not isinstance(raw, dict) or is_geometry(raw):
        return False
    return (
        "type" in raw
        and raw["type"] in PROPERTY_KINDS
        or any(member in raw for member in PROPERTY_KINDS.values())
    )


def read_types(raw: Any, expand: Expand) -> list[str]:
    """The entity's types, expanded; BadRequestData when missing or malformed."""
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise bad_request("an entity needs a type")
    types = [expand(check_name(name, "entity type")) for name in names]
    return list(dict.fromkeys(types))


def read_scope(raw: Any) -> list[str] | None:
    """`scope`: one or more scopes such as `/Gent/Mobiliteit` (clause 4.18)."""
    if raw is None:
        return None
    scopes = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(s, str) and s.startswith("/") and "//" not in s for s in scopes):
        raise bad_request("scope must be a string or a list of strings like /City/Area")
    return scopes


def read_attributes(body: dict[str, Any], reader: AttributeReader) -> dict[str, Any]:
    """The attributes of a body (every member that is not id, type, scope or @context)."""
    attributes: dict[str, Any] = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS:
            continue
        check_name(name, "attribute name")
        attributes[reader.expand(name)] = reader.attribute(name, raw)
    return attributes


def read_entity(body: Any, expand: Expand, now: str | None = None) -> StoredEntity:
    """A whole entity from a request body."""
    if not isinstance(body, dict):
        raise bad_request("an entity must be a JSON object")
    entity_id = body.get("id")
    if not is_uri(entity_id):
        raise bad_request(f"entity id must be a URI, not {entity_id!r}")
    if "type" not in body:
        raise bad_request(f"entity {entity_id} has no type")
    reader = AttributeReader(expand, now)
    return StoredEntity(
        str(entity_id),
        read_types(body["type"], expand),
        read_attributes(body, reader),
        read_scope(body.get("scope")),
    )
