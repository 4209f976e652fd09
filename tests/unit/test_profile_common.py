"""Helpers shared by the profiles: the fast paths for exact JSON types must keep the rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devices.model import AttributeMapping, DecodeError
from devices.profiles.common import coerce, parse_time, point_from, to_float

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T12:00:00-00:00", NOON),
        ("2024-05-01T14:00:00+02:00", NOON),
        ("2024-05-01T12:00:00", NOON),
        ("2024-05-01T12:00:00.123456789Z", NOON.replace(microsecond=123456)),
        ("2024-05-01T12:00:00.5", NOON.replace(microsecond=500000)),
    ],
)
def test_parse_time_gives_the_utc_singleton(text: str, expected: datetime) -> None:
    moment = parse_time(text)
    assert moment == expected
    assert moment.tzinfo is UTC
    assert (moment.fold, moment.isoformat()) == (0, expected.isoformat())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.5, 2.5),
        (3, 3.0),
        (-0.0, -0.0),
        (" 12.5 ", 12.5),
        ("\x1c12\x1f", 12.0),  # whitespace to str.strip(), though float() refuses it
        ("1_000", 1000.0),
        ("nan", None),
        ("-", None),
        ("", None),
        ("inf", None),
        (float("nan"), None),
        (float("-inf"), None),
        (None, None),
    ],
)
def test_to_float_reads_numbers_and_numeric_text(value: Any, expected: float | None) -> None:
    number = to_float(value)
    assert number == expected
    assert type(number) is type(expected)
    if expected is not None:
        assert repr(number) == repr(expected)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (True, "got a boolean"),
        (False, "got a boolean"),
        ("warm", "not a number"),
        ([1], "got an array"),
        ({"value": 1}, "got an object"),
    ],
)
def test_to_float_refuses_what_is_not_a_number(value: Any, detail: str) -> None:
    with pytest.raises(DecodeError, match=detail):
        to_float(value, "t")


@pytest.mark.parametrize(
    ("value", "kind", "scale", "expected"),
    [
        (7, "Property", None, 7.0),
        (2.5, "Property", 10.0, 25.0),
        (True, "Property", 10.0, True),  # a JSON boolean is not a number
        ("12", "Property", 10.0, "12"),
        ({"a": 1}, "DateTime", None, {"a": 1}),
        (3, "StructuredValue", 10.0, 3),
        ("12", "Number", 10.0, 120.0),
        ("nan", "Number", 10.0, None),
        (1, "Boolean", None, True),
        (12, "Text", None, "12"),
    ],
)
def test_coerce_by_mapping_type(value: Any, kind: str, scale: float | None, expected: Any) -> None:
    result = coerce(value, AttributeMapping("x", "x", type=kind, scale=scale))
    assert result == expected
    assert type(result) is type(expected)


def test_coerce_refuses_a_boolean_under_a_number_type() -> None:
    with pytest.raises(DecodeError, match="got a boolean"):
        coerce(True, AttributeMapping("x", "x", type="Number"))


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [
        (None, None, None),
        ("51.05", None, None),
        (51.05, "3.72", {"type": "Point", "coordinates": [3.72, 51.05]}),
    ],
)
def test_point_from(latitude: Any, longitude: Any, expected: Any) -> None:
    assert point_from(latitude, longitude) == expected


def test_point_from_checks_both_values_even_when_one_is_missing() -> None:
    with pytest.raises(DecodeError, match="location.longitude: not a number"):
        point_from(None, "east")
