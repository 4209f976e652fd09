"""ngsi/geo.py: geo-query parameters (clause 4.10) and their evaluation with shapely."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.errors import ErrorType, NgsiError
from ngsi.geo import (
    GEORELS,
    POSITION_DEPTH,
    distance_metres,
    entity_matches,
    geodesic_distance,
    geometry_from_geojson,
    matches,
    parse_geo_query,
)

# Ghent: the Korenmarkt, and a point on the same parallel 1002.65 m east of it (PostGIS
# geography ST_Distance gives 1002.6547 m).
CENTRE = [3.7174, 51.0543]
EAST_1KM = [3.7317, 51.0543]
FAR = [4.3517, 50.8503]  # Brussels
SQUARE = [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]]
INNER = [[[3.71, 51.05], [3.72, 51.05], [3.72, 51.06], [3.71, 51.06], [3.71, 51.05]]]
SHIFTED = [[[3.72, 51.05], [3.76, 51.05], [3.76, 51.08], [3.72, 51.08], [3.72, 51.05]]]
# East of the centre, its west edge (lon 3.73) 883.46 m away.
EAST_STRIP = [[[3.73, 51.0], [3.74, 51.0], [3.74, 51.1], [3.73, 51.1], [3.73, 51.0]]]
BOWTIE = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
OBSERVATION_SPACE = "https://uri.etsi.org/ngsi-ld/observationSpace"
TERMS = {"location": LOCATION, "observationSpace": OBSERVATION_SPACE}


def expand(term: str) -> str:
    """The core-context expansion of the two GeoProperty terms the tests use."""
    return TERMS.get(term, f"https://example.org/{term}")


def point(coordinates: list[float]) -> dict[str, Any]:
    """A GeoJSON Point."""
    return {"type": "Point", "coordinates": coordinates}


def polygon(coordinates: list[Any]) -> dict[str, Any]:
    """A GeoJSON Polygon."""
    return {"type": "Polygon", "coordinates": coordinates}


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty", "expected"),
    [
        ("near;maxDistance==1000", "Point", "[4.35,50.85]", None, ("near", None, 1000.0)),
        ("near;minDistance==10.5", "Point", "[4.35,50.85]", None, ("near", 10.5, None)),
        ("near;minDistance==1e2;maxDistance==2000", "Point", "[4, 50]", None, ("near", 100, 2000)),
        ("near;maxDistance==.5", "Point", [4.35, 50.85], None, ("near", None, 0.5)),
        ("within", "Polygon", json.dumps(SQUARE), None, None),
        ("contains", "Point", "[4.35, 50.85, 12.5]", None, None),
        ("intersects", "LineString", "[[4,50],[5,51]]", "observationSpace", None),
        ("equals", "MultiPoint", [[4, 50], [5, 51]], None, None),
        ("disjoint", "MultiLineString", [[[4, 50], [5, 51]]], None, None),
        ("overlaps", "MultiPolygon", [SQUARE, [[[1, 1], [2, 1], [2, 2], [1, 1]]]], None, None),
        ("within", "Polygon", [[[-180, -90], [180, -90], [180, 90], [-180, -90]]], None, None),
    ],
)
def test_valid_geo_queries_parse(
    georel: str, geometry: str, coordinates: Any, geoproperty: str | None, expected: Any
) -> None:
    query = parse_geo_query(georel, geometry, coordinates, geoproperty)
    assert query is not None
    assert query.georel == georel.split(";")[0]
    assert query.geometry.geom_type == geometry
    assert not query.geometry.has_z  # altitude is dropped: relations are 2-D, as in PostGIS
    assert query.geoproperty == (geoproperty or "location")
    if expected is not None:
        assert (query.georel, query.min_distance, query.max_distance) == expected


def test_no_geo_parameter_is_no_geo_query() -> None:
    assert parse_geo_query(None, None, None) is None


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty", "detail"),
    [
        ("within", None, None, None, r"together; missing: geometry, coordinates$"),
        (None, "Point", "[4, 50]", None, r"missing: georel$"),
        (None, None, None, "location", r"geoproperty is given without georel"),
        ("near", "Point", "[4, 50]", None, r"near needs a distance"),
        ("near;maxDistance=1000", "Point", "[4, 50]", None, r"invalid near modifier"),
        ("near;distance==1000", "Point", "[4, 50]", None, r"invalid near modifier"),
        ("near;maxDistance==-5", "Point", "[4, 50]", None, r"positive number of metres"),
        ("near;maxDistance==0", "Point", "[4, 50]", None, r"positive number of metres, not '0'"),
        ("near;maxDistance==abc", "Point", "[4, 50]", None, r"positive number of metres"),
        ("near;maxDistance==1e999", "Point", "[4, 50]", None, r"positive number of metres"),
        ("near;maxDistance==nan", "Point", "[4, 50]", None, r"positive number of metres"),
        ("near;maxDistance==1;maxDistance==2", "Point", "[4, 50]", None, r"given twice"),
        ("near;minDistance==10;maxDistance==5", "Point", "[4, 50]", None, r"10 exceeds max"),
        ("within;maxDistance==5", "Polygon", SQUARE, None, r"within takes no modifiers"),
        ("nearby", "Point", "[4, 50]", None, r"unknown georel 'nearby'"),
        ("coveredBy", "Point", "[4, 50]", None, r"unknown georel"),
        (5, "Point", "[4, 50]", None, r"georel must be a string, not int"),
        ("within", "point", "[4, 50]", None, r"not 'point' \(did you mean Point\?\)"),
        ("within", "Circle", "[4, 50]", None, r"geometry must be one of Point, MultiPoint"),
        ("within", "GeometryCollection", "[]", None, r"geometry must be one of"),
        ("within", "Point", "[4.35", None, r"not a JSON array"),
        ("within", "Point", "[" * 100_000, None, r"nests too deeply"),
        ("within", "Point", "{}", None, r"coordinates must be an array, not an object"),
        ("within", "Point", "[" * 900 + "]" * 899 + ", 50]", None, r"\[0\] is an array, not a"),
        ("within", "Point", [{1, 2}, 50], None, r"coordinates\[0\] is a set, not a number"),
        ("within", "Point", {"lon": 4}, None, r"coordinates must be an array"),
        ("within", "Point", "[4.35]", None, r"not 1 numbers"),
        ("within", "Point", "[4, 50, 1, 2]", None, r"not 4 numbers"),
        ("within", "Point", '["4.35", 50]', None, r'coordinates\[0\] is "4.35", not a number'),
        ("within", "Point", "[true, 50]", None, r"coordinates\[0\] is true, not a number"),
        ("within", "Point", "[NaN, 50]", None, r"coordinates\[0\] is not a finite number"),
        ("within", "Point", [10**400, 50], None, r"not a finite number"),
        ("within", "Point", "[190, 50]", None, r"longitude 190.0 at coordinates\[0\] is outside"),
        ("within", "Point", "[4, -95]", None, r"latitude -95.0 at coordinates\[1\] is outside"),
        ("within", "Point", "[[4, 50]]", None, r"not 1 numbers"),
        ("within", "MultiPoint", "[]", None, r"coordinates is an empty array"),
        ("within", "MultiPoint", "[4, 50]", None, r"coordinates\[0\] must be an array, not 4"),
        ("within", "LineString", "[[4, 50]]", None, r"has 1 position; a line needs at least 2"),
        ("within", "MultiLineString", "[[[4, 50]]]", None, r"coordinates\[0\] has 1 position"),
        ("within", "Polygon", "[]", None, r"empty array"),
        ("within", "Polygon", "[[[0,0],[1,0],[0,0]]]", None, r"has 3 positions; a ring needs"),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", None, r"\[0\] is not closed"),
        ("within", "MultiPolygon", [[[[0, 0], [1, 0], [1, 1], [0, 2]]]], None, r"\[0\]\[0\] is no"),
        ("within", "Polygon", BOWTIE, None, r"Polygon is not valid: Self-intersection"),
        ("within", "LineString", "[[4, 50], [4, 50]]", None, r"LineString is not valid: Too few"),
        ("within", "Point", "[4, 50]", "", r"geoproperty must be an attribute name"),
        ("within", "Point", "[4, 50]", "my location", r"geoproperty must be an attribute name"),
    ],
)
def test_invalid_geo_queries_are_bad_request_data(
    georel: Any, geometry: Any, coordinates: Any, geoproperty: Any, detail: str
) -> None:
    with pytest.raises(NgsiError, match=detail) as raised:
        parse_geo_query(georel, geometry, coordinates, geoproperty)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "target", "expected"),
    [
        # near: two points ~1 km apart.
        ("near;maxDistance==900", "Point", CENTRE, point(EAST_1KM), False),
        ("near;maxDistance==1100", "Point", CENTRE, point(EAST_1KM), True),
        ("near;minDistance==900", "Point", CENTRE, point(EAST_1KM), True),
        ("near;minDistance==1100", "Point", CENTRE, point(EAST_1KM), False),
        ("near;minDistance==500;maxDistance==1100", "Point", CENTRE, point(EAST_1KM), True),
        ("near;minDistance==1100;maxDistance==5000", "Point", CENTRE, point(EAST_1KM), False),
        ("near;maxDistance==1100", "Point", CENTRE, point(EAST_1KM + [30.0]), True),
        ("near;maxDistance==50000", "Point", CENTRE, point(FAR), False),
        ("near;maxDistance==60000", "Point", CENTRE, point(FAR), True),
        # near: distance to the nearest edge of a polygon, and 0 inside it.
        ("near;maxDistance==900", "Point", CENTRE, polygon(EAST_STRIP), True),
        ("near;maxDistance==850", "Point", CENTRE, polygon(EAST_STRIP), False),
        ("near;maxDistance==900", "Polygon", EAST_STRIP, point(CENTRE), True),
        ("near;minDistance==10", "Polygon", SQUARE, point(CENTRE), False),
        ("near;maxDistance==10", "Polygon", SQUARE, point(CENTRE), True),
        ("near;maxDistance==900", "LineString", [[3.73, 51.0], [3.73, 51.1]], point(CENTRE), True),
        ("near;maxDistance==850", "LineString", [[3.73, 51.0], [3.73, 51.1]], point(CENTRE), False),
        # within: the entity's geometry inside the query's.
        ("within", "Polygon", SQUARE, point(CENTRE), True),
        ("within", "Polygon", SQUARE, point(FAR), False),
        ("within", "Polygon", SQUARE, point([3.70, 51.05]), False),  # on the boundary
        ("within", "Polygon", SQUARE, polygon(INNER), True),
        ("within", "Polygon", INNER, polygon(SQUARE), False),
        ("within", "Polygon", SQUARE, polygon(SHIFTED), False),
        (
            "within",
            "MultiPolygon",
            [INNER, [[[4, 50], [5, 50], [5, 51], [4, 50]]]],
            point([4.9, 50.5]),
            True,
        ),
        # contains: the entity's geometry around the query's.
        ("contains", "Point", CENTRE, polygon(SQUARE), True),
        ("contains", "Polygon", SQUARE, point(CENTRE), False),
        ("contains", "Polygon", INNER, polygon(SQUARE), True),
        # intersects, equals, disjoint, overlaps.
        ("intersects", "LineString", [[3.69, 51.05], [3.75, 51.05]], polygon(SQUARE), True),
        ("intersects", "Point", [3.70, 51.05], polygon(SQUARE), True),
        ("intersects", "Point", FAR, polygon(SQUARE), False),
        (
            "intersects",
            "Point",
            [4.5, 50.5],
            {
                "type": "MultiPolygon",
                "coordinates": [INNER, [[[4, 50], [5, 50], [5, 51], [4, 50]]]],
            },
            True,
        ),
        ("equals", "Point", CENTRE, point(CENTRE), True),
        ("equals", "Point", CENTRE, point(CENTRE + [99.0]), True),
        ("equals", "Point", CENTRE, point(EAST_1KM), False),
        ("equals", "Polygon", [SQUARE[0][1:] + [SQUARE[0][1]]], polygon(SQUARE), True),
        ("equals", "Polygon", INNER, polygon(SQUARE), False),
        ("disjoint", "Point", FAR, polygon(SQUARE), True),
        ("disjoint", "Point", CENTRE, polygon(SQUARE), False),
        ("overlaps", "Polygon", SHIFTED, polygon(SQUARE), True),
        ("overlaps", "Polygon", INNER, polygon(SQUARE), False),
        ("overlaps", "Point", CENTRE, polygon(SQUARE), False),
        # A stored geometry that is not usable never matches, not even a disjoint query.
        ("disjoint", "Point", FAR, None, False),
        ("disjoint", "Point", FAR, "POINT (3 51)", False),
        ("disjoint", "Point", FAR, {"type": "Point"}, False),
        ("disjoint", "Point", FAR, point([200, 51]), False),
        ("disjoint", "Point", FAR, point(["3.7", 51]), False),
        ("disjoint", "Point", FAR, polygon([[[0, 0], [1, 0], [1, 1], [0, 1]]]), False),
        ("disjoint", "Point", FAR, polygon(BOWTIE), False),
        ("disjoint", "Point", FAR, {"type": "GeometryCollection", "geometries": []}, False),
        ("disjoint", "Point", FAR, {"type": "MultiPoint", "coordinates": []}, False),
    ],
)
def test_matches(georel: str, geometry: str, coordinates: Any, target: Any, expected: bool) -> None:
    query = parse_geo_query(georel, geometry, json.dumps(coordinates))
    assert query is not None
    assert matches(query, target) is expected


@pytest.mark.parametrize(
    ("attributes", "geoproperty", "expected"),
    [
        ({LOCATION: {"type": "GeoProperty", "value": point(CENTRE)}}, None, True),
        ({LOCATION: {"type": "GeoProperty", "value": point(FAR)}}, None, False),
        ({}, None, False),
        ({LOCATION: {"type": "Property", "value": point(CENTRE)}}, None, False),
        ({LOCATION: 42}, None, False),
        ({LOCATION: [42, None]}, None, False),
        (
            {
                LOCATION: [
                    {"type": "GeoProperty", "value": point(FAR), "datasetId": "urn:a"},
                    {"type": "GeoProperty", "value": point(CENTRE), "datasetId": "urn:b"},
                ]
            },
            None,
            True,
        ),
        ({OBSERVATION_SPACE: {"type": "GeoProperty", "value": polygon(INNER)}}, None, False),
        (
            {OBSERVATION_SPACE: {"type": "GeoProperty", "value": polygon(INNER)}},
            "observationSpace",
            True,
        ),
    ],
)
def test_entity_matches_on_the_stored_form(
    attributes: dict[str, Any], geoproperty: str | None, expected: bool
) -> None:
    query = parse_geo_query("within", "Polygon", SQUARE, geoproperty)
    assert query is not None
    assert entity_matches(query, attributes, expand) is expected


@pytest.mark.parametrize(
    ("first", "second", "metres", "tolerance"),
    [
        (CENTRE, EAST_1KM, 1002.6547, 0.001),  # PostGIS geography: 1002.65465392
        ([0, 0], [0, 1], 110574.3886, 0.001),  # one degree of latitude at the equator
        ([0, 0], [180, 0], 20_003_931.46, 20_000),  # antipodal: haversine fallback
        ([3.7, 51.0], [3.7, 51.0], 0.0, 0.0),
    ],
)
def test_geodesic_distance(
    first: list[float], second: list[float], metres: float, tolerance: float
) -> None:
    assert geodesic_distance(*first, *second) == pytest.approx(metres, abs=tolerance)


def test_distance_to_a_polygon_is_to_its_nearest_edge() -> None:
    strip = geometry_from_geojson(polygon(EAST_STRIP))
    centre = geometry_from_geojson(point(CENTRE))
    assert strip is not None and centre is not None
    expected = geodesic_distance(*CENTRE, 3.73, CENTRE[1])
    assert distance_metres(centre, strip) == pytest.approx(expected, rel=1e-6)
    assert distance_metres(strip, centre) == pytest.approx(expected, rel=1e-6)


# --- Property tests: no input raises anything but NgsiError --------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-200, max_value=200)
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=25,
)
_georels = st.sampled_from(
    [*GEORELS, "near;maxDistance==1000", "near;minDistance==5;maxDistance==9"]
) | st.text(max_size=30)
_geometries = st.sampled_from(list(POSITION_DEPTH)) | st.text(max_size=12)


@settings(max_examples=400, deadline=None)
@given(georel=_georels, geometry=_geometries, coordinates=st.text(max_size=60))
def test_random_coordinate_strings_raise_only_ngsi_errors(
    georel: str, geometry: str, coordinates: str
) -> None:
    with contextlib.suppress(NgsiError):
        parse_geo_query(georel, geometry, coordinates)


@settings(max_examples=400, deadline=None)
@given(geometry=st.sampled_from(list(POSITION_DEPTH)), value=_json_values, as_text=st.booleans())
def test_random_json_coordinates_raise_only_ngsi_errors(
    geometry: str, value: Any, as_text: bool
) -> None:
    coordinates = json.dumps(value) if as_text else value
    with contextlib.suppress(NgsiError):
        parse_geo_query("intersects", geometry, coordinates)


_longitudes = st.floats(min_value=3.6, max_value=3.8)
_latitudes = st.floats(min_value=51.0, max_value=51.1)
_rings = st.lists(st.tuples(_longitudes, _latitudes), min_size=3, max_size=7).map(
    lambda positions: [[*map(list, positions), list(positions[0])]]
)


@settings(max_examples=300, deadline=None)
@given(
    georel=st.sampled_from([*GEORELS[1:], "near;maxDistance==500", "near;minDistance==500"]),
    reference=_rings,
    target=st.one_of(
        _rings.map(polygon),
        st.tuples(_longitudes, _latitudes).map(lambda xy: point(list(xy))),
        st.fixed_dictionaries(
            {"type": st.sampled_from(list(POSITION_DEPTH))}, optional={"coordinates": _json_values}
        ),
        _json_values,
    ),
)
def test_matches_never_raises(georel: str, reference: Any, target: Any) -> None:
    with contextlib.suppress(NgsiError):  # a random ring may be self-intersecting
        query = parse_geo_query(georel, "Polygon", reference)
        assert query is not None
        assert matches(query, target) in (True, False)
