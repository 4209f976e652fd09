"""The NGSI-LD query language `q` (ETSI GS CIM 009 v1.8, clause 4.9), parsed into a small AST.

Grammar (clause 4.9 ABNF, with the choices made here):
- `;` is AND, `|` is OR, AND binds tighter; parentheses nest (the spec's examples nest them).
- A term is an attribute path, optionally followed by an operator and a value; a bare path is
  an existence test. No whitespace outside quoted strings; no `!` negation (not in the spec).
- Path: `attr`, `attr.sub.sub` (sub-attributes), then `[a.b]` or `[a][b]` members of a compound
  value (or, for a LanguageProperty, `[en]` / `[*]` the language). A dotted part that is
  `observedAt`, `createdAt`, `modifiedAt`, `unitCode` or `datasetId` names that member of
  the instance and must come last. Names are terms as written (letters, digits, `_`, one
  optional `prefix:`); the caller expands them.
- Values: JSON numbers and strings, `true`/`false`, unquoted DateTime (`Z` or `±hh:mm`,
  normalised to UTC), Date, Time (`Z`) and URIs; `a..b` ranges and `a,b,c` lists with `==`/`!=`.
  An unquoted value ends at `;`, `|`, `)`, `,` or `..`: quote a URI holding one of those.
- `~=`/`!~=` take a regular expression, as a JSON string or unquoted (up to a `;`, `|` or `)`
  outside its own parentheses and brackets), in the portable dialect of `ngsi.qregex`, which
  PostgreSQL and `ngsi.qeval` evaluate identically.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from ngsi.errors import ErrorType, NgsiError
from ngsi.qast import (
    META_MEMBERS,
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
    Text,
    TimeValue,
    Uri,
    ValueList,
)
from ngsi.qregex import PatternError, PatternTooComplex, parse_pattern

# Entity and instance members that are not attributes: naming one is a mistake worth a message.
_NOT_ATTRIBUTES = frozenset(
    {"id", "type", "scope", "value", "object", "languageMap", "vocab", "json", "valueList"}
    | {"objectList", "@id", "@type", "@context"}
)


_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE_LITERAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_LITERAL = re.compile(r"([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\"<>\\^`{}|\x00-\x1f\x7f]+")
_OPERATORS = sorted((op.value for op in Operator), key=len, reverse=True)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_COMPARABLE = (Number, Text, DateTimeValue, DateValue, TimeValue)
_KINDS = "numbers, strings, DateTimes, Dates or Times"


def _is_name_char(char: str, first: bool) -> bool:
    category = unicodedata.category(char)[0]
    return category == "L" or (not first and (category == "N" or char == "_"))


class _Parser:
    def __init__(self, text: str, max_terms: int, max_depth: int) -> None:
        self.text, self.pos, self.max_terms, self.max_depth = text, 0, max_terms, max_depth
        self.terms = 0

    def fail(self, message: str, at: int | None = None) -> NgsiError:
        position = self.pos if at is None else at
        return NgsiError(ErrorType.INVALID_REQUEST, f"q, character {position + 1}: {message}")

    def peek(self, count: int = 1) -> str:
        return self.text[self.pos : self.pos + count]

    def found(self) -> str:
        return repr(self.peek()) if self.peek() else "the end"

    def count_term(self, count: int = 1) -> None:
        self.terms += count
        if self.terms > self.max_terms:
            raise NgsiError(
                ErrorType.TOO_COMPLEX_QUERY, f"q has more than {self.max_terms} terms and values"
            )

    def expression(self, depth: int) -> QExpression:
        options = [self.conjunction(depth)]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.conjunction(depth))
        return options[0] if len(options) == 1 else Or(_flatten(Or, options))

    def conjunction(self, depth: int) -> QExpression:
        terms = [self.primary(depth)]
        while self.peek() == ";":
            self.pos += 1
            terms.append(self.primary(depth))
        return terms[0] if len(terms) == 1 else And(_flatten(And, terms))

    def primary(self, depth: int) -> QExpression:
        if self.peek() != "(":
            return self.term()
        if depth >= self.max_depth:
            raise NgsiError(
                ErrorType.TOO_COMPLEX_QUERY, f"q nests parentheses deeper than {self.max_depth}"
            )
        opening = self.pos
        self.pos += 1
        inner = self.expression(depth + 1)
        if self.peek() != ")":
            raise self.fail(f"the '(' at character {opening + 1} is not closed")
        self.pos += 1
        return inner

    def term(self) -> QExpression:
        self.count_term()
        path = self.path()
        operator = next((op for op in _OPERATORS if self.text.startswith(op, self.pos)), None)
        if operator is None:
            if self.peek() in ("", ";", "|", ")"):
                return Existence(path)
            if self.peek() == "=":
                raise self.fail("'=' is not an operator; compare with '=='")
            if self.peek() == "{":
                raise self.fail("linked-entity queries ({...}) are not supported")
            if self.peek().isspace():
                raise self.fail("spaces are only allowed inside quoted strings")
            raise self.fail(f"expected an operator or the end of the term, found {self.peek()!r}")
        self.pos += len(operator)
        op = Operator(operator)
        if op in (Operator.MATCHES, Operator.NOT_MATCHES):
            return Comparison(path, op, self.pattern())
        return Comparison(path, op, self.value(op))

    def name(self, what: str) -> str:
        start = self.pos
        self.word(what)
        after = self.text[self.pos + 1 : self.pos + 2]
        if self.peek() == ":" and after and _is_name_char(after, first=True):
            self.pos += 1  # a compact IRI `prefix:name` (clause 4.6.2)
            self.word(what)
        return self.text[start : self.pos]

    def word(self, what: str) -> None:
        if not (self.peek() and _is_name_char(self.peek(), first=True)):
            if self.peek() == "!":
                raise self.fail("'!' (negation) is not part of the q language (clause 4.9)")
            raise self.fail(f"expected {what}, found {self.found()}")
        self.pos += 1
        while self.peek() and _is_name_char(self.peek(), first=False):
            self.pos += 1

    def path(self) -> AttributePath:
        start = self.pos
        names = [self.name("an attribute name")]
        while self.peek() == ".":
            self.pos += 1
            names.append(self.name("a sub-attribute name after '.'"))
        members: list[str] = []
        while self.peek() == "[":
            self.pos += 1
            members.append(self.member())
            while self.peek() == ".":
                self.pos += 1
                members.append(self.member())
            if self.peek() != "]":
                raise self.fail(f"expected ']' or '.', found {self.found()}")
            self.pos += 1
        for index, name in enumerate(names):
            if name in _NOT_ATTRIBUTES or (index == 0 and name in META_MEMBERS):
                raise self.fail(
                    f"{name!r} is not an attribute: q filters on attributes and their "
                    "sub-attributes (use the type/id parameters to select entities by those)",
                    start,
                )
        meta = names[-1] if names[-1] in META_MEMBERS else None
        inner = [name for name in names[:-1] if name in META_MEMBERS]
        if inner or (meta and members):
            raise self.fail(f"{inner[0] if inner else meta} must end the attribute path", start)
        subs = tuple(names[1:-1] if meta else names[1:])
        return AttributePath(names[0], subs, meta, tuple(members))

    def member(self) -> str:
        start = self.pos
        if self.peek() == "*":
            self.pos += 1
            return "*"
        while self.peek() and (_is_name_char(self.peek(), False) or self.peek() == "-"):
            self.pos += 1
        if start == self.pos:
            raise self.fail(f"expected a member name, found {self.found()}")
        return self.text[start : self.pos]

    def value(self, op: Operator) -> Scalar | Range | ValueList:
        start = self.pos
        first = self.scalar()
        if self.peek(2) == "..":
            self.pos += 2
            high = self.scalar()
            if self.peek() == ",":
                raise self.fail("a value list cannot hold a range")
            if op not in (Operator.EQUAL, Operator.UNEQUAL):
                raise self.fail(f"a range needs '==' or '!=', not {op.value!r}", start)
            if not isinstance(first, _COMPARABLE) or type(first) is not type(high):
                raise self.fail(f"a range needs two {_KINDS} of the same kind", start)
            if first.value > high.value:  # type: ignore[operator]
                raise self.fail("the range's low end is above its high end", start)
            return Range(first, high)
        if self.peek() == ",":
            values = [first]
            while self.peek() == ",":
                self.pos += 1
                self.count_term()
                values.append(self.scalar())
            if op not in (Operator.EQUAL, Operator.UNEQUAL):
                raise self.fail(f"a value list needs '==' or '!=', not {op.value!r}", start)
            return ValueList(tuple(values))
        if op not in (Operator.EQUAL, Operator.UNEQUAL) and not isinstance(first, _COMPARABLE):
            message = f"{op.value!r} compares {_KINDS}; quote a URI to compare it as a string"
            raise self.fail(message, start)
        return first

    def scalar(self) -> Scalar:
        start = self.pos
        if self.peek() == '"':
            return Text(self.string())
        while self.peek() and self.peek() not in ';|),"' and not self.peek().isspace():
            if self.peek(2) == "..":
                break
            self.pos += 1
        atom = self.text[start : self.pos]
        if not atom:
            raise self.fail(f"expected a value, found {self.found()}")
        try:
            return _classify(atom)
        except ValueError as error:
            raise self.fail(str(error), start) from None

    def string(self) -> str:
        start, chars = self.pos, list[str]()
        self.pos += 1
        while True:
            char = self.peek()
            if not char:
                raise self.fail("this string has no closing '\"'", start)
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                chars.append(self.escape())
            elif char < " ":
                raise self.fail("control characters must be escaped in a string", self.pos - 1)
            else:
                chars.append(char)

    def escape(self) -> str:
        char = self.peek()
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char != "u":
            raise self.fail(f"invalid escape '\\{char}' in a string", self.pos - 2)
        code = self.hex4()
        if 0xD800 <= code < 0xDC00 and self.peek(2) == "\\u":
            self.pos += 2
            low = self.hex4()
            if 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
        if code == 0 or 0xD800 <= code < 0xE000:
            raise self.fail("\\u0000 and unpaired surrogates are not allowed", self.pos - 6)
        return chr(code)

    def hex4(self) -> int:
        digits = self.peek(4)
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail("'\\u' needs four hexadecimal digits")
        self.pos += 4
        return int(digits, 16)

    def pattern(self) -> Pattern:
        start = self.pos
        if self.peek() == '"':
            source = self.string()
        else:
            depth, class_start = 0, -1
            while self.peek() and (depth or class_start >= 0 or self.peek() not in ";|)"):
                char = self.peek()
                if char == "\\":
                    self.pos = min(self.pos + 2, len(self.text))
                    continue
                if class_start >= 0:  # a ']' first in a class is a literal
                    if char == "]" and self.text[class_start : self.pos] not in ("", "^"):
                        class_start = -1
                elif char == "[":
                    class_start = self.pos + 1
                else:
                    depth += {"(": 1, ")": -1}.get(char, 0)
                self.pos += 1
            source = self.text[start : self.pos]
            if not source:
                raise self.fail("expected a regular expression")
        try:
            return Pattern(source, parse_pattern(source))
        except PatternTooComplex as error:
            raise NgsiError(ErrorType.TOO_COMPLEX_QUERY, str(error)) from None
        except PatternError as error:
            raise self.fail(f"regular expression, {error}", start) from None


def _flatten(kind: type[And] | type[Or], terms: list[QExpression]) -> tuple[QExpression, ...]:
    # `(a;b);c` and `a;b;c` mean the same; one flat tuple keeps the AST canonical.
    flat: list[QExpression] = []
    for term in terms:
        flat.extend(term.terms if isinstance(term, kind) else (term,))
    return tuple(flat)


def _classify(atom: str) -> Scalar:
    """An unquoted value: a boolean, DateTime, Date, Time, number or URI (in that order)."""
    if atom in ("true", "false"):
        return Boolean(atom == "true")
    if match := _DATETIME.fullmatch(atom):
        day, clock, fraction, zone = match.groups()
        moment = _temporal(datetime.fromisoformat, f"{day}T{clock}", fraction, "DateTime")
        if zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            try:
                moment = moment - offset if zone[0] == "+" else moment + offset
            except OverflowError:
                raise ValueError(f"DateTime {atom!r} is out of range") from None
        return DateTimeValue(moment)
    if "T" in atom and atom[:4].isdigit():
        raise ValueError(f"{atom!r} is not a DateTime (write 2018-12-04T12:00:00Z or ±hh:mm)")
    if _DATE_LITERAL.fullmatch(atom):
        return DateValue(_temporal(date.fromisoformat, atom, None, "Date"))
    if match := _TIME_LITERAL.fullmatch(atom):
        return TimeValue(_temporal(time.fromisoformat, match.group(1), match.group(2), "Time"))
    if _NUMBER.fullmatch(atom):
        number = Decimal(atom)
        if abs(number.adjusted()) > 1000 or len(number.as_tuple().digits) > 1000:
            raise ValueError(f"number {atom[:20]!r} is out of range")
        return Number(number)
    if _URI.fullmatch(atom):
        return Uri(atom)
    raise ValueError(
        f"unquoted value {atom[:40]!r} is not a number, boolean, DateTime, Date, Time or URI; "
        "put strings in double quotes"
    )


def _temporal(parse, text: str, fraction: str | None, kind: str):  # type: ignore[no-untyped-def]
    if fraction and len(fraction) > 7:
        raise ValueError(f"{kind} {text}{fraction} has more than microsecond precision")
    try:
        value = parse(text + (fraction or ""))
    except ValueError:
        raise ValueError(f"{text}{fraction or ''} is not a valid {kind}") from None
    if kind != "Time" and value.year < 1:  # pragma: no cover - fromisoformat rejects year 0
        raise ValueError(f"{text} is not a valid {kind}")
    return value


def parse_q(text: str, *, max_terms: int = 64, max_depth: int = 16) -> QExpression:
    """Parse an NGSI-LD `q` string; NgsiError(InvalidRequest/TooComplexQuery) when it is not one."""
    if not isinstance(text, str) or not text:
        raise NgsiError(ErrorType.INVALID_REQUEST, "q is empty")
    for position, char in enumerate(text):
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            raise NgsiError(
                ErrorType.INVALID_REQUEST,
                f"q, character {position + 1}: NUL and surrogate characters are not allowed",
            )
    parser = _Parser(text, max_terms, max_depth)
    try:
        expression = parser.expression(0)
    except RecursionError:
        raise NgsiError(ErrorType.TOO_COMPLEX_QUERY, "q nests too deep") from None
    if parser.pos < len(text):
        char = text[parser.pos]
        what = "unbalanced ')'" if char == ")" else f"unexpected {char!r}"
        if char.isspace():
            what = "spaces are only allowed inside quoted strings"
        raise parser.fail(what)
    return expression
