-- Change capture for NGSI-LD subscriptions and the durable notification outbox.
--
-- Every writer of `entities` (ingest batches, the API, alerts) is seen by the statement
-- triggers below, in its own transaction: a change is recorded exactly when it commits.
-- Changes are recorded only for tenants with an active subscription, so ingest pays
-- nothing more than the transition tables while nobody subscribes.

CREATE TABLE entity_changes (
    position    bigserial   PRIMARY KEY,
    -- The writing transaction (for diagnosis; the dispatcher takes changes in `position`
    -- order, see storage/outbox.py).
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    -- 'c' created, 'u' updated, 'd' deleted.
    operation   "char"      NOT NULL,
    -- The entities row after the change (NULL when deleted) and before it (NULL when
    -- created), as jsonb: the row's columns by name.
    entity      jsonb,
    previous    jsonb,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entity_changes_order_idx ON entity_changes (xid, position);

-- The columns a notification needs (the merge bookkeeping columns stay behind).
CREATE FUNCTION stadspuls_change_document(row_value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT row_value - 'tenant' - 'newest_observed_at' - 'instance_keys'
$$;

CREATE FUNCTION stadspuls_record_created_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, entity)
    SELECT n.tenant, n.id, 'c', stadspuls_change_document(to_jsonb(n))
    FROM created_entities AS n
    WHERE n.tenant IN (SELECT tenant FROM subscriptions WHERE is_active);
    RETURN NULL;
END
$$;

CREATE FUNCTION stadspuls_record_updated_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, entity, previous)
    SELECT n.tenant, n.id, 'u', stadspuls_change_document(to_jsonb(n)),
           stadspuls_change_document(to_jsonb(o))
    FROM updated_entities AS n
    JOIN previous_entities AS o ON o.tenant = n.tenant AND o.id = n.id
    WHERE (n.entity IS DISTINCT FROM o.entity OR n.type IS DISTINCT FROM o.type
           OR n.extra_types IS DISTINCT FROM o.extra_types OR n.scope IS DISTINCT FROM o.scope)
      AND n.tenant IN (SELECT tenant FROM subscriptions WHERE is_active);
    RETURN NULL;
END
$$;

CREATE FUNCTION stadspuls_record_deleted_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, entity_id, operation, previous)
    SELECT o.tenant, o.id, 'd', stadspuls_change_document(to_jsonb(o))
    FROM previous_entities AS o
    WHERE o.tenant IN (SELECT tenant FROM subscriptions WHERE is_active);
    RETURN NULL;
END
$$;

-- One trigger per event: a trigger with transition tables may name only one event.
CREATE TRIGGER entities_created AFTER INSERT ON entities
    REFERENCING NEW TABLE AS created_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_created_entities();
CREATE TRIGGER entities_updated AFTER UPDATE ON entities
    REFERENCING OLD TABLE AS previous_entities NEW TABLE AS updated_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_updated_entities();
CREATE TRIGGER entities_deleted AFTER DELETE ON entities
    REFERENCING OLD TABLE AS previous_entities
    FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_record_deleted_entities();

-- Notifications waiting for delivery. A channel (a subscription id, or `rule:<id>` for an
-- alert rule's own targets) is delivered strictly in id order; a row is deleted only once
-- its receiver has taken it, so a crash at any point delivers it again (at least once).
CREATE TABLE notification_outbox (
    id              bigserial   PRIMARY KEY,
    tenant          text COLLATE "C" NOT NULL,
    channel         text COLLATE "C" NOT NULL,
    endpoint        text        NOT NULL,
    -- Headers of an HTTP notification, metadata of an MQTT one.
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- The body exactly as it is sent (bytes, so key order survives).
    payload         bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX notification_outbox_channel_idx ON notification_outbox (tenant, channel, id);
