-- Geo-queries in PostGIS (storage/geosql.py), only where the postgis extension is installed;
-- without it the API evaluates geo-queries in Python (ngsi/geo.py). Both paths must select the
-- same entities, so these functions accept exactly the GeoJSON geometries that
-- ngsi.geo.geometry_from_geojson accepts. Every statement is CREATE OR REPLACE:
-- storage.geosql.install_geo_functions runs this file again when PostGIS is added later.

DO $migration$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis') THEN
        RETURN;
    END IF;

    -- Whether `coordinates` holds positions nested `depth` arrays deep, as ngsi/geo.py checks
    -- them: non-empty arrays, positions of 2 or 3 numbers, longitude and latitude in range.
    -- ST_GeomFromGeoJSON alone is too lenient for that: it reads "4.3" and true as numbers,
    -- [[4, 50]] as a Point and four ordinates as XYZ.
    CREATE OR REPLACE FUNCTION stadspuls_geojson_coordinates_ok(coordinates jsonb, depth integer)
    RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $function$
    DECLARE
        element jsonb;
        size integer;
    BEGIN
        IF jsonb_typeof(coordinates) IS DISTINCT FROM 'array' THEN
            RETURN false;
        END IF;
        size := jsonb_array_length(coordinates);
        IF depth > 0 THEN
            IF size = 0 THEN
                RETURN false;
            END IF;
            FOR element IN SELECT value FROM jsonb_array_elements(coordinates) LOOP
                IF NOT stadspuls_geojson_coordinates_ok(element, depth - 1) THEN
                    RETURN false;
                END IF;
            END LOOP;
            RETURN true;
        END IF;
        -- The casts come in a later statement, after the type tests: SQL does not promise to
        -- evaluate AND/OR left to right.
        IF size NOT IN (2, 3) OR jsonb_typeof(coordinates -> 0) <> 'number'
           OR jsonb_typeof(coordinates -> 1) <> 'number'
           OR jsonb_typeof(coalesce(coordinates -> 2, '0')) <> 'number' THEN
            RETURN false;
        END IF;
        -- numeric first: a jsonb number may be far beyond float8 (1e400); then float8, the
        -- value Python's json reads, for the range test.
        IF abs((coordinates -> 0)::numeric) > 1000 OR abs((coordinates -> 1)::numeric) > 1000
           OR abs(coalesce(coordinates -> 2, '0')::numeric) >= 1e308 THEN
            RETURN false;
        END IF;
        RETURN (coordinates -> 0)::numeric::float8 BETWEEN -180 AND 180
               AND (coordinates -> 1)::numeric::float8 BETWEEN -90 AND 90;
    END
    $function$;

    -- The 2-D geometry (SRID 4326) of a GeoJSON geometry object, or NULL when it is not a
    -- usable one (wrong shape, empty, invalid); never raises, so a malformed entity cannot
    -- fail a query. Not PARALLEL SAFE: the EXCEPTION block opens a subtransaction, which
    -- parallel workers cannot.
    CREATE OR REPLACE FUNCTION stadspuls_geometry(geojson jsonb)
    RETURNS geometry LANGUAGE plpgsql IMMUTABLE AS $function$
    DECLARE
        depth integer := CASE geojson ->> 'type'
            WHEN 'Point' THEN 0 WHEN 'MultiPoint' THEN 1 WHEN 'LineString' THEN 1
            WHEN 'MultiLineString' THEN 2 WHEN 'Polygon' THEN 2 WHEN 'MultiPolygon' THEN 3
        END;
        result geometry;
    BEGIN
        IF depth IS NULL
           OR NOT stadspuls_geojson_coordinates_ok(geojson -> 'coordinates', depth) THEN
            RETURN NULL;
        END IF;
        BEGIN
            -- Only type and coordinates: a "crs" member would change the SRID, and the
            -- Python path ignores every other member too.
            result := ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(jsonb_build_object(
                'type', geojson -> 'type', 'coordinates', geojson -> 'coordinates'))), 4326);
            -- ST_IsValidDetail rather than ST_IsValid, which logs a NOTICE per invalid row.
            IF ST_IsEmpty(result) OR NOT (ST_IsValidDetail(result)).valid THEN
                RETURN NULL;
            END IF;
            RETURN result;
        EXCEPTION WHEN OTHERS THEN
            RETURN NULL;
        END;
    END
    $function$;

    -- Whether one attribute instance is a GeoProperty whose geometry stands in `georel` to
    -- `reference` (clause 4.10: the entity's geometry first); distances are metres on the
    -- WGS84 spheroid (geography), like ngsi.geo.distance_metres.
    CREATE OR REPLACE FUNCTION stadspuls_geo_instance_matches(
        instance jsonb, georel text, reference geometry,
        min_distance float8, max_distance float8)
    RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $function$
    DECLARE
        target geometry;
    BEGIN
        IF instance ->> 'type' IS DISTINCT FROM 'GeoProperty' THEN
            RETURN false;
        END IF;
        target := stadspuls_geometry(instance -> 'value');
        IF target IS NULL THEN
            RETURN false;
        END IF;
        RETURN coalesce(CASE georel
            WHEN 'within' THEN ST_Within(target, reference)
            WHEN 'contains' THEN ST_Contains(target, reference)
            WHEN 'intersects' THEN ST_Intersects(target, reference)
            WHEN 'equals' THEN ST_Equals(target, reference)
            WHEN 'disjoint' THEN ST_Disjoint(target, reference)
            WHEN 'overlaps' THEN ST_Overlaps(target, reference)
            WHEN 'near' THEN
                (max_distance IS NULL
                 OR ST_DWithin(target::geography, reference::geography, max_distance))
                AND (min_distance IS NULL
                     OR ST_Distance(target::geography, reference::geography) >= min_distance)
        END, false);
    END
    $function$;

    -- Whether any instance of an attribute value (one object, or an array of them) matches.
    -- One function per row rather than an EXISTS over jsonb_array_elements in the query: the
    -- planner takes that set function for 100 rows of costly PostGIS calls, and a plan that
    -- expensive is JIT-compiled, which took longer than the query itself.
    CREATE OR REPLACE FUNCTION stadspuls_geo_matches(
        attribute jsonb, georel text, reference geometry,
        min_distance float8, max_distance float8)
    RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $function$
    DECLARE
        instance jsonb;
    BEGIN
        IF jsonb_typeof(attribute) = 'object' THEN
            RETURN stadspuls_geo_instance_matches(
                attribute, georel, reference, min_distance, max_distance);
        END IF;
        FOR instance IN SELECT value FROM jsonb_array_elements(
                stadspuls_attribute_instances(attribute)) LOOP
            IF stadspuls_geo_instance_matches(
                    instance, georel, reference, min_distance, max_distance) THEN
                RETURN true;
            END IF;
        END LOOP;
        RETURN false;
    END
    $function$;
END
$migration$;
