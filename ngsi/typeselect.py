"""The entity type selection language of the `type` parameter (ETSI GS CIM 009, 4.17).

`A,B` and `A|B` select entities of type A or B, `A;B` entities of both types, and
parentheses group: `(A;B)|C`. The terms are entity types as the caller wrote them; the
caller's @context expands them later.
"""

from __future__ import annotations

from dataclasses import dataclass

from ngsi.errors import invalid_request

MAX_TYPE_TERMS = 32
_OPERATORS = ",|;()"


@dataclass(frozen=True, slots=True)
class TypeName:
    """One entity type, as written."""

    name: str


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Entities with at least one of the alternatives."""

    alternatives: tuple[TypeSelection, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Entities with every one of the parts."""

    parts: tuple[TypeSelection, ...]


TypeSelection = TypeName | AnyOf | AllOf


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    name: list[str] = []
    for char in text:
        if char in _OPERATORS:
            if name:
                tokens.append("".join(name).strip())
                name = []
            tokens.append(char)
        else:
            name.append(char)
    if name:
        tokens.append("".join(name).strip())
    return tokens


def parse_type_selection(text: str) -> TypeSelection:
    """Parse a `type` parameter; InvalidRequest when it is not a valid selection."""
    tokens = _tokens(text)
    if sum(1 for token in tokens if token not in _OPERATORS) > MAX_TYPE_TERMS:
        raise invalid_request(f"type selects more than {MAX_TYPE_TERMS} types")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        token = peek()
        if token is None:
            raise invalid_request(f"type {text!r} ends too early")
        position += 1
        return token

    def disjunction(depth: int) -> TypeSelection:
        alternatives = [conjunction(depth)]
        while peek() in (",", "|"):
            take()
            alternatives.append(conjunction(depth))
        return alternatives[0] if len(alternatives) == 1 else AnyOf(tuple(alternatives))

    def conjunction(depth: int) -> TypeSelection:
        parts = [atom(depth)]
        while peek() == ";":
            take()
            parts.append(atom(depth))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def atom(depth: int) -> TypeSelection:
        token = take()
        if token == "(":
            if depth > 8:
                raise invalid_request("type selection is nested too deeply")
            inner = disjunction(depth + 1)
            if take() != ")":
                raise invalid_request(f"type {text!r}: missing ')'")
            return inner
        if token in _OPERATORS or not token or any(c.isspace() for c in token):
            raise invalid_request(f"type {text!r}: expected a type name, found {token!r}")
        return TypeName(token)

    selection = disjunction(0)
    if position != len(tokens):
        raise invalid_request(f"type {text!r}: unexpected {tokens[position]!r}")
    return selection


def type_names(selection: TypeSelection) -> list[str]:
    """Every type name the selection mentions."""
    if isinstance(selection, TypeName):
        return [selection.name]
    children = selection.alternatives if isinstance(selection, AnyOf) else selection.parts
    return [name for child in children for name in type_names(child)]
