-- Device registry: device models (IoT Agent service groups) and registered devices.
-- Attribute mappings and static attributes are kept as jsonb, keyed as in the model.

CREATE TABLE device_groups (
    name              text    PRIMARY KEY,
    profile           text    NOT NULL,
    key_prefix        text    NOT NULL,
    tenant            text    NOT NULL DEFAULT '',
    entity_type       text,
    attributes        jsonb   NOT NULL DEFAULT '{}'::jsonb,
    static_attributes jsonb   NOT NULL DEFAULT '{}'::jsonb,
    longitude         double precision,
    latitude          double precision,
    apikey            text,
    autoprovision     boolean NOT NULL DEFAULT false,
    modified_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (profile, key_prefix),
    CHECK ((longitude IS NULL) = (latitude IS NULL))
);

CREATE TABLE devices (
    profile           text NOT NULL,
    device_key        text NOT NULL,
    device_id         text NOT NULL,
    tenant            text NOT NULL DEFAULT '',
    model             text,
    entity_type       text,
    entity_name       text,
    attributes        jsonb NOT NULL DEFAULT '{}'::jsonb,
    static_attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    longitude         double precision,
    latitude          double precision,
    apikey            text,
    modified_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (profile, device_key),
    UNIQUE (tenant, device_id),
    CHECK ((longitude IS NULL) = (latitude IS NULL))
);
