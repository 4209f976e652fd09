-- NGSI-LD subscriptions (ETSI GS CIM 009 v1.8, 5.2.12 and 5.8; docs/subscriptions.md).
--
-- `document` is the subscription in its stored form (ngsi/subscription_input.py): the
-- members as the caller gave them, with entity types, watchedAttributes, notification
-- attributes and geoQ.geoproperty expanded to IRIs; `q` stays as written and is expanded
-- with the subscription's own @context. `context` is that @context as the caller gave it
-- (null: the core context alone) and `context_terms` its processed term table, so that the
-- dispatcher can compact notifications and expand q without fetching anything.
-- `is_active`, `expires_at`, `throttling` and `time_interval` repeat document members for
-- the dispatcher's queries. The status members of NotificationParams (5.2.14) are columns,
-- written by storage/subscription_store.py record_delivery.
CREATE TABLE subscriptions (
    tenant              text COLLATE "C" NOT NULL,
    id                  text COLLATE "C" NOT NULL,
    document            jsonb            NOT NULL,
    context             jsonb,
    context_terms       jsonb            NOT NULL,
    is_active           boolean          NOT NULL DEFAULT true,
    expires_at          timestamptz,
    throttling          double precision CHECK (throttling > 0),
    time_interval       double precision CHECK (time_interval > 0),
    created_at          timestamptz      NOT NULL DEFAULT now(),
    modified_at         timestamptz      NOT NULL DEFAULT now(),
    times_sent          bigint           NOT NULL DEFAULT 0,
    times_failed        bigint           NOT NULL DEFAULT 0,
    last_notification   timestamptz,
    last_success        timestamptz,
    last_failure        timestamptz,
    last_failure_reason text,
    PRIMARY KEY (tenant, id)
);

-- "Is any subscription live (for this tenant)?" reads only this small index.
CREATE INDEX subscriptions_live_idx ON subscriptions (tenant, expires_at) WHERE is_active;

-- One row whose `revision` grows with every change of a subscription's definition (not of
-- its delivery status), so that the dispatcher reloads its cached subscriptions only when
-- they changed; the same change is announced on the channel `stadspuls_subscriptions` for a
-- dispatcher that LISTENs (delivered at commit).
CREATE TABLE subscription_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint  NOT NULL DEFAULT 0
);
INSERT INTO subscription_revision DEFAULT VALUES;

CREATE FUNCTION stadspuls_subscriptions_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscription_revision SET revision = revision + 1;
    PERFORM pg_notify('stadspuls_subscriptions', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_changed
AFTER INSERT OR DELETE OR UPDATE OF document, context, context_terms, is_active, expires_at,
    throttling, time_interval
ON subscriptions FOR EACH STATEMENT EXECUTE FUNCTION stadspuls_subscriptions_changed();
