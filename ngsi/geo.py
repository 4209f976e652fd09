"""NGSI-LD geo-queries (ETSI GS CIM 009 v1.8, clause 4.10): parsing, checking, evaluation.

`parse_geo_query` turns the georel / geometry / coordinates / geoproperty parameters (URL
strings, or JSON from a POST /entityOperations/query body) into a `GeoQuery`, raising
BadRequestData for anything the grammar or GeoJSON (IETF RFC 7946) does not allow.
`matches` evaluates a query on one GeoJSON geometry with shapely; `entity_matches` on the
stored form of an entity (docs/ngsi-api.md). storage/geosql.py is the same in PostGIS and
must select the same entities: the rules for a usable stored geometry here and in
storage/migrations/0005_geo.sql are kept identical on purpose.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import shapely
from shapely.errors import GEOSException
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points
from shapely.validation import explain_validity

from ngsi.errors import bad_request

Georel = Literal["near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"]
GEORELS: tuple[str, ...] = get_args(Georel)
#: The geometries of clause 4.10 and how deep their positions are nested in `coordinates`.
POSITION_DEPTH: dict[str, int] = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
DEFAULT_GEOPROPERTY = "location"

# WGS84 ellipsoid, for geodesic distances in metres.
_A = 6378137.0
_F = 1 / 298.257223563
_B = _A * (1 - _F)
_E2 = _F * (2 - _F)
_MEAN_RADIUS = 6371008.8
# A coordinate this large is not one PostgreSQL and Python both read as a finite float8, so
# both paths refuse it (see stadspuls_geojson_coordinates_ok).
_MAGNITUDE_LIMIT = 1e308

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NEAR_MODIFIER = re.compile(r"(maxDistance|minDistance)==(.*)")


@dataclass(frozen=True)
class GeoQuery:
    """A checked geo-query: the relation, its distances in metres and the reference geometry."""

    georel: Georel
    geometry: BaseGeometry
    geoproperty: str = DEFAULT_GEOPROPERTY
    min_distance: float | None = None
    max_distance: float | None = None


class _Malformed(ValueError):
    """A GeoJSON geometry that does not meet RFC 7946 or clause 4.10; the message says why."""


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: str | list[Any] | None,
    geoproperty: str | None = None,
) -> GeoQuery | None:
    """The GeoQuery of the geo parameters, None if none is given; NgsiError if they are invalid."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(value is None for value in given.values()):
        if geoproperty is not None:
            raise bad_request("geoproperty is given without georel, geometry and coordinates")
        return None
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise bad_request(
            "a geo-query needs georel, geometry and coordinates together; missing: "
            + ", ".join(missing)
        )
    relation, minimum, maximum = _parse_georel(georel)
    kind = _parse_geometry_type(geometry)
    try:
        reference = _build_geometry(kind, _parse_coordinates(coordinates))
    except _Malformed as error:
        raise bad_request(f"coordinates are not a valid {kind}: {error}") from None
    return GeoQuery(relation, reference, _parse_geoproperty(geoproperty), minimum, maximum)


def _parse_georel(georel: Any) -> tuple[Georel, float | None, float | None]:
    if not isinstance(georel, str):
        raise bad_request(f"georel must be a string, not {type(georel).__name__}")
    name, *modifiers = georel.split(";")
    if name not in GEORELS:
        raise bad_request(
            f"unknown georel {georel!r}: expected near;maxDistance==<metres>, "
            "near;minDistance==<metres>, within, contains, intersects, equals, disjoint or overlaps"
        )
    if name != "near":
        if modifiers:
            raise bad_request(f"georel {name} takes no modifiers, got {georel!r}")
        return cast(Georel, name), None, None
    if not modifiers:
        raise bad_request(
            "georel near needs a distance: near;maxDistance==<metres> or near;minDistance==<metres>"
        )
    distances: dict[str, float] = {}
    for modifier in modifiers:
        found = _NEAR_MODIFIER.fullmatch(modifier)
        if not found:
            raise bad_request(
                f"invalid near modifier {modifier!r} in georel {georel!r}: "
                "expected maxDistance==<metres> or minDistance==<metres>"
            )
        key, text = found.groups()
        if key in distances:
            raise bad_request(f"{key} is given twice in georel {georel!r}")
        distance = float(text) if _NUMBER.fullmatch(text) else math.nan
        if not (math.isfinite(distance) and distance > 0):
            raise bad_request(f"{key} must be a positive number of metres, not {text!r}")
        distances[key] = distance
    minimum, maximum = distances.get("minDistance"), distances.get("maxDistance")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise bad_request(f"minDistance {minimum:g} exceeds maxDistance {maximum:g}")
    return "near", minimum, maximum


