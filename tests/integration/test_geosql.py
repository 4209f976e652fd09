"""storage/geosql.py: PostGIS and the Python path (prefilter + ngsi.geo) select the same rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ngsi.errors import NgsiError
from ngsi.geo import GeoQuery, entity_matches, geometry_from_geojson, parse_geo_query
from storage.backend import detect_backend
from storage.database import connect, create_database_if_missing, drop_database
from storage.geosql import (
    compile_geo,
    install_geo_functions,
    postgis_available,
    postgis_available_async,
    prefilter_without_postgis,
)
from storage.migrate import migrate
from tests.support.fixtures import MAINTENANCE_URL, scratch_database_url

pytestmark = pytest.mark.integration

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
OBSERVATION_SPACE = "https://uri.etsi.org/ngsi-ld/observationSpace"
TERMS = {"location": LOCATION, "observationSpace": OBSERVATION_SPACE}

# Ghent around the Korenmarkt (CENTRE); distances from CENTRE in the comments.
CENTRE = [3.7174, 51.0543]
EAST_1KM = [3.7317, 51.0543]  # 1002.65 m
NORTH_3KM = [3.7174, 51.0813]  # 3003 m
FAR = [4.3517, 50.8503]  # Brussels
SQUARE = [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]]
INNER = [[[3.71, 51.05], [3.72, 51.05], [3.72, 51.06], [3.71, 51.06], [3.71, 51.05]]]
SHIFTED = [[[3.72, 51.05], [3.76, 51.05], [3.76, 51.08], [3.72, 51.08], [3.72, 51.05]]]
NEAR_EAST = [[[3.73, 51.05], [3.735, 51.05], [3.735, 51.06], [3.73, 51.06], [3.73, 51.05]]]  # 883 m
BRUSSELS = [[[4.34, 50.84], [4.36, 50.84], [4.36, 50.86], [4.34, 50.86], [4.34, 50.84]]]


def expand(term: str) -> str:
    """The core-context expansion of the GeoProperty terms used here."""
    return TERMS.get(term, f"https://example.org/{term}")


def geo(value: Any, **members: Any) -> dict[str, Any]:
    """A GeoProperty instance."""
    return {"type": "GeoProperty", "value": value, **members}


def located(value: Any) -> dict[str, Any]:
    """Stored attributes with `location` holding `value` as one GeoProperty instance."""
    return {LOCATION: geo(value)}


def point(coordinates: Any) -> dict[str, Any]:
    """A GeoJSON Point."""
    return {"type": "Point", "coordinates": coordinates}


NAME = {"https://example.org/name": {"type": "Property", "value": "no location"}}
ENTITIES: dict[str, Any] = {
    "centre": located(point(CENTRE)),
    "east_1km": located(point(EAST_1KM)),
    "north_3km": located(point(NORTH_3KM)),
    "far": located(point(FAR)),
    "altitude": located(point([3.7160, 51.0550, 12.5])),  # 125 m, inside INNER
    "crs_point": located(point([3.7180, 51.0545]) | {"crs": {"type": "name"}}),  # 47 m
    "square": located({"type": "Polygon", "coordinates": SQUARE}),
    "inner": located({"type": "Polygon", "coordinates": INNER}),
    "multipolygon": located({"type": "MultiPolygon", "coordinates": [NEAR_EAST, BRUSSELS]}),
    "line": located({"type": "LineString", "coordinates": [[3.69, 51.045], [3.75, 51.045]]}),
    "multi_instance": {
        LOCATION: [
            geo(point(FAR), datasetId="urn:ngsi-ld:Dataset:a"),
            geo(point(NORTH_3KM), datasetId="urn:ngsi-ld:Dataset:b"),
        ]
    },
    "observation_space_only": {OBSERVATION_SPACE: geo({"type": "Polygon", "coordinates": INNER})},
    "property_location": {LOCATION: {"type": "Property", "value": point(CENTRE)}},
    # Missing or malformed locations: never selected, never an SQL error.
    "missing": NAME,
    "string_coordinates": located(point(["3.7174", "51.0543"])),
    "boolean_coordinate": located(point([True, 51.0543])),
    "latitude_95": located(point([3.7174, 95])),
    "nested_point": located(point([CENTRE])),
    "four_numbers": located(point([*CENTRE, 1, 2])),
    "coordinates_as_text": located(point(json.dumps(CENTRE))),
    "unclosed_ring": located({"type": "Polygon", "coordinates": [SQUARE[0][:-1]]}),
    "bowtie": located(
        {
            "type": "Polygon",
            "coordinates": [
                [[3.70, 51.04], [3.74, 51.07], [3.74, 51.04], [3.70, 51.07], [3.70, 51.04]]
            ],
        }
    ),
    "one_point_line": located({"type": "LineString", "coordinates": [CENTRE]}),
    "empty_multipoint": located({"type": "MultiPoint", "coordinates": []}),
    "collection": located({"type": "GeometryCollection", "geometries": [point(CENTRE)]}),
    "value_null": located(None),
    "value_text": located("POINT (3.7174 51.0543)"),
    "location_scalar": {LOCATION: 42},
    "location_junk_array": {LOCATION: [1, "x", None, [CENTRE]]},
}
# JSON that Python cannot write but jsonb holds: a longitude beyond float8.
RAW_ENTITIES = {
    "huge_longitude": json.dumps({LOCATION: geo(point(["LONGITUDE", 51.05]))}).replace(
        '"LONGITUDE"', "1e400"
    ),
}

QUERIES = [
    ("near;maxDistance==1100", "Point", CENTRE, None,
     {"centre", "east_1km", "altitude", "crs_point", "square", "inner", "multipolygon", "line"}),
    ("near;maxDistance==900", "Point", CENTRE, None,
     {"centre", "altitude", "crs_point", "square", "inner", "multipolygon"}),
    ("near;minDistance==2000", "Point", CENTRE, None, {"north_3km", "far", "multi_instance"}),
    ("near;minDistance==500;maxDistance==1100", "Point", CENTRE, None,
     {"east_1km", "multipolygon", "line"}),
    ("near;maxDistance==100", "MultiPoint", [CENTRE, FAR], None,
     {"centre", "far", "crs_point", "square", "inner", "multi_instance", "multipolygon"}),
    ("within", "Polygon", SQUARE, None,
     {"centre", "east_1km", "altitude", "crs_point", "square", "inner"}),
    ("within", "Polygon", INNER, None, {"centre", "altitude", "crs_point", "inner"}),
    ("within", "MultiPolygon", [INNER, BRUSSELS], None,
     {"centre", "altitude", "crs_point", "inner", "far", "multi_instance"}),
    ("contains", "Point", CENTRE, None, {"centre", "square", "inner"}),
    ("intersects", "LineString", [[3.705, 51.0543], [3.76, 51.0543]], None,
     {"centre", "east_1km", "square", "inner", "multipolygon"}),
    ("equals", "Point", CENTRE, None, {"centre"}),
    ("equals", "Polygon", [SQUARE[0][1:] + [SQUARE[0][1]]], None, {"square"}),
    ("disjoint", "Polygon", SQUARE, None, {"north_3km", "far", "multi_instance"}),
    ("overlaps", "Polygon", SHIFTED, None, {"square", "multipolygon"}),
    ("intersects", "Point", CENTRE, "observationSpace", {"observation_space_only"}),
]  # fmt: skip


def _postgis_absence(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
    ).fetchone()
    if row is None:
        version = conn.info.server_version
        return f"pg_available_extensions has no 'postgis' row (server {version})"
    return None


def _skip_without_postgis() -> None:
    with psycopg.connect(MAINTENANCE_URL, autocommit=True) as conn:
        absence = _postgis_absence(conn)
    if absence:
        pytest.skip(f"PostGIS is not available on this PostgreSQL: {absence}")


@pytest.fixture(scope="module")
def geo_database() -> Iterator[str]:
    """A database of this module with PostGIS, migrated, holding ENTITIES; dropped afterwards."""
    _skip_without_postgis()
    url = scratch_database_url("stadspuls_geo")
    create_database_if_missing(url)
    try:
        with connect(url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            conn.commit()
            migrate(conn, detect_backend(conn, "postgres"))
            documents = {name: json.dumps(value) for name, value in ENTITIES.items()}
            for name, document in {**documents, **RAW_ENTITIES}.items():
                conn.execute(
                    "INSERT INTO entities (tenant, id, type, entity)"
                    " VALUES ('', %s, 'https://example.org/Thing', %s::jsonb)",
                    [name, document],
                )
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def geo_conn(geo_database: str) -> Iterator[psycopg.Connection]:
    """A connection of this test to the module's PostGIS database."""
    with connect(geo_database) as conn:
        yield conn


