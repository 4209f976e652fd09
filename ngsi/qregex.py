"""The portable regular-expression dialect of `q`'s `~=`: parsed once, run in Python or PostgreSQL.

`parse_pattern` turns a pattern into a small AST (`RegexNode`); `search` runs it in Python
(ngsi.qeval) and `to_postgres` renders it as a PostgreSQL ARE (storage/qsql.py). The dialect
is the subset both read alike, so the two answer the same for every pattern and string:

Literals, `.` (any character but a newline), classes `[...]`/`[^...]` with ranges,
`\\d \\w \\s` (ASCII) and their negations, `\\t \\n \\r \\f \\v`, `\\` before punctuation,
groups `(...)`/`(?:...)`, `|`, `* + ? {n} {n,} {n,m}` (n, m <= 255; a lazy `?` is allowed
and ignored: only whether a match exists matters), `^`/`$` (whole-string anchors) and a
leading `(?i)` (ASCII case folding). Back-references, look-around, `\\b` and POSIX classes
differ between engines or make matching exponential, so they are refused.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class RegexClass:
    """A set of code point ranges (inclusive), or its complement."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False


@dataclass(frozen=True)
class RegexAnchor:
    at_end: bool


@dataclass(frozen=True)
class RegexConcat:
    items: tuple[RegexNode, ...]


@dataclass(frozen=True)
class RegexAlternation:
    options: tuple[RegexNode, ...]


@dataclass(frozen=True)
class RegexRepeat:
    item: RegexNode
    minimum: int
    maximum: int | None


RegexNode = RegexClass | RegexAnchor | RegexConcat | RegexAlternation | RegexRepeat


class PatternError(ValueError):
    """A pattern outside the dialect; the message names the character where parsing stopped."""


class PatternTooComplex(PatternError):
    """A pattern too long, too deeply nested or too large once expanded to run safely."""


#: Limits of a pattern: characters, size once repetitions are expanded (PostgreSQL's regex
#: compiler rejects far larger ones) and nesting of groups.
MAX_LENGTH = 1000
MAX_SIZE = 1000
MAX_DEPTH = 16
_CLASS_ESCAPES = {
    "d": ((48, 57),),
    "w": ((48, 57), (65, 90), (95, 95), (97, 122)),
    "s": ((9, 13), (32, 32)),
}
_CHAR_ESCAPES = {"t": 9, "n": 10, "r": 13, "f": 12, "v": 11}
_ANY_BUT_NEWLINE = RegexClass(((10, 10),), negated=True)


def parse_pattern(source: str) -> RegexNode:
    """The AST of a pattern; PatternError (PatternTooComplex) when it is not in the dialect."""
    return _Parser(source).parse()


