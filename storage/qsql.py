"""Compile a parsed `q` (ngsi.qlang) into a boolean SQL condition on a stored entity document.

Every query term becomes `jsonb_path_exists(<column>, <path>::jsonpath, <vars>::jsonb, true)`:
an SQL/JSON path in lax mode (which steps into arrays of instances by itself), with the
values in `vars`. The path and vars are `psycopg.sql.Literal`s, so the result is one
self-contained Composable with nothing to bind: psycopg quotes them, and attribute IRIs only
ever appear inside them as quoted JSON path keys, never as SQL. Regular expressions must be
literals in the path (`like_regex`): ngsi.qregex renders them from the parsed pattern, so
only its portable dialect can reach PostgreSQL. Type guards (`.type() == "number"` ...) keep
every comparison well typed: a mismatch is false, never unknown and never an error.

The semantics are those of ngsi.qeval (see its docstring), which must agree with this for
every expression and entity.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from psycopg import sql

from ngsi.qast import (
    DEFAULT_TARGET,
    RELATIONSHIP_TYPES,
    TARGET_MEMBERS,
    TEMPORAL_FORMS,
    TEMPORAL_KINDS,
    And,
    AttributePath,
    Boolean,
    Comparison,
    DateTimeValue,
    DateValue,
    Existence,
    Number,
    Operator,
    Or,
    Pattern,
    QExpression,
    Range,
    Scalar,
    TimeValue,
    ValueList,
)
from ngsi.qregex import to_postgres

#: The to_timestamp templates of each stored form in qlang.TEMPORAL_FORMS, in its order.
_TEMPLATES = {
    "DateTime": ('YYYY-MM-DD"T"HH24:MI:SS"Z"', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    "Date": ("YYYY-MM-DD",),
    "Time": ('HH24:MI:SS"Z"', 'HH24:MI:SS.US"Z"'),
}
#: How a DateTime/Date/Time query value is written into vars, and its template.
_VALUE_TEMPLATES = {
    DateTimeValue: 'YYYY-MM-DD"T"HH24:MI:SS.US',
    DateValue: "YYYY-MM-DD",
    TimeValue: "HH24:MI:SS.US",
}
_JSON_TYPES = {Number: "number", Boolean: "boolean"}
_ENTITY = sql.SQL("e.entity")


def compile_q(
    expression: QExpression,
    expand: Callable[[str], str],
    *,
    column: sql.Composable = _ENTITY,
) -> sql.Composable:
    """A boolean SQL expression: whether the jsonb `column` satisfies `expression`."""
    if isinstance(expression, And | Or):
        joiner = sql.SQL(" AND " if isinstance(expression, And) else " OR ")
        parts = [compile_q(term, expand, column=column) for term in expression.terms]
        return sql.SQL("({})").format(joiner.join(parts))
    builder = _PathBuilder()
    path = builder.jsonpath(expression, expand)
    return sql.SQL("jsonb_path_exists({}, {}::jsonpath, {}::jsonb, true)").format(
        column, sql.Literal(path), sql.Literal(builder.variables())
    )


def _string(text: str) -> str:
    """A JSON path string literal: JSON escapes, control characters as \\uXXXX."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 else c for c in escaped) + '"'


def _keys(keys: tuple[str, ...]) -> str:
    return "".join(".*" if key == "*" else "." + _string(key) for key in keys)