def _ids(conn: psycopg.Connection, condition: sql.Composable, tenant: str = "") -> set[str]:
    query = sql.SQL("SELECT e.id FROM entities AS e WHERE e.tenant = {} AND {}").format(
        sql.Literal(tenant), condition
    )
    return {row[0] for row in conn.execute(query)}


def _python_path(conn: psycopg.Connection, query: GeoQuery, tenant: str = "") -> set[str]:
    statement = sql.SQL("SELECT e.id, e.entity FROM entities AS e WHERE e.tenant = {} AND {}")
    condition = prefilter_without_postgis(query, expand)
    return {
        entity_id
        for entity_id, attributes in conn.execute(statement.format(sql.Literal(tenant), condition))
        if entity_matches(query, attributes, expand)
    }


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty", "expected"),
    QUERIES,
    ids=[f"{q[0]}-{q[1]}-{q[3] or 'location'}" for q in QUERIES],
)
def test_postgis_and_python_select_the_same_entities(
    geo_conn: psycopg.Connection,
    georel: str,
    geometry: str,
    coordinates: Any,
    geoproperty: str | None,
    expected: set[str],
) -> None:
    query = parse_geo_query(georel, geometry, json.dumps(coordinates), geoproperty)
    assert query is not None
    in_postgis = _ids(geo_conn, compile_geo(query, expand))
    in_python = _python_path(geo_conn, query)
    assert in_postgis == in_python == expected


