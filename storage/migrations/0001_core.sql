-- Core tables shared by both backends: latest entity state, dead letters, device activity.

-- Latest NGSI-LD state per entity: `entity` holds the normalized attributes keyed by short name.
-- Identifiers compare bytewise (COLLATE "C"), as in observations: cheaper index maintenance.
CREATE TABLE entities (
    tenant      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    type        text COLLATE "C" NOT NULL,
    entity      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    -- The newest observedAt of any attribute: lets a batch whose readings are all newer
    -- merge with a plain `||` (storage/entities.py).
    newest_observed_at timestamptz,
    -- "attribute datasetId" of every instance of the multi-instance attributes.
    instance_keys text[] COLLATE "C" NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, id)
) WITH (fillfactor = 70);
-- Every batch rewrites the document of every entity it touches: no index on `entity` (a GIN
-- index would be rewritten with it) and free space per page, so updates stay HOT.
CREATE INDEX entities_tenant_type_idx ON entities (tenant, type);

-- Sort key of an attribute instance's observedAt (ISO 8601 UTC, 'Z'), or NULL without one.
-- Both '...SSZ' and '...SS.ffffffZ' are written; a plain string comparison would rank
-- '...00.5Z' below '...00Z' ('.' < 'Z'), so the fraction is padded to nanoseconds first.
CREATE FUNCTION stadspuls_observed_at_key(instance jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(instance ->> 'observedAt', 19)
        || rpad(CASE WHEN substr(instance ->> 'observedAt', 20, 1) = '.'
                     THEN rtrim(substr(instance ->> 'observedAt', 21), 'Z')
                     ELSE '' END, 9, '0')
$$;

-- The instances of one attribute value: an object is one instance, an array several.
CREATE FUNCTION stadspuls_attribute_instances(attribute_value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(attribute_value)
               WHEN 'array' THEN attribute_value
               WHEN 'object' THEN jsonb_build_array(attribute_value)
               ELSE '[]'::jsonb
           END
$$;

-- Merge the instances of one attribute, per datasetId: the incoming instance wins unless both
-- carry observedAt and the current one is newer; one without observedAt (a context property)
-- is simply replaced. A single instance without datasetId comes out as a plain object,
-- anything else as an array of instances ordered by datasetId.
CREATE FUNCTION stadspuls_merge_instances(current_value jsonb, incoming_value jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN count(*) = 1 AND max(dataset_id) = ''
                THEN (array_agg(instance))[1]
                ELSE jsonb_agg(instance ORDER BY dataset_id)
           END
    FROM (
        SELECT DISTINCT ON (dataset_id) dataset_id, instance
        FROM (
            SELECT coalesce(element.value ->> 'datasetId', '') AS dataset_id,
                   element.value AS instance,
                   -- Incoming without observedAt ranks highest, current without observedAt
                   -- lowest; on equal times incoming wins, and later in a list beats earlier.
                   coalesce(stadspuls_observed_at_key(element.value),
                            CASE WHEN side.incoming THEN '~' ELSE '' END) AS rank_key,
                   side.incoming,
                   element.position
            FROM (VALUES (false, stadspuls_attribute_instances(current_value)),
                         (true, stadspuls_attribute_instances(incoming_value)))
                     AS side (incoming, instances)
            CROSS JOIN LATERAL jsonb_array_elements(side.instances)
                WITH ORDINALITY AS element (value, position)
            WHERE jsonb_typeof(element.value) = 'object'
        ) AS candidates
        ORDER BY dataset_id, rank_key COLLATE "C" DESC, incoming DESC, position DESC
    ) AS winners
$$;

-- Merge incoming attributes into the current ones with stadspuls_merge_instances: late data
-- never overwrites newer state, context properties are replaced, and attributes absent from
-- `incoming` are kept as they are. The usual attribute (one instance on each side, neither
-- with a datasetId) takes a shortcut, since this runs for every entity of every batch.
CREATE FUNCTION stadspuls_merge_attributes(current jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    merged jsonb := coalesce(current, '{}'::jsonb);
    attribute_name text;
    incoming_value jsonb;
    current_value jsonb;
    incoming_key text;
    current_key text;
BEGIN
    FOR attribute_name, incoming_value IN SELECT key, value FROM jsonb_each(incoming) LOOP
        current_value := merged -> attribute_name;
        IF jsonb_typeof(incoming_value) = 'object' AND NOT incoming_value ? 'datasetId'
           AND (current_value IS NULL
                OR (jsonb_typeof(current_value) = 'object' AND NOT current_value ? 'datasetId'))
        THEN
            incoming_key := stadspuls_observed_at_key(incoming_value);
            current_key := stadspuls_observed_at_key(current_value);
            IF incoming_key IS NULL OR current_key IS NULL
               OR incoming_key COLLATE "C" >= current_key COLLATE "C" THEN
                merged := jsonb_set(merged, ARRAY[attribute_name], incoming_value);
            END IF;
        ELSE
            merged := jsonb_set(merged, ARRAY[attribute_name],
                                stadspuls_merge_instances(current_value, incoming_value));
        END IF;
    END LOOP;
    RETURN merged;
END
$$;

-- Only the observed attributes (with observedAt, or several instances) of a fragment.
CREATE FUNCTION stadspuls_observed_only(attributes jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
    FROM jsonb_each(attributes)
    WHERE jsonb_typeof(value) = 'array' OR value ? 'observedAt'
$$;

-- The sorted union of two key arrays (instance_keys of entities).
CREATE FUNCTION stadspuls_union_keys(a text[], b text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT key ORDER BY key), '{}') FROM unnest(a || b) AS key
$$;

CREATE AGGREGATE stadspuls_union_keys_agg(text[]) (
    SFUNC = stadspuls_union_keys,
    STYPE = text[],
    INITCOND = '{}'
);

-- Folds several fragments of one entity (in batch order) with the same merge rules.
CREATE AGGREGATE stadspuls_merge_attributes_agg(jsonb) (
    SFUNC = stadspuls_merge_attributes,
    STYPE = jsonb
);

-- Messages that could not be decoded or mapped, kept whole. A redelivered message finds its
-- row through (topic, payload_sha256, reason) and only bumps times_received.
CREATE TABLE dead_letters (
    id                bigserial   PRIMARY KEY,
    tenant            text        NOT NULL DEFAULT '',
    device_id         text,
    topic             text        NOT NULL,
    payload           bytea       NOT NULL,
    payload_sha256    bytea       NOT NULL,
    reason            text        NOT NULL,
    detail            text        NOT NULL DEFAULT '',
    first_received_at timestamptz NOT NULL,
    last_received_at  timestamptz NOT NULL,
    times_received    integer     NOT NULL DEFAULT 1,
    UNIQUE (topic, payload_sha256, reason)
);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, last_received_at DESC);
CREATE INDEX dead_letters_last_received_idx ON dead_letters (last_received_at DESC);

-- Per-device counters for `stadspuls status` and silent-device checks.
CREATE TABLE device_activity (
    tenant           text        NOT NULL,
    device_id        text        NOT NULL,
    messages         bigint      NOT NULL DEFAULT 0,
    readings         bigint      NOT NULL DEFAULT 0,
    first_message_at timestamptz NOT NULL,
    last_message_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, device_id)
);
CREATE INDEX device_activity_last_message_idx ON device_activity (last_message_at DESC);
