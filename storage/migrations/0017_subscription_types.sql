-- Change capture only for the entity types someone subscribed to: a subscription stores the
-- types its `entities` name (a superset: every entity it can select has one of them), NULL
-- when it can select any type. Ingest then pays for the changes of subscribed types only
-- (every message also updates its Device entity, which few subscribe to).
ALTER TABLE subscriptions ADD COLUMN watched_types text[] COLLATE "C";

CREATE OR REPLACE FUNCTION stadspuls_subscribed(tenant_name text, types text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM subscriptions AS s
        WHERE s.tenant = tenant_name AND s.is_active
          AND (s.watched_types IS NULL OR s.watched_types && types))
$$;

CREATE OR REPLACE FUNCTION stadspuls_record_created_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, entity)
    SELECT n.tenant, n.id, 'c', stadspuls_change_document(to_jsonb(n))
    FROM created_entities AS n
    WHERE n.tenant IN (SELECT tenant FROM subscriptions WHERE is_active)
      AND stadspuls_subscribed(n.tenant, n.extra_types || n.type);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stadspuls_record_updated_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, entity, previous)
    SELECT n.tenant, n.id, 'u', stadspuls_change_document(to_jsonb(n)),
           stadspuls_change_document(to_jsonb(o))
    FROM updated_entities AS n
    JOIN previous_entities AS o ON o.tenant = n.tenant AND o.id = n.id
    WHERE n.tenant IN (SELECT tenant FROM subscriptions WHERE is_active)
      AND stadspuls_subscribed(n.tenant, n.extra_types || n.type || o.extra_types || o.type)
      AND (n.entity IS DISTINCT FROM o.entity OR n.type IS DISTINCT FROM o.type
           OR n.extra_types IS DISTINCT FROM o.extra_types OR n.scope IS DISTINCT FROM o.scope);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stadspuls_record_deleted_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, previous)
    SELECT o.tenant, o.id, 'd', stadspuls_change_document(to_jsonb(o))
    FROM previous_entities AS o
    WHERE o.tenant IN (SELECT tenant FROM subscriptions WHERE is_active)
      AND stadspuls_subscribed(o.tenant, o.extra_types || o.type);
    RETURN NULL;
END
$$;
