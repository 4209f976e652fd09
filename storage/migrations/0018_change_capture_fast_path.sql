-- The change triggers of 0010/0017, cheaper: a statement leaves at once while nobody
-- subscribes (the usual ingest batch), and the join of an update's old and new rows is a
-- hash join. The transition tables carry no statistics, and a nested loop over two tables
-- of an ingest batch's thousands of entities took seconds (measured: 7.4 s against 0.13 s
-- without the trigger for a batch of 4,000 messages).

CREATE OR REPLACE FUNCTION stadspuls_record_created_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM subscriptions WHERE is_active) THEN
        RETURN NULL;
    END IF;
    INSERT INTO entity_changes (tenant, entity_id, operation, entity)
    SELECT n.tenant, n.id, 'c', stadspuls_change_document(to_jsonb(n))
    FROM created_entities AS n
    WHERE stadspuls_subscribed(n.tenant, n.extra_types || n.type);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stadspuls_record_updated_entities() RETURNS trigger
LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM subscriptions WHERE is_active) THEN
        RETURN NULL;
    END IF;
    INSERT INTO entity_changes (tenant, entity_id, operation, entity, previous)
    SELECT n.tenant, n.id, 'u', stadspuls_change_document(to_jsonb(n)),
           stadspuls_change_document(to_jsonb(o))
    FROM updated_entities AS n
    JOIN previous_entities AS o ON o.tenant = n.tenant AND o.id = n.id
    WHERE stadspuls_subscribed(n.tenant, n.extra_types || n.type || o.extra_types || o.type)
      AND (n.entity IS DISTINCT FROM o.entity OR n.type IS DISTINCT FROM o.type
           OR n.extra_types IS DISTINCT FROM o.extra_types OR n.scope IS DISTINCT FROM o.scope);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stadspuls_record_deleted_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM subscriptions WHERE is_active) THEN
        RETURN NULL;
    END IF;
    INSERT INTO entity_changes (tenant, entity_id, operation, previous)
    SELECT o.tenant, o.id, 'd', stadspuls_change_document(to_jsonb(o))
    FROM previous_entities AS o
    WHERE stadspuls_subscribed(o.tenant, o.extra_types || o.type);
    RETURN NULL;
END
$$;
