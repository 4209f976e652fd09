"""Bulk device files, YAML or CSV, checked line by line (pure: text in, plan out).

Every invalid item is reported with the line it starts on, and the whole file is refused
when any is invalid unless the caller asks for a partial import (`accepted(plan, partial=True)`):
a city registering 300 sensors wants the list of the 7 bad lines, not the first one, and
not 293 sensors registered behind their back.

YAML: the `groups:` / `devices:` document of devices/config_file.py. CSV: one device per
row under a header naming the columns (see CSV_COLUMNS); `static:<name>` columns add static
attributes. In both, a device without `key` gets its group's key prefix + its device id (for
iotagent-json without a group, `<apikey>/<device_id>`), and without `tenant` its group's.
A device's `model` may name a group of the file or one registered already (`known_groups`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from devices.config_file import DeviceEntry, GroupEntry
from devices.model import DeviceConfig, DeviceGroup

IOTA_PROFILE = "iotagent-json"
#: The CSV columns; `device_id` is required, `static:<name>` columns may be added.
CSV_COLUMNS = (
    "device_id",
    "key",
    "profile",
    "model",
    "tenant",
    "entity_type",
    "entity_name",
    "longitude",
    "latitude",
    "apikey",
)
STATIC_PREFIX = "static:"
#: (tenant, device id) → (profile, device key) of the devices registered already.
Registered = Mapping[tuple[str, str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class LineError:
    """One problem of an import file, at the line where the item starts."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class ImportPlan:
    """The valid groups and devices of a file, and the problems of the invalid ones."""

    groups: list[DeviceGroup] = field(default_factory=list)
    devices: list[tuple[str, DeviceConfig]] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


class ImportRejected(ValueError):
    """A file with invalid lines, refused as a whole."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} invalid lines; nothing imported")
        self.errors = errors


def accepted(
    plan: ImportPlan, partial: bool = False
) -> tuple[list[tuple[str, DeviceConfig]], list[DeviceGroup]]:
    """What to register: everything valid, or (without `partial`) nothing if anything is not."""
    if plan.errors and not partial:
        raise ImportRejected(plan.errors)
    return plan.devices, plan.groups


def _validation_messages(label: str, error: ValidationError) -> list[str]:
    messages = []
    for problem in error.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"])
        messages.append(f"{label}{where}: {problem['msg']}")
    return messages


class _Checker:
    """Validates items one by one, remembering what the earlier ones defined."""

    def __init__(self, known_groups: Iterable[DeviceGroup], registered: Registered) -> None:
        self.plan = ImportPlan()
        self.groups: dict[str, DeviceGroup] = {group.name: group for group in known_groups}
        self.file_groups: dict[str, int] = {}
        self.invalid_groups: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.registered = registered

    def fail(self, line: int, message: str) -> None:
        self.plan.errors.append(LineError(line, message))

    def group(self, item: Any, line: int, label: str) -> None:
        """Check one group item and keep it if valid."""
        if not isinstance(item, dict):
            self.fail(line, f"{label}: expected a mapping, got {item!r}")
            return
        try:
            entry = GroupEntry.model_validate(item)
        except ValidationError as error:
            for message in _validation_messages(label, error):
                self.fail(line, message)
            if isinstance(item.get("name"), str):
                self.invalid_groups[item["name"]] = line
            return
        if entry.name in self.file_groups:
            first = self.file_groups[entry.name]
            self.fail(line, f"{label}.name: {entry.name!r} is defined twice (line {first})")
            return
        self.file_groups[entry.name] = line
        group = entry.to_group()
        self.groups[group.name] = group
        self.plan.groups.append(group)

    def device(self, item: Any, line: int, label: str) -> None:
        """Check one device item (defaults filled from its group) and keep it if valid."""
        if not isinstance(item, dict):
            self.fail(line, f"{label}: expected a mapping, got {item!r}")
            return
        model = item.get("model")
        if isinstance(model, str) and model in self.invalid_groups:
            where = self.invalid_groups[model]
            self.fail(line, f"{label}.model: group {model!r} is invalid (line {where})")
            return
        group = self.groups.get(model) if isinstance(model, str) else None
        if model is not None and group is None:
            self.fail(line, f"{label}.model: no group named {model!r}")
            return
        item = _with_defaults(item, group)
        try:
            entry = DeviceEntry.model_validate(item)
        except ValidationError as error:
            for message in _validation_messages(label, error):
                self.fail(line, message)
            return
        if group is not None and group.profile != entry.profile:
            self.fail(
                line,
                f"{label}.model: group {group.name!r} is for {group.profile},"
                f" the device for {entry.profile}",
            )
            return
        if not self._unique(entry, line, label):
            return
        self.plan.devices.append((entry.key, entry.to_device()))

    def _unique(self, entry: DeviceEntry, line: int, label: str) -> bool:
        key, device_id = (entry.profile, entry.key), (entry.tenant, entry.device_id)
        for seen, value, what in ((self.keys, key, "key"), (self.ids, device_id, "device_id")):
            if value in seen:
                shown = value[1]
                self.fail(line, f"{label}.{what}: {shown!r} is given twice (line {seen[value]})")
                return False
        taken = self.registered.get(device_id)
        if taken is not None and taken != key:
            self.fail(
                line,
                f"{label}.device_id: {entry.device_id!r} is registered already"
                f" as {taken[0]} key {taken[1]!r}",
            )
            return False
        self.keys[key], self.ids[device_id] = line, line
        return True


def _with_defaults(item: dict[str, Any], group: DeviceGroup | None) -> dict[str, Any]:
    """The item with the profile, tenant and key its group (or apikey) implies."""
    item = dict(item)
    if group is not None:
        item.setdefault("profile", group.profile)
        if not item.get("tenant"):
            item["tenant"] = group.tenant
    device_id = item.get("device_id")
    if not item.get("key") and isinstance(device_id, str) and device_id:
        if group is not None:
            item["key"] = group.key_prefix + device_id
        elif item.get("profile") == IOTA_PROFILE and isinstance(item.get("apikey"), str):
            item["key"] = f"{item['apikey']}/{device_id}"
        else:
            item["key"] = device_id
    return item


# ---------------------------------------------------------------- YAML


def parse_yaml(
    text: str, known_groups: Iterable[DeviceGroup] = (), registered: Registered | None = None
) -> ImportPlan:
    """Check a YAML device file; each item's errors carry the item's first line."""
    checker = _Checker(known_groups, registered or {})
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        checker.fail(mark.line + 1 if mark else 1, f"not valid YAML: {error}")
        return checker.plan
    finally:
        loader.dispose()
    if data is None:
        return checker.plan
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        checker.fail(1, "expected a mapping with `groups:` and `devices:`")
        return checker.plan
    sections = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
    for name in sorted(set(sections) - {"groups", "devices"}):
        node = sections[name]
        checker.fail(node.start_mark.line + 1, f"{name}: unknown section (groups, devices)")
    # Groups first, wherever they stand, so devices can name any group of the file.
    for name, check in (("groups", checker.group), ("devices", checker.device)):
        node = sections.get(name)
        if node is None or data.get(name) is None:
            continue
        if not isinstance(node, yaml.SequenceNode):
            checker.fail(node.start_mark.line + 1, f"{name}: expected a list")
            continue
        for index, (item_node, item) in enumerate(zip(node.value, data[name], strict=True)):
            check(item, item_node.start_mark.line + 1, f"{name}[{index}]")
    return checker.plan


# ---------------------------------------------------------------- CSV


def _csv_item(row: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A CSV row as a device item, and the problems of its location cells."""
    item: dict[str, Any] = {}
    statics: dict[str, Any] = {}
    problems: list[str] = []
    for column, cell in row.items():
        value = cell.strip()
        if not value:
            continue
        if column.startswith(STATIC_PREFIX):
            statics[column[len(STATIC_PREFIX) :]] = value
        elif column not in ("longitude", "latitude"):
            item[column] = value
    longitude, latitude = row.get("longitude", "").strip(), row.get("latitude", "").strip()
    if bool(longitude) != bool(latitude):
        problems.append("longitude and latitude go together: give both or neither")
    elif longitude:
        try:
            item["location"] = (float(longitude), float(latitude))
        except ValueError:
            problems.append(f"location: not numbers: {longitude!r}, {latitude!r}")
    if statics:
        item["static_attributes"] = statics
    return item, problems


