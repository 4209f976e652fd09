"""Values of a series as numbers numpy can aggregate (clause 4.5.19.1, tables 4.5.19.1-1..3).

Values that are not numbers are aggregated through codes: the distinct values in sorted
order (strings, DateTime values by their text, anything else by its canonical JSON), so
totalCount, distinctCount, min and max come out right for strings and dates; booleans count
as 0 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ngsi.temporal_output import decode_value
from storage.temporal_series import Series


@dataclass(frozen=True, slots=True)
class ValueView:
    """A series' values as numbers numpy can aggregate."""

    #: The kind of table 4.5.19.1-1..3 (Number, Boolean, String, DateTime, Object ...).
    kind: str
    #: The attribute type shown (Property, Relationship ...).
    attribute_type: str
    values: np.ndarray
    #: For values aggregated through codes: the value of each code (min and max show it).
    decode: list[Any] | None = None


def _kind(contents: list[Any], types: set[str]) -> str:
    if types == {"Relationship"}:
        return "Relationship"
    if all(isinstance(c, bool) for c in contents):
        return "Boolean"
    if all(isinstance(c, str) for c in contents):
        return "String"
    if all(
        isinstance(c, dict) and c.get("@type") in ("DateTime", "Date", "Time") for c in contents
    ):
        found = {c["@type"] for c in contents}
        return found.pop() if len(found) == 1 else "Object"
    if all(isinstance(c, list) for c in contents):
        return "Array"
    return "Object"


def _code_key(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("@value"), str):
        return content["@value"]
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()


def value_view(series: Series) -> ValueView:
    """The numbers to aggregate for one series (see the module docstring)."""
    if series.others is None:
        return ValueView("Number", "Property", series.values)
    decoded = [
        decode_value(number, other)
        for number, other in zip(series.values.tolist(), series.others, strict=True)
    ]
    contents = [content for _, _, content in decoded]
    kind = _kind(contents, {attribute_type for attribute_type, _, _ in decoded})
    attribute_type = decoded[-1][0] if decoded else "Property"
    if kind == "Boolean":
        return ValueView(kind, attribute_type, np.array(contents, dtype=np.float64), [False, True])
    keys = [_code_key(content) for content in contents]
    distinct, codes = np.unique(np.array(keys, dtype=object), return_inverse=True)
    first: dict[str, Any] = {}
    for key, content in zip(keys, contents, strict=True):
        first.setdefault(key, content)
    decode = [first[key] for key in distinct.tolist()]
    return ValueView(kind, attribute_type, codes.astype(np.float64), decode)