def _parse_geometry_type(geometry: Any) -> str:
    if isinstance(geometry, str) and geometry in POSITION_DEPTH:
        return geometry
    hint = ""
    if isinstance(geometry, str):
        # Lower-case names are common (NGSIv2 used them); the spec's are case-sensitive.
        for name in POSITION_DEPTH:
            if name.lower() == geometry.lower():
                hint = f" (did you mean {name}?)"
    raise bad_request(
        f"geometry must be one of {', '.join(POSITION_DEPTH)}, not {geometry!r}{hint}"
    )


def _parse_coordinates(coordinates: Any) -> Any:
    if isinstance(coordinates, str):
        try:
            return json.loads(coordinates)
        except RecursionError:
            raise _Malformed("the JSON array nests too deeply") from None
        except ValueError as error:
            raise _Malformed(f"not a JSON array ({error})") from None
    return coordinates


def _parse_geoproperty(geoproperty: Any) -> str:
    if geoproperty is None:
        return DEFAULT_GEOPROPERTY
    if not isinstance(geoproperty, str) or not geoproperty or geoproperty.split() != [geoproperty]:
        raise bad_request(f"geoproperty must be an attribute name, not {geoproperty!r}")
    return geoproperty


def _describe(value: Any) -> str:
    """A short description of a JSON value for an error detail; never raises, however deep."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return json.dumps(value[:40])
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float) or (isinstance(value, int) and value.bit_length() < 64):
        return repr(value)
    return f"a {type(value).__name__}"


def _position(value: list[Any], path: str) -> tuple[float, float]:
    if len(value) not in (2, 3):
        raise _Malformed(
            f"{path} must be [longitude, latitude] or [longitude, latitude, altitude],"
            f" not {len(value)} numbers"
        )
    numbers = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise _Malformed(f"{path}[{index}] is {_describe(item)}, not a number")
        try:
            number = float(item)
        except OverflowError:
            number = math.inf
        if not abs(number) < _MAGNITUDE_LIMIT:
            raise _Malformed(f"{path}[{index}] is not a finite number")
        numbers.append(number)
    longitude, latitude = numbers[0], numbers[1]
    if not -180 <= longitude <= 180:
        raise _Malformed(f"longitude {longitude} at {path}[0] is outside [-180, 180]")
    if not -90 <= latitude <= 90:
        raise _Malformed(f"latitude {latitude} at {path}[1] is outside [-90, 90]")
    return longitude, latitude


def _positions(value: Any, depth: int, path: str) -> Any:
    """`value` checked as positions nested `depth` arrays deep, with 2-D float positions."""
    if not isinstance(value, list):
        raise _Malformed(f"{path} must be an array, not {_describe(value)}")
    if depth == 0:
        return _position(value, path)
    if not value:
        raise _Malformed(f"{path} is an empty array")
    return [_positions(item, depth - 1, f"{path}[{index}]") for index, item in enumerate(value)]


def _check_line(line: list[Any], path: str) -> None:
    if len(line) < 2:
        raise _Malformed(f"{path} has {len(line)} position; a line needs at least 2")


def _check_rings(polygon: list[Any], path: str) -> None:
    for index, ring in enumerate(polygon):
        if len(ring) < 4:
            raise _Malformed(f"{path}[{index}] has {len(ring)} positions; a ring needs at least 4")
        if ring[0] != ring[-1]:
            raise _Malformed(
                f"{path}[{index}] is not closed: it starts at {list(ring[0])}"
                f" and ends at {list(ring[-1])}"
            )


def _build_geometry(kind: str, coordinates: Any) -> BaseGeometry:
    """The valid, non-empty shapely geometry of `kind` with `coordinates`, else _Malformed."""
    positions = _positions(coordinates, POSITION_DEPTH[kind], "coordinates")
    if kind == "LineString":
        _check_line(positions, "coordinates")
    elif kind == "MultiLineString":
        for index, line in enumerate(positions):
            _check_line(line, f"coordinates[{index}]")
    elif kind == "Polygon":
        _check_rings(positions, "coordinates")
    elif kind == "MultiPolygon":
        for index, polygon in enumerate(positions):
            _check_rings(polygon, f"coordinates[{index}]")
    try:
        geometry = shape({"type": kind, "coordinates": positions})
        valid = geometry.is_valid
    except (GEOSException, ValueError) as error:
        raise _Malformed(str(error)) from None
    if not valid:
        # Invalid geometries (self-intersecting rings...) make GEOS predicates unreliable.
        raise _Malformed(f"the {kind} is not valid: {explain_validity(geometry)}")
    return geometry


def geometry_from_geojson(geojson: Any) -> BaseGeometry | None:
    """The shapely geometry of a GeoJSON geometry object, or None when it is not a usable one."""
    if not isinstance(geojson, dict):
        return None
    kind = geojson.get("type")
    if not isinstance(kind, str) or kind not in POSITION_DEPTH:
        return None
    try:
        return _build_geometry(kind, geojson.get("coordinates"))
    except _Malformed:
        return None


def matches(query: GeoQuery, geojson: Any) -> bool:
    """Whether the GeoJSON geometry `geojson` (a GeoProperty value) satisfies `query`."""
    target = geometry_from_geojson(geojson)
    if target is None:
        return False
    reference = query.geometry
    try:
        if query.georel == "near":
            distance = distance_metres(target, reference)
            if query.max_distance is not None and not distance <= query.max_distance:
                return False
            return query.min_distance is None or distance >= query.min_distance
        # Clause 4.10: the entity's geometry is the first operand, the query's the second.
        return bool(_PREDICATES[query.georel](target, reference))
    except (GEOSException, ValueError):
        return False


_PREDICATES: dict[str, Callable[[BaseGeometry, BaseGeometry], bool]] = {
    "within": lambda target, reference: target.within(reference),
    "contains": lambda target, reference: target.contains(reference),
    "intersects": lambda target, reference: target.intersects(reference),
    "equals": lambda target, reference: target.equals(reference),
    "disjoint": lambda target, reference: target.disjoint(reference),
    "overlaps": lambda target, reference: target.overlaps(reference),
}


def entity_matches(
    query: GeoQuery, entity_attributes: dict[str, Any], expand: Callable[[str], str]
) -> bool:
    """Whether a stored entity (attribute IRI → attribute) matches: any GeoProperty instance."""
    value = entity_attributes.get(expand(query.geoproperty))
    instances = value if isinstance(value, list) else [value]
    return any(
        isinstance(instance, dict)
        and instance.get("type") == "GeoProperty"
        and matches(query, instance.get("value"))
        for instance in instances
    )


def geodesic_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Metres between two points on the WGS84 ellipsoid (Vincenty; haversine if it diverges)."""
    if lon1 == lon2 and lat1 == lat2:
        return 0.0
    u1 = math.atan((1 - _F) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - _F) * math.tan(math.radians(lat2)))
    sin_u1, cos_u1, sin_u2, cos_u2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    difference = math.radians(lon2 - lon1)
    lam = difference
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        if sin_sigma == 0:
            # Coincident points, or exactly antipodal ones (where Vincenty has no answer).
            return 0.0 if cos_sigma > 0 else _haversine(lon1, lat1, lon2, lat2)
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha else 0.0
        c = _F / 16 * cos2_alpha * (4 + _F * (4 - 3 * cos2_alpha))
        previous = lam
        lam = difference + (1 - c) * _F * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm**2))
        )
        if abs(lam - previous) < 1e-12:
            break
    else:
        # Nearly antipodal points, where Vincenty does not converge; far beyond city scale.
        return _haversine(lon1, lat1, lon2, lat2)
    u_squared = cos2_alpha * (_A**2 - _B**2) / _B**2
    a = 1 + u_squared / 16384 * (4096 + u_squared * (-768 + u_squared * (320 - 175 * u_squared)))
    b = u_squared / 1024 * (256 + u_squared * (-128 + u_squared * (74 - 47 * u_squared)))
    term = cos_sigma * (-1 + 2 * cos_2sm**2)
    term -= b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
    delta_sigma = b * sin_sigma * (cos_2sm + b / 4 * term)
    return _B * a * (sigma - delta_sigma)


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * _MEAN_RADIUS * math.asin(min(1.0, math.sqrt(h)))


