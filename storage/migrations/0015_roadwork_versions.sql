-- Every version of every roadwork (CityWork entity), for the append-only roadworks LDES
-- (feeds/ldes.py, docs/ldes.md).
--
-- `entities` holds the current state only; the statement triggers below copy each CityWork
-- row that a writer creates, changes or deletes into `roadwork_versions`, in the writer's own
-- transaction, so a version exists exactly when its change commits. A version is never
-- changed once committed: LDES members are immutable (LDES 1.0 §2); only the retention
-- policy takes them out of the stream.

CREATE TABLE roadwork_versions (
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    -- The entity's modified_at (every writer sets it to now()); for a deletion the deleting
    -- statement's clock time.
    version_at  timestamptz NOT NULL,
    -- The row's `entity`, `type` and `extra_types` (for a deletion: the last state).
    document    jsonb       NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    -- Insertion order: breaks ties between versions at the same time.
    position    bigserial   NOT NULL,
    -- The writing transaction: only a version it wrote itself may still be replaced by it.
    recorded_by xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (tenant, entity_id, version_at)
);
-- The LDES reads one tenant's versions by time window, in (version_at, position) order.
CREATE INDEX roadwork_versions_window_idx ON roadwork_versions (tenant, version_at, position);

CREATE FUNCTION stadspuls_is_citywork(entity_type text, extra_types text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT entity_type = 'https://smartdatamodels.org/dataModel.Transportation/CityWork'
        OR 'https://smartdatamodels.org/dataModel.Transportation/CityWork' = ANY(extra_types)
$$;

CREATE FUNCTION stadspuls_roadwork_document(entity_type text, extra_types text[], entity jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object('type', entity_type, 'extra_types', to_jsonb(extra_types),
                              'entity', entity)
$$;

-- A transaction that writes one CityWork twice stamps both writes with the same now():
-- its last state is the version. A committed version (another transaction's) is kept as is.
CREATE FUNCTION stadspuls_record_created_roadworks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO roadwork_versions AS v (tenant, entity_id, version_at, document)
    SELECT n.tenant, n.id, n.modified_at,
           stadspuls_roadwork_document(n.type, n.extra_types, n.entity)
    FROM created_entities AS n
    WHERE stadspuls_is_citywork(n.type, n.extra_types)
    ORDER BY n.modified_at, n.tenant, n.id
    ON CONFLICT (tenant, entity_id, version_at) DO UPDATE
        SET document = EXCLUDED.document, deleted = EXCLUDED.deleted
        WHERE v.recorded_by = pg_current_xact_id();
    RETURN NULL;
END
$$;

-- A row that stops being a CityWork (its types replaced) leaves the stream as a deletion.
-- Ingest updates thousands of other entities a second: two plain scans of the transition
-- tables let those statements out before any join.
CREATE FUNCTION stadspuls_record_updated_roadworks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM updated_entities AS n
                   WHERE stadspuls_is_citywork(n.type, n.extra_types))
       AND NOT EXISTS (SELECT 1 FROM previous_entities AS o
                       WHERE stadspuls_is_citywork(o.type, o.extra_types)) THEN
        RETURN NULL;
    END IF;
    INSERT INTO roadwork_versions AS v (tenant, entity_id, version_at, document, deleted)
    SELECT n.tenant, n.id,
           CASE WHEN stadspuls_is_citywork(n.type, n.extra_types) THEN n.modified_at
                ELSE greatest(clock_timestamp(), n.modified_at) END,
           CASE WHEN stadspuls_is_citywork(n.type, n.extra_types)
                THEN stadspuls_roadwork_document(n.type, n.extra_types, n.entity)
                ELSE stadspuls_roadwork_document(o.type, o.extra_types, o.entity) END,
           NOT stadspuls_is_citywork(n.type, n.extra_types)
    FROM updated_entities AS n
    JOIN previous_entities AS o ON o.tenant = n.tenant AND o.id = n.id
    WHERE (stadspuls_is_citywork(n.type, n.extra_types)
           OR stadspuls_is_citywork(o.type, o.extra_types))
      AND (n.entity IS DISTINCT FROM o.entity OR n.type IS DISTINCT FROM o.type
           OR n.extra_types IS DISTINCT FROM o.extra_types)
    ORDER BY 3, n.tenant, n.id
    ON CONFLICT (tenant, entity_id, version_at) DO UPDATE
        SET document = EXCLUDED.document, deleted = EXCLUDED.deleted
        WHERE v.recorded_by = pg_current_xact_id();
    RETURN NULL;
END
$$;

-- A deletion is stamped with the clock, not now(): it must come after a version the same
-- transaction wrote (stamped now()), and never before the version it ends.
CREATE FUNCTION stadspuls_record_deleted_roadworks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO roadwork_versions AS v (tenant, entity_id, version_at, document, deleted)
    SELECT o.tenant, o.id, greatest(clock_timestamp(), o.modified_at + interval '1 microsecond'),
           stadspuls_roadwork_document(o.type, o.extra_types, o.entity), true
    FROM previous_entities AS o
    WHERE stadspuls_is_citywork(o.type, o.extra_types)
    ORDER BY o.tenant, o.id
    ON CONFLICT (tenant, entity_id, version_at) DO UPDATE
        SET document = EXCLUDED.document, deleted = EXCLUDED.deleted
        WHERE v.recorded_by = pg_current_xact_id();
    RETURN NULL;
END
$$;

-- One trigger per event: a trigger with transition tables may name only one event.
CREATE TRIGGER roadworks_created AFTER INSERT ON entities
    REFERENCING NEW TABLE AS created_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_created_roadworks();
CREATE TRIGGER roadworks_updated AFTER UPDATE ON entities
    REFERENCING OLD TABLE AS previous_entities NEW TABLE AS updated_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_updated_roadworks();
CREATE TRIGGER roadworks_deleted AFTER DELETE ON entities
    REFERENCING OLD TABLE AS previous_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_deleted_roadworks();

-- The roadworks stored before this migration: their current state is their first version.
INSERT INTO roadwork_versions (tenant, entity_id, version_at, document)
SELECT tenant, id, modified_at, stadspuls_roadwork_document(type, extra_types, entity)
FROM entities
WHERE stadspuls_is_citywork(type, extra_types)
ORDER BY modified_at, tenant, id;
