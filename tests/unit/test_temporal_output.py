"""The pure parts of the temporal API: value encoding, paging, representations, options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ngsi.errors import NgsiError
from ngsi.temporal_input import encode_value, merge_newest
from ngsi.temporal_output import decode_value, parse_temporal_options
from ngsi.temporal_paging import cap_backward, cap_forward, cap_periods, content_range
from ngsi.temporal_params import TimeWindow
from ngsi.temporal_values import value_view
from storage.temporal_series import Series

T0 = datetime(2026, 3, 29, 0, tzinfo=UTC)


def us(*hours: float) -> np.ndarray:
    moments = [(T0 + timedelta(hours=h)).replace(tzinfo=None) for h in hours]
    return np.array(moments, dtype="datetime64[us]")


def series(*hours: float, others: list | None = None) -> Series:
    return Series("T", us(*hours), np.arange(len(hours), dtype=np.float64), others)


def z(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    ("instance", "stored", "shown"),
    [
        ({"type": "Property", "value": 12}, (12.0, None), ("Property", "value", 12.0)),
        ({"type": "Property", "value": "ok"}, (None, "ok"), ("Property", "value", "ok")),
        ({"type": "Property", "value": True}, (None, True), ("Property", "value", True)),
        (
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.7, 51.0]}},
            (None, {"type": "Point", "coordinates": [3.7, 51.0]}),
            ("GeoProperty", "value", {"type": "Point", "coordinates": [3.7, 51.0]}),
        ),
        (
            {"type": "Relationship", "object": "urn:x:1"},
            (None, {"type": "Relationship", "object": "urn:x:1"}),
            ("Relationship", "object", "urn:x:1"),
        ),
        (
            {"type": "LanguageProperty", "languageMap": {"nl": "a"}},
            (None, {"type": "LanguageProperty", "languageMap": {"nl": "a"}}),
            ("LanguageProperty", "languageMap", {"nl": "a"}),
        ),
    ],
)
def test_values_are_stored_and_read_back_with_their_type(instance, stored, shown):
    assert encode_value(instance) == stored
    number, other = stored
    assert decode_value(float("nan") if number is None else number, other) == shown


@pytest.mark.parametrize(
    ("found", "limit", "expected", "cut"),
    [
        ({"a": (0, 1, 2)}, 3, {"a": [0, 1, 2]}, False),
        ({"a": (0, 1, 2, 3)}, 3, {"a": [0, 1, 2]}, True),
        # b's 4th instance is the earliest left out: everything from hour 2.5 on waits.
        ({"a": (0, 1, 2, 3, 4), "b": (0, 0.5, 1, 2.5)}, 3,
         {"a": [0, 1, 2], "b": [0, 0.5, 1]}, True),
        ({"a": (0, 1, 2, 3), "b": (5,)}, 3, {"a": [0, 1, 2]}, True),
    ],
)  # fmt: skip
def test_cap_forward_cuts_every_series_at_one_instant(found, limit, expected, cut):
    keys = {name: ("urn:x:1", name, "") for name in found}
    answer, was_cut = cap_forward({keys[n]: series(*h) for n, h in found.items()}, limit)
    assert was_cut is cut
    got = {key[1]: answer[key].times.tolist() for key in answer}
    assert got == {n: us(*h).tolist() for n, h in expected.items()}


def test_cap_backward_keeps_the_newest():
    key = ("urn:x:1", "a", "")
    answer, cut = cap_backward({key: series(0, 1, 2, 3, 4, others=[None] * 5)}, 3)
    assert cut and answer[key].times.tolist() == us(2, 3, 4).tolist()
    assert answer[key].values.tolist() == [2.0, 3.0, 4.0]
    assert answer[key].others == [None, None, None]


@pytest.mark.parametrize(
    ("window", "last_n", "expected"),
    [
        (None, None, f"date-time {z(0)}-{z(2)}/*"),
        (TimeWindow("after", T0 - timedelta(hours=1), None), None, f"date-time {z(-1)}-{z(2)}/*"),
        (TimeWindow("before", None, T0 + timedelta(hours=9)), None, f"date-time {z(0)}-{z(2)}/*"),
        (TimeWindow("before", None, T0 + timedelta(hours=9)), 7, f"date-time {z(9)}-{z(0)}/7"),
        (None, 7, f"date-time {z(2)}-{z(0)}/7"),
    ],
)  # fmt: skip
def test_content_range(window, last_n, expected):
    answer = {("urn:x:1", "a", ""): series(0, 1, 2)}
    assert content_range(answer, window, last_n) == expected


def test_cap_periods():
    edges = us(0, 1, 2, 3, 4)
    assert cap_periods(edges, 4) == (edges, None)
    kept, header = cap_periods(edges, 2)
    assert kept.tolist() == us(0, 1, 2).tolist()
    assert header == f"date-time {z(0)}-{z(2)}/*"


@pytest.mark.parametrize(
    ("options", "format", "expected"),
    [
        (None, None, ("normalized", False)),
        ("temporalValues", None, ("temporalValues", False)),
        ("simplified,sysAttrs", None, ("temporalValues", True)),
        ("aggregatedValues", "temporalValues", ("temporalValues", False)),
        ("sysAttrs", "aggregatedValues", ("aggregatedValues", True)),
    ],
)
def test_temporal_options(options, format, expected):
    assert parse_temporal_options(options, format) == expected


@pytest.mark.parametrize(
    ("options", "format"),
    [("keyValues", None), ("temporalValues,aggregatedValues", None), (None, "concise")],
)
def test_temporal_options_refused(options, format):
    with pytest.raises(NgsiError, match="options|format"):
        parse_temporal_options(options, format)


@pytest.mark.parametrize(
    ("others", "kind", "codes", "decode"),
    [
        (["b", "a", "b"], "String", [1, 0, 1], ["a", "b"]),
        ([True, False, True], "Boolean", [1, 0, 1], [False, True]),
        (
            [{"@type": "DateTime", "@value": "2026-01-02T00:00:00Z"},
             {"@type": "DateTime", "@value": "2026-01-01T00:00:00Z"}],
            "DateTime",
            [1, 0],
            [{"@type": "DateTime", "@value": "2026-01-01T00:00:00Z"},
             {"@type": "DateTime", "@value": "2026-01-02T00:00:00Z"}],
        ),
        ([[1, 2], [1]], "Array", [0, 1], [[1, 2], [1]]),  # by JSON text: "[1,2]" < "[1]"
        (["a", {"b": 1}], "Object", [0, 1], ["a", {"b": 1}]),
    ],
)  # fmt: skip
def test_values_that_are_not_numbers_are_aggregated_through_codes(others, kind, codes, decode):
    view = value_view(Series("T", us(*range(len(others))), np.full(len(others), np.nan), others))
    assert (view.kind, view.values.tolist(), view.decode) == (kind, codes, decode)


def test_merge_newest_keeps_a_newer_latest_state():
    current = {"a": {"type": "Property", "value": 2, "observedAt": z(2)}}
    older = {"a": [{"type": "Property", "value": 1, "observedAt": z(1)}]}
    assert not merge_newest(current, older)
    newer = {"a": [{"type": "Property", "value": 3, "observedAt": z(3)}],
             "b": [{"type": "Property", "value": 4, "observedAt": z(0)}]}  # fmt: skip
    assert merge_newest(current, newer)
    assert (current["a"]["value"], current["b"]["value"]) == (3, 4)
