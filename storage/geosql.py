"""NGSI-LD geo-queries in SQL: exact in PostGIS, or a cheap prefilter for the Python path.

With PostGIS (`postgis_available`), `compile_geo` turns a checked `ngsi.geo.GeoQuery` into a
boolean expression on `entities.entity` that selects the same entities as
`ngsi.geo.entity_matches`. Without it, `prefilter_without_postgis` narrows the rows that
Python then tests with `entity_matches`. Both expressions carry their values (attribute IRI,
reference geometry, distances) as `sql.Literal`s, adapted and quoted by psycopg, so they
compose with other conditions into one `sql.Composable` without a parameter list.

The PostGIS functions come from storage/migrations/0005_geo.sql, which creates them only
when the postgis extension is already installed; `install_geo_functions` creates them after
PostGIS has been added to a migrated database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import resources

import psycopg
from psycopg import sql
from shapely.geometry import mapping

from ngsi.geo import GEORELS, GeoQuery
from storage.database import lock_schema_changes

ENTITY_COLUMN = sql.SQL("e.entity")
GEO_MIGRATION = "0005_geo.sql"

_AVAILABLE = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')
   AND EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'stadspuls_geo_matches')
"""

# Lower bounds of the length of a degree, so a distance box is never too small: a degree
# of latitude is at least 110 574 m, one of longitude at least 111 319 m x cos(latitude).
_METRES_PER_DEGREE_LATITUDE = 110_000.0
_METRES_PER_DEGREE_LONGITUDE = 111_000.0
# Boxes grow by this much more, so that rounding never drops a point on their edge.
_BOX_MARGIN_DEGREES = 1e-9


def postgis_available(conn: psycopg.Connection) -> bool:
    """Whether `compile_geo` runs on this sync connection: PostGIS plus 0005_geo.sql functions."""
    row = conn.execute(_AVAILABLE).fetchone()
    return bool(row and row[0])


async def postgis_available_async(conn: psycopg.AsyncConnection) -> bool:
    """`postgis_available` for an async connection."""
    cursor = await conn.execute(_AVAILABLE)
    row = await cursor.fetchone()
    return bool(row and row[0])


def install_geo_functions(conn: psycopg.Connection) -> bool:
    """(Re)create 0005_geo.sql's functions, e.g. after CREATE EXTENSION postgis; True if there."""
    text = resources.files("storage").joinpath("migrations", GEO_MIGRATION).read_text("utf-8")
    with conn.transaction():
        lock_schema_changes(conn)
        conn.execute(text)
    return postgis_available(conn)


def compile_geo(
    query: GeoQuery, expand: Callable[[str], str], column: sql.Composable = ENTITY_COLUMN
) -> sql.Composable:
    """A boolean PostGIS expression: an instance of the entity's geoproperty matches `query`."""
    if query.georel not in GEORELS:
        raise ValueError(f"not a georel: {query.georel!r}")
    reference = json.dumps(mapping(query.geometry))
    # The prefilter first: it costs far less per row than building a PostGIS geometry.
    # stadspuls_geo_matches (0005_geo.sql) never raises: a missing attribute or a malformed
    # geometry simply does not match.
    return sql.SQL(
        "({prefilter}) AND stadspuls_geo_matches({column} -> {iri}, {georel},"
        " ST_GeomFromGeoJSON({reference}::text), {minimum}::float8, {maximum}::float8)"
    ).format(
        prefilter=prefilter_without_postgis(query, expand, column),
        column=column,
        iri=sql.Literal(expand(query.geoproperty)),
        georel=sql.Literal(query.georel),
        reference=sql.Literal(reference),
        minimum=sql.Literal(query.min_distance),
        maximum=sql.Literal(query.max_distance),
    )


def _candidate_box(query: GeoQuery) -> tuple[float, float, float, float] | None:
    """West, south, east, north bounds that hold every matching point, or None if unbounded."""
    west, south, east, north = query.geometry.bounds
    if query.georel == "near":
        if query.max_distance is None:
            return None
        reach = query.max_distance * 1.01
        south = max(-90.0, south - reach / _METRES_PER_DEGREE_LATITUDE)
        north = min(90.0, north + reach / _METRES_PER_DEGREE_LATITUDE)
        cosine = math.cos(math.radians(max(abs(south), abs(north))))
        if cosine < 0.01:
            west, east = -180.0, 180.0
        else:
            west -= reach / (_METRES_PER_DEGREE_LONGITUDE * cosine)
            east += reach / (_METRES_PER_DEGREE_LONGITUDE * cosine)
            if west < -180 or east > 180:
                # PostGIS geography measures across the antimeridian; a box cannot here.
                west, east = -180.0, 180.0
    elif query.georel == "disjoint":
        return None
    margin = _BOX_MARGIN_DEGREES
    return west - margin, south - margin, east + margin, north + margin


def prefilter_without_postgis(
    query: GeoQuery, expand: Callable[[str], str], column: sql.Composable = ENTITY_COLUMN
) -> sql.Composable:
    """A cheap SQL condition (no PostGIS) true for every entity that `entity_matches` accepts."""
    iri = sql.Literal(expand(query.geoproperty))
    present = sql.SQL("{} ? {}").format(column, iri)
    box = _candidate_box(query)
    if box is None:
        return present
    # The common case, one GeoProperty instance holding a Point, is tested against the box;
    # every other shape (lines, polygons, several instances) goes on to the exact Python test.
    attribute = sql.SQL("({} -> {})").format(column, iri)
    coordinates = sql.SQL("{} -> 'value' -> 'coordinates'").format(attribute)
    west, south, east, north = (sql.SQL("{}::numeric").format(sql.Literal(b)) for b in box)
    return sql.SQL(
        "CASE WHEN jsonb_typeof({attribute}) = 'object'"
        " AND {attribute} -> 'value' ->> 'type' = 'Point'"
        " AND jsonb_typeof({coordinates} -> 0) = 'number'"
        " AND jsonb_typeof({coordinates} -> 1) = 'number'"
        " THEN {attribute} ->> 'type' = 'GeoProperty'"
        " AND ({coordinates} -> 0)::numeric BETWEEN {west} AND {east}"
        " AND ({coordinates} -> 1)::numeric BETWEEN {south} AND {north}"
        " ELSE {present} END"
    ).format(
        attribute=attribute,
        coordinates=coordinates,
        west=west,
        south=south,
        east=east,
        north=north,
        present=present,
    )
