-- MQTT logins for the broker's password_file and acl_file (`stadspuls mqtt export-acl`).
-- A device login publishes only on its own topics (derived from profile and device_key);
-- a service login (the ingest workers) reads every topic. Only the password hash is kept,
-- in Mosquitto's own `$7$` (PBKDF2-SHA512) form, so the files can be written again at any
-- time without knowing a password. Deleting a device deletes its login.

CREATE TABLE mqtt_credentials (
    username      text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('device', 'service')),
    tenant        text        NOT NULL DEFAULT '',
    profile       text,
    device_key    text,
    password_hash text        NOT NULL CHECK (password_hash LIKE '$7$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz,
    CHECK ((kind = 'device') = (profile IS NOT NULL AND device_key IS NOT NULL)),
    CHECK (kind = 'device' OR (profile IS NULL AND device_key IS NULL)),
    UNIQUE (profile, device_key),
    FOREIGN KEY (profile, device_key) REFERENCES devices (profile, device_key)
        ON DELETE CASCADE
);
