"""The syntax tree of the NGSI-LD query language `q` (ETSI GS CIM 009 v1.8, clause 4.9):
what ngsi/qlang.py parses into and ngsi/qeval.py and storage/qsql.py evaluate."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum

from ngsi.qregex import RegexNode


class Operator(StrEnum):
    """The comparison operators of clause 4.9."""

    EQUAL = "=="
    UNEQUAL = "!="
    GREATER = ">"
    GREATER_EQUAL = ">="
    LESS = "<"
    LESS_EQUAL = "<="
    MATCHES = "~="
    NOT_MATCHES = "!~="


#: Instance members a dotted path part may name (clause 4.9 example 8: `temperature.observedAt`).
META_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})


@dataclass(frozen=True)
class AttributePath:
    """`attribute.sub.meta[member.member]`, terms as written."""

    attribute: str
    sub_attributes: tuple[str, ...] = ()
    meta: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Number:
    value: Decimal


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Uri:
    value: str


@dataclass(frozen=True)
class Boolean:
    value: bool


@dataclass(frozen=True)
class DateTimeValue:
    value: datetime  # naive, UTC


@dataclass(frozen=True)
class DateValue:
    value: date


@dataclass(frozen=True)
class TimeValue:
    value: time  # naive, UTC


Scalar = Number | Text | Uri | Boolean | DateTimeValue | DateValue | TimeValue
TEMPORAL_KINDS = {DateTimeValue: "DateTime", DateValue: "Date", TimeValue: "Time"}


@dataclass(frozen=True)
class Range:
    low: Scalar
    high: Scalar


@dataclass(frozen=True)
class ValueList:
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Pattern:
    source: str
    regex: RegexNode


@dataclass(frozen=True)
class Existence:
    path: AttributePath


@dataclass(frozen=True)
class Comparison:
    path: AttributePath
    operator: Operator
    value: Scalar | Range | ValueList | Pattern


@dataclass(frozen=True)
class And:
    terms: tuple[QExpression, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[QExpression, ...]


QExpression = And | Or | Comparison | Existence

#: Where an instance's target value lies, by instance type (clause 4.9); other types: `value`.
TARGET_MEMBERS: dict[str, tuple[str, ...]] = {
    "Relationship": ("object",),
    "ListRelationship": ("objectList", "object"),
    "LanguageProperty": ("languageMap",),
    "VocabProperty": ("vocab",),
    "JsonProperty": ("json",),
    "ListProperty": ("valueList",),
}
DEFAULT_TARGET = ("value",)
#: Their target only takes `==` and `!=` (clause 4.9: any other operator does not match).
RELATIONSHIP_TYPES = frozenset({"Relationship", "ListRelationship"})

_DATE = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
#: The stored forms recognised as DateTime/Date/Time (UTC, at most microseconds); each
#: alternative in a syntax PostgreSQL's like_regex and Python's re read the same way.
TEMPORAL_FORMS: dict[str, tuple[str, ...]] = {
    "DateTime": (f"{_DATE}T{_TIME}Z", f"{_DATE}T{_TIME}\\.[0-9]{{1,6}}Z"),
    "Date": (_DATE,),
    "Time": (f"{_TIME}Z", f"{_TIME}\\.[0-9]{{1,6}}Z"),
}
_STORED = {kind: re.compile("|".join(forms)) for kind, forms in TEMPORAL_FORMS.items()}


def parse_stored_temporal(kind: str, text: str) -> datetime | date | time | None:
    """A stored DateTime/Date/Time string as a Python value, None when it is not one."""
    if not _STORED[kind].fullmatch(text) or text.startswith("0000"):
        return None
    try:
        if kind == "Date":
            return date.fromisoformat(text)
        if kind == "Time":
            return time.fromisoformat(text[:-1].ljust(15, "0") if "." in text else text[:-1])
        return datetime.fromisoformat(text[:-1].ljust(26, "0") if "." in text else text[:-1])
    except ValueError:  # a day the month lacks, e.g. 2019-02-29
        return None
