"""Bulk device files: every invalid line reported with its number; all or nothing by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devices.bulk_import import (
    ImportRejected,
    LineError,
    accepted,
    parse_csv,
    parse_import_file,
    parse_yaml,
)
from devices.model import DeviceGroup

KNOWN = DeviceGroup(
    name="iota-no2",
    profile="iotagent-json",
    key_prefix="k1/",
    tenant="gent",
    apikey="k1",
    entity_type="AirQualityObserved",
)

YAML_OK = """\
groups:
  - name: dl-pm
    profile: ttn-v3
    key_prefix: "city-air/"
devices:
  - device_id: dl-pm-001
    profile: ttn-v3
    model: dl-pm
  - key: "12331981"
    device_id: airrohr-12331981
    profile: sensor-community
"""


def test_yaml_defaults_key_from_the_group_prefix():
    plan = parse_yaml(YAML_OK)
    assert plan.errors == []
    assert [key for key, _ in plan.devices] == ["city-air/dl-pm-001", "12331981"]
    assert [group.name for group in plan.groups] == ["dl-pm"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            # Two bad devices: both reported, each at the line its item starts on.
            "devices:\n"
            "  - device_id: a\n"
            "    profile: nope\n"
            "  - device_id: b\n"
            "    profile: ttn-v3\n"
            "  - device_id: c\n"
            "    profile: ttn-v3\n"
            "    location: [3.72, 95.0]\n",
            [(2, r"devices\[0\].profile: .*unknown profile 'nope'"), (6, "devices[2].location")],
        ),
        (
            "groups:\n  - name: g\n    profile: ttn-v3\n  - name: g\n    profile: ttn-v3\n",
            [(4, "groups[1].name: 'g' is defined twice (line 2)")],
        ),
        (
            "groups:\n"
            "  - name: g\n"
            "    profile: ttn-v3\n"
            "    autoprovision: perhaps\n"
            "devices:\n"
            "  - {device_id: d, model: g}\n",
            [
                (2, "groups[0].autoprovision"),
                (6, "devices[0].model: group 'g' is invalid (line 2)"),
            ],
        ),
        (
            "devices:\n  - {device_id: d, profile: ttn-v3, model: missing}\n",
            [(2, "devices[0].model: no group named 'missing'")],
        ),
        (
            "devices:\n  - {device_id: d, profile: ttn-v3}\n  - {device_id: d, profile: ttn-v3}\n",
            [(3, "devices[1].key: 'd' is given twice (line 2)")],
        ),
        (
            "devices:\n  - {device_id: d, profile: ttn-v3, model: iota-no2}\n",
            [(2, "group 'iota-no2' is for iotagent-json, the device for ttn-v3")],
        ),
        ("devices: [\n  {device_id: d\n", [(3, "not valid YAML")]),
        ("sensors: []\n", [(1, "sensors: unknown section")]),
        ("devices:\n  - just-a-string\n", [(2, "devices[0]: expected a mapping")]),
    ],
)
def test_yaml_errors_carry_item_lines(text, expected):
    plan = parse_yaml(text, [KNOWN])
    assert len(plan.errors) == len(expected), plan.errors
    for error, (line, fragment) in zip(plan.errors, expected, strict=True):
        assert error.line == line, error
        assert fragment in error.message or _matches(fragment, error.message), error


def _matches(pattern: str, message: str) -> bool:
    return re.search(pattern, message) is not None


CSV_HEADER = "device_id,profile,model,entity_type,longitude,latitude,apikey,static:street\n"


def test_csv_rows_become_devices_with_group_defaults():
    text = CSV_HEADER + (
        "no2-1,,iota-no2,,3.7174,51.0543,,Veldstraat\n"
        "no2-2,iotagent-json,,,,,k2,\n"
        "\n"
        "# a comment line\n"
    )
    plan = parse_csv(text, [KNOWN])
    assert plan.errors == []
    (key1, first), (key2, second) = plan.devices
    assert (key1, first.profile, first.tenant) == ("k1/no2-1", "iotagent-json", "gent")
    assert first.location == (3.7174, 51.0543)
    assert dict(first.static_attributes) == {"street": "Veldstraat"}
    assert (key2, second.apikey, second.model) == ("k2/no2-2", "k2", None)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("a,nope,,,,,,\n", [(2, r"row 1.profile: .*unknown profile")]),
        ("a,ttn-v3,,,3.7,,,\n", [(2, "row 1.longitude and latitude go together")]),
        ("a,ttn-v3,,,east,north,,\n", [(2, "row 1.location: not numbers")]),
        ("a,ttn-v3\n", [(2, "row 1: 2 values, the header has 8")]),
        ("a,ttn-v3,,,,,,\nb,ttn-v3,,,,,,\na,ttn-v3,,,,,,\n", [(4, "row 3.key: 'a' is given")]),
        ("a,ttn-v3,gone,,,,,\n", [(2, "row 1.model: no group named 'gone'")]),
        # A quoted cell over two lines: the next row's line number still counts both.
        ('a,ttn-v3,,,,,,"two\nlines"\nb,nope,,,,,,\n', [(4, r"row 2.profile")]),
        ("x,ttn-v3,,,,,,\n", [(2, "row 1.device_id: 'x' is registered already as")]),
    ],
)
def test_csv_errors_carry_line_numbers(rows, expected):
    plan = parse_csv(CSV_HEADER + rows, [KNOWN], {("", "x"): ("telraam", "9000")})
    assert [error.line for error in plan.errors] == [line for line, _ in expected], plan.errors
    for error, (_, pattern) in zip(plan.errors, expected, strict=True):
        assert _matches(pattern, error.message), error


@pytest.mark.parametrize(
    "header",
    ["profile,model\n", "device_id,colour\n", "device_id,device_id\n"],
)
def test_csv_header_must_name_known_columns(header):
    plan = parse_csv(header + "a,b\n")
    assert [error.line for error in plan.errors] == [1]
    assert plan.devices == []


def test_a_file_with_errors_imports_nothing_unless_partial():
    plan = parse_csv(CSV_HEADER + "good,ttn-v3,,,,,,\nbad,nope,,,,,,\n")
    with pytest.raises(ImportRejected, match="1 invalid lines; nothing imported"):
        accepted(plan)
    devices, groups = accepted(plan, partial=True)
    assert [device.device_id for _, device in devices] == ["good"]
    assert groups == []


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", YAML_OK), (".csv", CSV_HEADER)])
def test_parse_import_file_picks_the_format_by_suffix(tmp_path: Path, suffix, text):
    path = tmp_path / f"devices{suffix}"
    path.write_text(text, encoding="utf-8")
    assert parse_import_file(path).errors == []


def test_parse_import_file_refuses_other_suffixes(tmp_path: Path):
    path = tmp_path / "devices.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a .csv, .yaml or .yml file"):
        parse_import_file(path)


def test_line_error_reads_as_line_and_message():
    assert str(LineError(7, "devices[3].location: bad")) == "line 7: devices[3].location: bad"
