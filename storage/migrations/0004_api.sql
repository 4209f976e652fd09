-- What the NGSI-LD API adds to the latest-state table: several types, scopes, tenants,
-- and the @contexts the service hosts (docs/ngsi-api.md).

-- Types beyond the first (NGSI-LD entities may have several; ETSI GS CIM 009, 4.6.2).
-- Ingest writes one type per entity and never touches these columns.
ALTER TABLE entities ADD COLUMN extra_types text[] COLLATE "C" NOT NULL DEFAULT '{}';
ALTER TABLE entities ADD COLUMN scope jsonb;

-- Tenants created through the API (a tenant is also known when it holds entities, which is
-- how tenants written by ingest come to exist). The default tenant is ''.
CREATE TABLE tenants (
    name       text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (name) VALUES ('');

-- @contexts POSTed to /jsonldContexts (kind Hosted, clause 5.13), served back by id.
CREATE TABLE jsonld_contexts (
    id         text PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_usage timestamptz,
    hits       bigint NOT NULL DEFAULT 0
);

-- `instance_keys` of an entity document (as storage/entities.py instance_keys computes it):
-- "attribute datasetId" of every instance of every multi-instance attribute.
CREATE FUNCTION stadspuls_instance_keys(document jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(attribute.key || ' ' || coalesce(instance ->> 'datasetId', '')
                              ORDER BY attribute.key || ' ' || coalesce(instance ->> 'datasetId', '')
                                       COLLATE "C"), '{}')
    FROM jsonb_each(document) AS attribute
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(attribute.value) = 'array' THEN attribute.value
             ELSE '[]'::jsonb END) AS instance
$$;