def parse_csv(
    text: str, known_groups: Iterable[DeviceGroup] = (), registered: Registered | None = None
) -> ImportPlan:
    """Check a CSV device file: a header line, then one device per row (blank, `#` skipped)."""
    checker = _Checker(known_groups, registered or {})
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return checker.plan
    columns = [column.strip() for column in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS and not c.startswith(STATIC_PREFIX)]
    if unknown or "device_id" not in columns or len(set(columns)) != len(columns):
        checker.fail(
            1,
            f"header: columns are {', '.join(CSV_COLUMNS)} and static:<name>"
            f" (device_id required, each once); unknown: {', '.join(unknown) or 'none'}",
        )
        return checker.plan
    line = reader.line_num + 1
    for index, cells in enumerate(reader):
        start, line = line, reader.line_num + 1  # a quoted cell may span lines
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        label = f"row {index + 1}"
        if len(cells) != len(columns):
            checker.fail(start, f"{label}: {len(cells)} values, the header has {len(columns)}")
            continue
        item, problems = _csv_item(dict(zip(columns, cells, strict=True)))
        for problem in problems:
            checker.fail(start, f"{label}.{problem}")
        if not problems:
            checker.device(item, start, label)
    return checker.plan


def parse_import_file(
    path: str | Path,
    known_groups: Iterable[DeviceGroup] = (),
    registered: Registered | None = None,
) -> ImportPlan:
    """Read and check a `.csv` or `.yaml`/`.yml` device file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")  # spreadsheets write a byte-order mark
    if path.suffix.lower() == ".csv":
        return parse_csv(text, known_groups, registered)
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, known_groups, registered)
    raise ValueError(f"{path}: expected a .csv, .yaml or .yml file")