class _Parser:
    def __init__(self, source: str) -> None:
        self.source, self.pos = source, 0
        self.fold, self.depth = False, 0

    def error(self, message: str) -> PatternError:
        return PatternError(f"character {self.pos + 1}: {message}")

    def parse(self) -> RegexNode:
        if len(self.source) > MAX_LENGTH:
            raise PatternTooComplex("the regular expression is too long")
        if self.source.startswith("(?i)"):
            self.fold, self.pos = True, 4
        node = self.alternation()
        if self.pos < len(self.source):
            raise self.error("unbalanced ')'")
        if _size(node) > MAX_SIZE:
            raise PatternTooComplex("the regular expression is too complex")
        return node

    def peek(self) -> str:
        return self.source[self.pos : self.pos + 1]

    def alternation(self) -> RegexNode:
        options = [self.concat()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.concat())
        return options[0] if len(options) == 1 else RegexAlternation(tuple(options))

    def concat(self) -> RegexNode:
        items: list[RegexNode] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            if self.peek() in ("*", "+", "?", "{"):
                if isinstance(atom, RegexAnchor):
                    raise self.error("an anchor cannot be repeated")
                atom = self.quantifier(atom)
            items.append(atom)
        return items[0] if len(items) == 1 else RegexConcat(tuple(items))

    def quantifier(self, atom: RegexNode) -> RegexNode:
        char = self.peek()
        self.pos += 1
        if char == "{":
            match = re.match(r"([0-9]{1,3})(,([0-9]{0,3}))?\}", self.source[self.pos :])
            if not match:
                raise self.error("malformed {n,m}; write a literal '{' as '\\{'")
            self.pos += match.end()
            low = int(match.group(1))
            high = (
                low if match.group(2) is None else int(match.group(3)) if match.group(3) else None
            )
            if low > 255 or (high is not None and (high > 255 or high < low)):
                raise self.error("repetition counts go up to 255, with n <= m")
        else:
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        if self.peek() == "?":
            self.pos += 1  # lazy: irrelevant to whether a match exists
        if self.peek() in ("*", "+", "?", "{"):
            raise self.error("a quantifier cannot follow another")
        return RegexRepeat(atom, low, high)

    def atom(self) -> RegexNode:
        char = self.peek()
        self.pos += 1
        if char == "(":
            if self.source.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.error("only (?:...) groups and a leading (?i) are supported")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise PatternTooComplex("the regular expression nests too deep")
            inner = self.alternation()
            if self.peek() != ")":
                raise self.error("'(' is not closed")
            self.pos += 1
            self.depth -= 1
            return inner
        if char in ("*", "+", "?", "{"):
            raise self.error(f"{char!r} has nothing to repeat")
        if char in ("^", "$"):
            return RegexAnchor(at_end=char == "$")
        if char == ".":
            return _ANY_BUT_NEWLINE
        if char == "[":
            return self.bracket()
        if char == "\\":
            return self.escape(in_class=False)
        return self.make_class(((ord(char), ord(char)),))

    def escape(self, in_class: bool) -> RegexClass:
        char = self.peek()
        self.pos += 1
        if char.lower() in _CLASS_ESCAPES:
            if char.isupper() and in_class:
                raise self.error(f"'\\{char}' is not supported inside [...]")
            return RegexClass(_CLASS_ESCAPES[char.lower()], negated=char.isupper())
        if char in _CHAR_ESCAPES:
            code = _CHAR_ESCAPES[char]
        elif char and char.isascii() and not char.isalnum():
            code = ord(char)
        else:
            raise self.error(f"unsupported escape '\\{char}'")
        return RegexClass(((code, code),))

    def bracket(self) -> RegexClass:
        negated = self.peek() == "^"
        self.pos += negated
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            if not self.peek():
                raise self.error("'[' is not closed")
            if self.peek() == "[":
                raise self.error("write a literal '[' in a class as '\\['")
            low, single = self.class_item()
            first = False
            if self.peek() == "-" and self.source[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                high, high_single = self.class_item()
                if not (single and high_single) or low[0][0] > high[0][0]:
                    raise self.error("invalid range in [...]")
                ranges.append((low[0][0], high[0][0]))
            else:
                ranges.extend(low)
        self.pos += 1
        return self.make_class(tuple(ranges), negated)

    def class_item(self) -> tuple[tuple[tuple[int, int], ...], bool]:
        """The ranges of one class member, and whether it is a single character."""
        char = self.peek()
        self.pos += 1
        if char != "\\":
            return ((ord(char), ord(char)),), True
        ranges = self.escape(in_class=True).ranges
        return ranges, self.source[self.pos - 1].lower() not in _CLASS_ESCAPES

    def make_class(self, ranges: tuple[tuple[int, int], ...], negated: bool = False) -> RegexClass:
        if self.fold:  # add the other case of every ASCII letter in the set
            extra = []
            for low, high in ranges:
                for start, stop, shift in ((65, 90, 32), (97, 122, -32)):
                    if max(low, start) <= min(high, stop):
                        extra.append((max(low, start) + shift, min(high, stop) + shift))
            ranges = ranges + tuple(extra)
        merged: list[tuple[int, int]] = []
        for low, high in sorted(ranges):
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return RegexClass(tuple(merged), negated)


def _size(node: RegexNode) -> int:
    if isinstance(node, RegexConcat):
        return sum(_size(item) for item in node.items)
    if isinstance(node, RegexAlternation):
        return sum(_size(option) for option in node.options) + 1
    if isinstance(node, RegexRepeat):
        return _size(node.item) * max(node.maximum or node.minimum, 1) + 1
    return 1


# A Thompson NFA: linear-time matching whatever the pattern (no catastrophic backtracking),
# with exactly the semantics of the AST.
_CHAR, _SPLIT, _START, _END, _MATCH = range(5)


def search(node: RegexNode, text: str) -> bool:
    """Whether the pattern matches anywhere in `text`, in time linear in its length."""
    program, start = _compile(node)
    end = len(text)
    waiting: list[int] = []
    for position in range(end + 1):
        stack, seen, ready = waiting + [start], set(), []
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            kind = program.kinds[state]
            if kind == _MATCH:
                return True
            if kind == _CHAR:
                ready.append(state)
            elif (
                kind == _SPLIT
                or (kind == _START and position == 0)
                or (kind == _END and position == end)
            ):
                stack.extend(program.outs[state])
        if position == end:
            break
        code = ord(text[position])
        waiting = [
            program.outs[state][0]
            for state in ready
            if _in_class(program.classes[state], code)  # type: ignore[arg-type]
        ]
    return False


class _Program:
    def __init__(self) -> None:
        self.kinds: list[int] = []
        self.classes: list[RegexClass | None] = []
        self.outs: list[list[int]] = []

    def add(self, kind: int, outs: list[int], char_class: RegexClass | None = None) -> int:
        self.kinds.append(kind)
        self.classes.append(char_class)
        self.outs.append(outs)
        return len(self.kinds) - 1

    def build(self, node: RegexNode, following: int) -> int:
        """Add the states of `node`, continuing to `following`; return its first state."""
        if isinstance(node, RegexClass):
            return self.add(_CHAR, [following], node)
        if isinstance(node, RegexAnchor):
            return self.add(_END if node.at_end else _START, [following])
        if isinstance(node, RegexConcat):
            for item in reversed(node.items):
                following = self.build(item, following)
            return following
        if isinstance(node, RegexAlternation):
            return self.add(_SPLIT, [self.build(option, following) for option in node.options])
        if node.maximum is None:
            state = self.add(_SPLIT, [])
            self.outs[state] = [self.build(node.item, state), following]
        else:
            state = following
            for _ in range(node.maximum - node.minimum):
                state = self.add(_SPLIT, [self.build(node.item, state), following])
        for _ in range(node.minimum):
            state = self.build(node.item, state)
        return state


@lru_cache(maxsize=256)
def _compile(node: RegexNode) -> tuple[_Program, int]:
    program = _Program()
    match = program.add(_MATCH, [])
    return program, program.build(node, match)


def _in_class(char_class: RegexClass, code: int) -> bool:
    index = bisect_right(char_class.ranges, (code, 0x110000)) - 1
    return (index >= 0 and char_class.ranges[index][1] >= code) != char_class.negated


def to_postgres(node: RegexNode) -> str:
    """The pattern as a PostgreSQL ARE, to be read under like_regex flag "s"."""
    if isinstance(node, RegexClass):
        if not node.ranges:
            return "." if node.negated else "[^\\u0001-\\U0010ffff]"  # NUL never reaches text
        body = "".join(
            _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
            for low, high in node.ranges
        )
        return f"[{'^' if node.negated else ''}{body}]"
    if isinstance(node, RegexAnchor):
        return "$" if node.at_end else "^"
    if isinstance(node, RegexConcat):
        return "".join(to_postgres(item) for item in node.items) if node.items else "(?:)"
    if isinstance(node, RegexAlternation):
        return "(?:" + "|".join(to_postgres(option) for option in node.options) + ")"
    inner = to_postgres(node.item)
    if not isinstance(node.item, RegexClass):
        inner = f"(?:{inner})"
    low, high = node.minimum, node.maximum
    shorthand = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
    if shorthand:
        return inner + shorthand
    return inner + (f"{{{low}}}" if low == high else f"{{{low},{'' if high is None else high}}}")


def _class_char(code: int) -> str:
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if 0x20 < code < 0x7F:
        return "\\" + char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
