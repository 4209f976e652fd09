"""Roadwork geometries as the line-based feeds need them (WZDx, Waze CIFS).

WZDx 4.2 allows a LineString (the path of the road event) or a MultiPoint ("when only the start
and end coordinates are known"); Waze wants a polyline. A CityWork location may be any GeoJSON
geometry (GIPOD zones are polygons), so each geometry becomes one or more *parts*:

- LineString: its path; MultiLineString: its lines, merged where they join;
- Polygon: the two ends of its long axis (the longer centre line of its minimum rotated
  rectangle, computed with longitudes scaled by cos(latitude) so that "long" is in metres): a
  zone drawn around a stretch of road yields its start and end, not a path;
- Point: that point as start and end; MultiPoint, MultiPolygon, GeometryCollection: one part
  per member (a road event is one stretch of one road, WZDx RoadEvent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shapely import affinity
from shapely.errors import ShapelyError
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    shape,
)
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge

#: Decimal places of the coordinates written (7 places: about a centimetre).
PRECISION = 7

Position = tuple[float, float]


@dataclass(frozen=True, slots=True)
class GeometryPart:
    """One stretch of a roadwork: positions (lon, lat) and whether they trace its path."""

    positions: tuple[Position, ...]
    #: True: the positions follow the road (a path); False: only start and end are known.
    is_path: bool


def _position(x: float, y: float) -> Position:
    return (round(float(x), PRECISION), round(float(y), PRECISION))


def _distinct(positions: list[Position]) -> list[Position]:
    """Positions without consecutive repeats."""
    kept: list[Position] = []
    for position in positions:
        if not kept or kept[-1] != position:
            kept.append(position)
    return kept


def _line_part(line: LineString) -> GeometryPart:
    positions = _distinct([_position(x, y) for x, y, *_ in line.coords])
    if len(positions) < 2:
        return GeometryPart((positions[0], positions[0]), is_path=False)
    return GeometryPart(tuple(positions), is_path=True)


def _long_axis(polygon: Polygon) -> GeometryPart:
    """The ends of the long axis of a polygon (see the module docstring)."""
    scale = math.cos(math.radians(polygon.centroid.y)) or 1.0
    scaled = affinity.scale(polygon, xfact=scale, yfact=1.0, origin=(0, 0))
    rectangle = scaled.minimum_rotated_rectangle
    if isinstance(rectangle, Point):
        ends = [(rectangle.x, rectangle.y)] * 2
    elif isinstance(rectangle, LineString):
        ends = [rectangle.coords[0][:2], rectangle.coords[-1][:2]]
    else:
        corners = list(rectangle.exterior.coords)[:4]
        sides = [
            math.dist(corners[i], corners[(i + 1) % 4]) for i in range(4)
        ]  # side i runs corners[i] -> corners[i+1]
        # The long axis joins the midpoints of the two short sides.
        short = 1 if sides[0] >= sides[1] else 0
        ends = [
            _midpoint(corners[short], corners[short + 1]),
            _midpoint(corners[short + 2], corners[(short + 3) % 4]),
        ]
    positions = tuple(_position(x / scale, y) for x, y in ends)
    return GeometryPart(positions, is_path=False)


def _midpoint(first: tuple[float, ...], second: tuple[float, ...]) -> tuple[float, float]:
    return ((first[0] + second[0]) / 2, (first[1] + second[1]) / 2)


def _parts(geometry: BaseGeometry) -> list[GeometryPart]:
    if geometry.is_empty:
        return []
    if isinstance(geometry, Point):
        position = _position(geometry.x, geometry.y)
        return [GeometryPart((position, position), is_path=False)]
    if isinstance(geometry, LineString):
        return [_line_part(geometry)]
    if isinstance(geometry, MultiLineString):
        merged = linemerge(geometry)
        lines = merged.geoms if isinstance(merged, MultiLineString) else [merged]
        return [_line_part(line) for line in lines if not line.is_empty]
    if isinstance(geometry, Polygon):
        return [_long_axis(geometry)]
    if isinstance(geometry, MultiPoint | MultiPolygon | GeometryCollection):
        return [part for member in geometry.geoms for part in _parts(member)]
    return []


def geometry_parts(geometry: dict[str, Any]) -> list[GeometryPart]:
    """The stretches of a GeoJSON geometry (WGS84 lon, lat); [] when it has none."""
    try:
        parsed = shape(geometry)
    except (ShapelyError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        return []
    return _parts(parsed)