class _PathBuilder:
    def __init__(self) -> None:
        self.values: list[str] = []  # JSON texts of $v0, $v1 ...

    def variable(self, value: Scalar) -> str:
        if isinstance(value, Number):
            text = format(value.value, "f")  # plain digits: jsonb reads them exactly
        elif isinstance(value, Boolean):
            text = "true" if value.value else "false"
        elif isinstance(value, DateTimeValue | TimeValue):
            text = json.dumps(value.value.isoformat(timespec="microseconds"))
        else:
            text = json.dumps(
                value.value.isoformat() if isinstance(value, DateValue) else value.value
            )
        self.values.append(text)
        return f"$v{len(self.values) - 1}"

    def variables(self) -> str:
        return "{" + ",".join(f'"v{i}":{text}' for i, text in enumerate(self.values)) + "}"

    def jsonpath(self, term: Comparison | Existence, expand: Callable[[str], str]) -> str:
        path = term.path
        instances = "$" + _keys(
            tuple(expand(name) for name in (path.attribute, *path.sub_attributes))
        )
        if isinstance(term, Existence) and path.meta is None and not path.members:
            return "lax " + instances
        branches = []
        for relationship, condition, target in _branches(path):
            if isinstance(term, Existence):
                test = f"exists({target})"
            elif relationship and term.operator not in (Operator.EQUAL, Operator.UNEQUAL):
                continue
            else:
                test = self.test(target, term.operator, term.value)
            branches.append(f"({condition} && {test})" if condition else f"({test})")
        return f'lax {instances} ? (@.type() == "object" && ({" || ".join(branches)}))'

    def test(self, target: str, operator: Operator, value: object) -> str:
        if isinstance(value, Pattern):
            string = '@.type() == "string"'
            regex = _string(to_postgres(value.regex))
            found = f'exists({target} ? ({string} && @ like_regex {regex} flag "s"))'
            if operator is Operator.MATCHES:
                return found
            return f"(exists({target} ? ({string})) && !({found}))"
        if operator is Operator.UNEQUAL:
            return f"(exists({target}) && !(exists({target} ? ({self.equals(value)}))))"
        if operator is Operator.EQUAL:
            return f"exists({target} ? ({self.equals(value)}))"
        scalar: Scalar = value  # type: ignore[assignment]  # qlang lets only scalars here
        return f"exists({target} ? ({self.compare(scalar, [(operator.value, scalar)])}))"

    def equals(self, value: object) -> str:
        if isinstance(value, ValueList):
            return " || ".join(f"({self.equals(item)})" for item in value.values)
        if isinstance(value, Range):
            return self.compare(value.low, [(">=", value.low), ("<=", value.high)])
        scalar: Scalar = value  # type: ignore[assignment]
        return self.compare(scalar, [("==", scalar)])

    def compare(self, kind: Scalar, comparisons: list[tuple[str, Scalar]]) -> str:
        """`@` holds the kind of `kind` and stands in each relation to each value."""
        temporal = TEMPORAL_KINDS.get(type(kind))
        if temporal is None:
            json_type = _JSON_TYPES.get(type(kind), "string")
            tests = " && ".join(f"@ {op} {self.variable(value)}" for op, value in comparisons)
            return f'@.type() == "{json_type}" && {tests}'
        template = _string(_VALUE_TEMPLATES[type(kind)])
        variables = [(op, self.variable(value)) for op, value in comparisons]
        forms = []
        for form, stored in zip(TEMPORAL_FORMS[temporal], _TEMPLATES[temporal], strict=True):
            moment = f"@.datetime({_string(stored)})"
            tests = " && ".join(
                f"{moment} {op} {var}.datetime({template})" for op, var in variables
            )
            forms.append(f"(@ like_regex {_string('^(' + form + ')$')} && {tests})")
        # like_regex cannot tell year 0000 from a real year; Python's datetime has none.
        parsed = f'@.type() == "string" && !(@ starts with "0000") && ({" || ".join(forms)})'
        typed = (
            f'@.type() == "object" && exists(@."@type" ? (@.type() == "string" && '
            f'@ == {_string(temporal)})) && exists(@."@value" ? ({parsed}))'
        )
        return f"({parsed}) || ({typed})"


def _branches(path: AttributePath) -> list[tuple[bool, str, str]]:
    """(is a relationship, condition on the instance's type, target path) per instance type."""
    if path.meta is not None:
        return [(False, "", "@" + _keys((path.meta,)))]
    branches = []
    for kind, members in [*TARGET_MEMBERS.items(), ("", DEFAULT_TARGET)]:
        keys = members + (path.members or (("*",) if kind == "LanguageProperty" else ()))
        names = [kind] if kind else list(TARGET_MEMBERS)
        declared = " || ".join(f"@ == {_string(name)}" for name in names)
        condition = f'exists(@."type" ? (@.type() == "string" && ({declared})))'
        branches.append(
            (
                kind in RELATIONSHIP_TYPES,
                condition if kind else f"!({condition})",
                "@" + _keys(keys),
            )
        )
    return branches