def distance_metres(first: BaseGeometry, second: BaseGeometry) -> float:
    """The shortest distance in metres between two lon/lat geometries (0 when they meet)."""
    if first.intersects(second):
        return 0.0
    if isinstance(first, Point) and isinstance(second, Point):
        return geodesic_distance(first.x, first.y, second.x, second.y)
    # The closest pair is found in a local projection, centred first on the reference and
    # then on the pair itself so its scale is right where it matters; the distance between
    # that pair is then measured geodesically, as PostGIS does on geography.
    centre = second.centroid
    near_first, near_second = _nearest_pair(first, second, centre.x, centre.y)
    middle_lon = (near_first[0] + near_second[0]) / 2
    middle_lat = (near_first[1] + near_second[1]) / 2
    near_first, near_second = _nearest_pair(first, second, middle_lon, middle_lat)
    return geodesic_distance(*near_first, *near_second)


def _nearest_pair(
    first: BaseGeometry, second: BaseGeometry, lon0: float, lat0: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The closest points of two geometries, found in an equirectangular projection at lon0/lat0."""
    phi = math.radians(lat0)
    denominator = 1 - _E2 * math.sin(phi) ** 2
    # Metres per degree east and north at lat0 (prime vertical and meridian radii).
    east = math.radians(1) * _A / math.sqrt(denominator) * max(math.cos(phi), 1e-9)
    north = math.radians(1) * _A * (1 - _E2) / denominator**1.5

    def forward(xy: Any) -> Any:
        return (xy - (lon0, lat0)) * (east, north)

    points = nearest_points(shapely.transform(first, forward), shapely.transform(second, forward))
    return (
        (points[0].x / east + lon0, points[0].y / north + lat0),
        (points[1].x / east + lon0, points[1].y / north + lat0),
    )
