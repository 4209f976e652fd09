"""Writing DATEX II v3.1 XML with lxml: namespaces, elements, numbers, times, locations, and
the publication header (who publishes, when).

Locations (DATEXII_3_LocationReferencing.xsd) follow the GeoJSON geometry (WGS84, lon/lat):

- Point → `loc:PointLocation` with `pointByCoordinates`;
- LineString → `loc:LinearLocation` with a `gmlLineString` (posList "lat lon ...", the axis
  order of EPSG:4326) and `coordinatesForDisplay`;
- Polygon, MultiPolygon → `loc:AreaLocation` with a `gmlMultiPolygon` (one `gmlPolygon` per
  polygon, exterior and interior rings) and `coordinatesForDisplay`;
- MultiPoint, MultiLineString, GeometryCollection → `loc:LocationGroupByList` of the parts
  (a single part is written as that part).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from shapely.geometry import shape

NAMESPACES = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "roa": "http://datex2.eu/schema/3/roadTrafficData",
    "sit": "http://datex2.eu/schema/3/situation",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
#: com:String and com:MultilingualStringValueType allow at most 1024 characters.
MAX_TEXT = 1024
Position = Sequence[float]
Rings = Sequence[Sequence[Position]]


class UnplaceableGeometry(ValueError):
    """A GeoJSON geometry that no DATEX II location can express (empty, unknown type)."""


def qualified(name: str) -> str:
    """`prefix:local` as lxml's `{namespace}local`."""
    prefix, _, local = name.partition(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


def element(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> Any:
    """A child element `prefix:local` of `parent`, with text and (unqualified) attributes."""
    child = etree.SubElement(parent, qualified(name))
    if text is not None:
        child.text = text
    for key, value in attributes.items():
        child.set(key, value)
    return child


def typed(parent: etree._Element, name: str, xsi_type: str) -> Any:
    """A child element whose concrete type is given by xsi:type (abstract DATEX classes)."""
    child = element(parent, name)
    child.set(qualified("xsi:type"), xsi_type)
    return child


def root(xsi_type: str, lang: str) -> Any:
    """The `d2:payload` element of a publication of type `xsi_type`."""
    payload = etree.Element(qualified("d2:payload"), nsmap=NAMESPACES)
    payload.set(qualified("xsi:type"), xsi_type)
    payload.set("lang", lang)
    payload.set("modelBaseVersion", "3")
    return payload


def serialize(payload: etree._Element) -> bytes:
    """The document as UTF-8 XML with a declaration."""
    result: bytes = etree.tostring(
        payload, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return result


def text(value: str) -> str:
    """Text cut to the length DATEX II strings allow."""
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def multilingual(parent: etree._Element, name: str, value: str, lang: str) -> Any:
    """A com:MultilingualString element holding one value."""
    holder = element(parent, name)
    values = element(holder, "com:values")
    element(values, "com:value", text(value), lang=lang)
    return holder


def timestamp(moment: datetime) -> str:
    """xs:dateTime in UTC with a Z (whole seconds unless there is a fraction)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal(value: float, places: int = 7) -> str:
    """A fixed-point number (GmlPosList allows no exponent), trailing zeros dropped."""
    formatted = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if formatted in ("", "-0") else formatted


def _coordinates(parent: etree._Element, name: str, position: Position) -> None:
    holder = element(parent, name)
    element(holder, "loc:latitude", decimal(position[1]))
    element(holder, "loc:longitude", decimal(position[0]))


def _pos_list(parent: etree._Element, name: str, positions: Sequence[Position]) -> None:
    line = element(parent, name, srsDimension="2", srsName="EPSG:4326")
    element(line, "loc:posList", " ".join(f"{decimal(p[1])} {decimal(p[0])}" for p in positions))


def _display_point(geometry: dict[str, Any]) -> Position:
    point = shape(geometry).representative_point()
    return (point.x, point.y)


def _point(parent: etree._Element, name: str, position: Position) -> None:
    location = typed(parent, name, "loc:PointLocation")
    by_coordinates = element(location, "loc:pointByCoordinates")
    _coordinates(by_coordinates, "loc:pointCoordinates", position)


def _line(parent: etree._Element, name: str, positions: Sequence[Position]) -> None:
    distinct = {tuple(p[:2]) for p in positions}
    if len(distinct) < 2:  # a degenerate line is a point
        _point(parent, name, positions[0])
        return
    location = typed(parent, name, "loc:LinearLocation")
    line = {"type": "LineString", "coordinates": [list(p[:2]) for p in positions]}
    _coordinates(location, "loc:coordinatesForDisplay", _display_point(line))
    _pos_list(location, "loc:gmlLineString", positions)


def _area(
    parent: etree._Element, name: str, polygons: Sequence[Sequence[Sequence[Position]]]
) -> None:
    location = typed(parent, name, "loc:AreaLocation")
    geometry = {"type": "MultiPolygon", "coordinates": polygons}
    _coordinates(location, "loc:coordinatesForDisplay", _display_point(geometry))
    multi = element(location, "loc:gmlMultiPolygon")
    for rings in polygons:
        polygon = element(multi, "loc:gmlPolygon")
        _pos_list(polygon, "loc:exterior", rings[0])
        for ring in rings[1:]:
            _pos_list(polygon, "loc:interior", ring)


def _parts(geometry: dict[str, Any]) -> list[dict[str, Any]]:
    """The simple geometries (Point, LineString, Polygon) a geometry consists of."""
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind in ("Point", "LineString", "Polygon", "MultiPolygon") and coordinates:
        return [geometry]
    if kind == "MultiPoint" and coordinates:
        return [{"type": "Point", "coordinates": c} for c in coordinates]
    if kind == "MultiLineString" and coordinates:
        return [{"type": "LineString", "coordinates": c} for c in coordinates if c]
    if kind == "GeometryCollection":
        return [part for item in geometry.get("geometries") or [] for part in _parts(item)]
    return []


def _simple(parent: etree._Element, name: str, geometry: dict[str, Any]) -> None:
    kind, coordinates = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        _point(parent, name, coordinates)
    elif kind == "LineString":
        _line(parent, name, coordinates)
    elif kind == "Polygon":
        _area(parent, name, [coordinates])
    else:
        _area(parent, name, coordinates)


def placeable(geometry: Any) -> bool:
    """Whether `location_reference` can write a location for this GeoJSON geometry."""
    return isinstance(geometry, dict) and bool(_parts(geometry))


def location_reference(parent: etree._Element, name: str, geometry: dict[str, Any]) -> None:
    """A location element `name` under `parent` for a GeoJSON geometry (see the module doc)."""
    parts = _parts(geometry)
    if not parts:
        raise UnplaceableGeometry(f"no DATEX II location for geometry {geometry.get('type')!r}")
    polygons = [p for p in parts if p["type"] in ("Polygon", "MultiPolygon")]
    if len(parts) == 1:
        _simple(parent, name, parts[0])
        return
    if len(polygons) == len(parts):  # polygons only: one area of all of them
        rings = [p["coordinates"] for p in polygons if p["type"] == "Polygon"]
        rings += [c for p in polygons if p["type"] == "MultiPolygon" for c in p["coordinates"]]
        _area(parent, name, rings)
        return
    group = typed(parent, name, "loc:LocationGroupByList")
    for part in parts:
        _simple(group, "loc:locationContainedInGroup", part)


@dataclass(frozen=True)
class Publisher:
    """Who publishes (com:publicationCreator) and in which language."""

    country: str = "be"
    national_identifier: str = "STADSPULS"
    lang: str = "nl"

    @property
    def table_id(self) -> str:
        """The id of the measurement site table."""
        return f"{self.national_identifier}_MST"


DEFAULT_PUBLISHER = Publisher()


def header(payload: Any, publication_time: datetime, publisher: Publisher) -> None:
    """publicationTime and publicationCreator, first in every publication."""
    element(payload, "com:publicationTime", timestamp(publication_time))
    creator = element(payload, "com:publicationCreator")
    element(creator, "com:country", publisher.country)
    element(creator, "com:nationalIdentifier", publisher.national_identifier)


def information_status(parent: Any, name: str) -> None:
    """A com:HeaderInformation element saying the information is real."""
    holder = element(parent, name)
    element(holder, "com:informationStatus", "real")


def digest(*parts: object) -> str:
    """A short stable hash of `parts` (versions of DATEX II objects)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]
