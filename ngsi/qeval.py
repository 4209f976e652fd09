"""Evaluate a parsed `q` (ngsi.qlang) on one entity in its stored form (docs/ngsi-api.md).

storage/qsql.py runs the same expression in PostgreSQL as SQL/JSON path in lax mode; this
module is its twin and must answer the same for every entity, so paths are walked the way
lax mode walks them: a member access steps into one level of array, a filter looks at each
element of one level of array. Semantics (clause 4.9):
- The path selects instances (every instance of a multi-instance attribute; sub-attributes
  likewise); an entity matches when any instance matches.
- An instance's target value: `object` of a Relationship (`objectList[].object` of a
  ListRelationship), any value of `languageMap` of a LanguageProperty (or that of `[lang]`),
  `vocab`, `json`, `valueList` by type, else `value`; then the `[members]` of a compound value.
  A meta path (`attr.observedAt`) targets that member instead.
- `==`: some element of the target (the value, or the items of an array value) equals the
  value (any value of a list, or lies within a range). `!=`: the target exists and `==` does
  not hold. `< <= > >=`: some element compares so. Different kinds never compare equal: `!=`
  is then true, the rest false. Relationships take only `==` and `!=`.
- Kinds: numbers, strings (a URI is a string), booleans; a DateTime/Date/Time literal compares
  with strings in the stored UTC form (qlang.TEMPORAL_FORMS) and with {"@type", "@value"}
  objects of that type.
- `~=`: some string element matches (search, not full match). `!~=`: the target has string
  elements and none matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ngsi.qast import (
    DEFAULT_TARGET,
    RELATIONSHIP_TYPES,
    TARGET_MEMBERS,
    TEMPORAL_KINDS,
    And,
    Boolean,
    Comparison,
    Existence,
    Number,
    Operator,
    Or,
    Pattern,
    QExpression,
    Range,
    Scalar,
    ValueList,
    parse_stored_temporal,
)
from ngsi.qregex import search

_ORDER: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.EQUAL: lambda a, b: a == b,
    Operator.GREATER: lambda a, b: a > b,
    Operator.GREATER_EQUAL: lambda a, b: a >= b,
    Operator.LESS: lambda a, b: a < b,
    Operator.LESS_EQUAL: lambda a, b: a <= b,
}


def evaluate(
    expression: QExpression, entity_attributes: dict[str, Any], expand: Callable[[str], str]
) -> bool:
    """Whether an entity (attribute IRI → attribute, stored form) satisfies `expression`."""
    if isinstance(expression, And):
        return all(evaluate(term, entity_attributes, expand) for term in expression.terms)
    if isinstance(expression, Or):
        return any(evaluate(term, entity_attributes, expand) for term in expression.terms)
    path = expression.path
    instances: list[Any] = [entity_attributes]
    for term in (path.attribute, *path.sub_attributes):
        instances = _member(instances, expand(term))
    if isinstance(expression, Existence) and path.meta is None and not path.members:
        return bool(instances)
    return any(
        isinstance(instance, dict) and _instance_matches(instance, expression)
        for instance in _unwrap(instances)
    )


def _member(items: list[Any], key: str) -> list[Any]:
    found: list[Any] = []
    for item in items:
        for element in item if isinstance(item, list) else (item,):
            if isinstance(element, dict) and key in element:
                found.append(element[key])
    return found


def _wildcard(items: list[Any]) -> list[Any]:
    found: list[Any] = []
    for item in items:
        for element in item if isinstance(item, list) else (item,):
            if isinstance(element, dict):
                found.extend(element.values())
    return found


def _unwrap(items: list[Any]) -> list[Any]:
    return [element for item in items for element in (item if isinstance(item, list) else (item,))]


def _strings(items: list[Any]) -> list[str]:
    return [item for item in _unwrap(items) if isinstance(item, str)]


def _targets(instance: dict[str, Any], path: Any) -> list[tuple[bool, list[Any]]]:
    """(is a relationship, target items) for each type the instance declares."""
    if path.meta is not None:
        return [(False, _member([instance], path.meta))]
    types = set(_strings(_member([instance], "type")))
    chosen = [kind for kind in TARGET_MEMBERS if kind in types] or [""]
    result = []
    for kind in chosen:
        items = [instance]
        for key in TARGET_MEMBERS.get(kind, DEFAULT_TARGET):
            items = _member(items, key)
        members = path.members or (("*",) if kind == "LanguageProperty" else ())
        for member in members:
            items = _wildcard(items) if member == "*" else _member(items, member)
        result.append((kind in RELATIONSHIP_TYPES, items))
    return result


def _instance_matches(instance: dict[str, Any], term: Comparison | Existence) -> bool:
    for relationship, targets in _targets(instance, term.path):
        if isinstance(term, Existence):
            if targets:
                return True
        elif relationship and term.operator not in (Operator.EQUAL, Operator.UNEQUAL):
            continue
        elif _test(targets, term.operator, term.value):
            return True
    return False


def _test(targets: list[Any], operator: Operator, value: Any) -> bool:
    elements = _unwrap(targets)
    if isinstance(value, Pattern):
        strings = [element for element in elements if isinstance(element, str)]
        found = any(search(value.regex, string) for string in strings)
        return found if operator is Operator.MATCHES else bool(strings) and not found
    if operator is Operator.UNEQUAL:
        return bool(targets) and not any(_equals(element, value) for element in elements)
    if operator is Operator.EQUAL:
        return any(_equals(element, value) for element in elements)
    compare = _ORDER[operator]
    return any(compare(c, value.value) for e in elements for c in _comparables(e, value))


def _equals(element: Any, value: Scalar | Range | ValueList) -> bool:
    if isinstance(value, ValueList):
        return any(_equals(element, item) for item in value.values)
    if isinstance(value, Range):
        low, high = value.low.value, value.high.value
        return any(low <= c <= high for c in _comparables(element, value.low))  # type: ignore[operator]
    return any(c == value.value for c in _comparables(element, value))


def _comparables(element: Any, value: Scalar) -> list[Any]:
    """The element as Python values of the value's kind: none when the kinds differ."""
    if isinstance(value, Number):
        if isinstance(element, bool) or not isinstance(element, int | float):
            return []
        if isinstance(element, float):
            # repr is the shortest text that round-trips: the number as jsonb holds it.
            return [Decimal(repr(element))] if math.isfinite(element) else []
        return [Decimal(element)]
    if isinstance(value, Boolean):
        return [element] if isinstance(element, bool) else []
    kind = TEMPORAL_KINDS.get(type(value))
    if kind is None:  # Text or Uri
        return [element] if isinstance(element, str) else []
    texts = [element] if isinstance(element, str) else []
    if isinstance(element, dict) and kind in _strings(_member([element], "@type")):
        texts += _strings(_member([element], "@value"))
    parsed = (parse_stored_temporal(kind, text) for text in texts)
    return [moment for moment in parsed if moment is not None]