def _random_geometry(rng: random.Random) -> dict[str, Any]:
    """A point, rectangle, quadrilateral (sometimes a bowtie) or line around Ghent."""

    def position() -> list[float]:
        return [round(rng.uniform(3.65, 3.80), 5), round(rng.uniform(51.00, 51.10), 5)]

    kind = rng.choice(["Point", "Point", "rectangle", "quadrilateral", "LineString"])
    if kind == "Point":
        return point(position())
    if kind == "LineString":
        return {"type": "LineString", "coordinates": [position() for _ in range(rng.randint(2, 3))]}
    corners = [position() for _ in range(4 if kind == "quadrilateral" else 2)]
    if kind == "rectangle":
        (west, south), (east, north) = corners
        corners = [[west, south], [east, south], [east, north], [west, north]]
    return {"type": "Polygon", "coordinates": [[*corners, corners[0]]]}


def test_random_geometries_get_the_same_answer_on_both_paths(geo_conn: psycopg.Connection) -> None:
    rng = random.Random(20240611)  # seeded: a failure reproduces
    tenant = "random"
    selected: list[int] = []
    with geo_conn.transaction(force_rollback=True):  # these rows are this test's only
        for number in range(300):
            geo_conn.execute(
                "INSERT INTO entities (tenant, id, type, entity) VALUES (%s, %s, 'T', %s::jsonb)",
                [tenant, f"random-{number}", json.dumps(located(_random_geometry(rng)))],
            )
        georels = ["within", "contains", "intersects", "equals", "disjoint", "overlaps"]
        georels += ["near;maxDistance==1500", "near;minDistance==3000", "near;maxDistance==400"]
        for georel in georels * 4:
            reference = _random_geometry(rng)
            with contextlib.suppress(NgsiError):  # a random quadrilateral may be a bowtie
                query = parse_geo_query(georel, reference["type"], reference["coordinates"])
                assert query is not None
                in_postgis = _ids(geo_conn, compile_geo(query, expand), tenant)
                assert in_postgis == _python_path(geo_conn, query, tenant), (georel, reference)
                selected.append(len(in_postgis))
    # Enough queries ran, and they told entities apart.
    assert len(selected) > 25 and sum(0 < size < 300 for size in selected) > 15, selected


def test_malformed_locations_are_usable_by_neither_path(geo_conn: psycopg.Connection) -> None:
    rows = geo_conn.execute(
        "SELECT e.id, stadspuls_geometry(e.entity -> %s -> 'value') IS NOT NULL FROM entities e"
        " WHERE e.tenant = '' AND jsonb_typeof(e.entity -> %s) = 'object'",
        [LOCATION, LOCATION],
    ).fetchall()
    attributes = {name: value.get(LOCATION) for name, value in ENTITIES.items()}
    for name, usable_in_postgis in rows:
        value = attributes[name]["value"] if name in attributes else None
        assert usable_in_postgis is (geometry_from_geojson(value) is not None), name
    assert {name for name, usable in rows if not usable} >= {
        "string_coordinates",
        "nested_point",
        "unclosed_ring",
        "bowtie",
        "huge_longitude",
    }


def test_prefilter_narrows_a_near_query_to_nearby_points(geo_conn: psycopg.Connection) -> None:
    query = parse_geo_query("near;maxDistance==1100", "Point", json.dumps(CENTRE))
    assert query is not None
    candidates = _ids(geo_conn, prefilter_without_postgis(query, expand))
    assert {"north_3km", "far", "missing", "observation_space_only"}.isdisjoint(candidates)
    # Shapes the box cannot judge go on to the exact test in Python.
    assert {"square", "multi_instance", "location_scalar"} <= candidates


def test_postgis_is_reported_available(geo_conn: psycopg.Connection, geo_database: str) -> None:
    async def available_async() -> bool:
        async with await psycopg.AsyncConnection.connect(geo_database) as conn:
            return await postgis_available_async(conn)

    assert postgis_available(geo_conn)
    assert asyncio.run(available_async())


@pytest.fixture
def plain_database() -> Iterator[str]:
    """An empty database of this test only, without PostGIS; dropped afterwards."""
    url = scratch_database_url("stadspuls_geo_plain")
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database(url)


def test_migration_without_postgis_leaves_the_geo_functions_out(plain_database: str) -> None:
    with connect(plain_database) as conn:
        migrate(conn, detect_backend(conn, "postgres"))
        assert not postgis_available(conn)
        conn.commit()
        if _postgis_absence(conn) is None:
            # PostGIS added to an already migrated database: the functions follow on request.
            conn.execute("CREATE EXTENSION postgis")
            conn.commit()
            assert not postgis_available(conn)
            assert install_geo_functions(conn)
