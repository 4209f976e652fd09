"""Validating feeds against the official WZDx 4.2 JSON Schema, offline.

The schemas are the published ones in ../shared/reference/wzdx-4.2/, registered under their
$id; the two GeoJSON schemas they $ref (geojson.org) are written here from RFC 7946 (3.1.1,
3.1.3, 3.1.4). Any other reference is refused instead of fetched, so a test never touches the
network. Formats are checked: date-time as RFC 3339 (5.6), email loosely.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

WZDX_DIRECTORY = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "wzdx-4.2"
ENTRY = "https://raw.githubusercontent.com/usdot-jpo-ode/wzdx/main/schemas/4.2/WorkZoneFeed.json"
_POSITION = {"type": "array", "minItems": 2, "items": {"type": "number"}}
_BBOX = {"type": "array", "minItems": 4, "items": {"type": "number"}}
GEOJSON_SCHEMAS = {
    "https://geojson.org/schema/LineString.json": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"enum": ["LineString"]},
            "coordinates": {"type": "array", "minItems": 2, "items": _POSITION},
            "bbox": _BBOX,
        },
    },
    "https://geojson.org/schema/MultiPoint.json": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"enum": ["MultiPoint"]},
            "coordinates": {"type": "array", "items": _POSITION},
            "bbox": _BBOX,
        },
    },
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@FORMATS.checks("email")
def _email(value: object) -> bool:
    return (
        not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None
    )


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


@cache
def wzdx_validator() -> Draft7Validator:
    """A validator of WZDx 4.2 WorkZoneFeeds that resolves every $ref locally."""
    resources = []
    for path in sorted(WZDX_DIRECTORY.glob("*.json")):
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
    for uri, document in GEOJSON_SCHEMAS.items():
        resources.append((uri, Resource.from_contents(document)))
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resources(resources)  # type: ignore[call-arg]
    entry = registry.contents(ENTRY)
    return Draft7Validator(entry, registry=registry, format_checker=FORMATS)


def wzdx_errors(feed: Any) -> list[str]:
    """Every schema violation of a feed, as readable lines ([] when it is valid)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in sorted(wzdx_validator().iter_errors(feed), key=lambda e: list(e.path))
    ]


def assert_valid_wzdx(feed: Any) -> None:
    """Fail with every violation when a feed is not a valid WZDx 4.2 WorkZoneFeed."""
    errors = wzdx_errors(feed)
    assert not errors, "not valid WZDx 4.2:\n" + "\n".join(errors)
