-- Access control of the NGSI-LD API (ngsi/access.py, storage/api_keys.py, `stadspuls keys`).
--
-- An API key reads `sp_<key_id>_<secret>`: `key_id` finds the row through the primary key,
-- and only SHA-256 of the secret is kept. The secret is 32 bytes from the operating system's
-- CSPRNG (256 bits of entropy), so a stolen hash can be neither guessed nor brute-forced
-- back into a key; slow password hashes (bcrypt, argon2) exist to protect low-entropy human
-- passwords and would only add milliseconds to every API request here.

CREATE TABLE api_keys (
    key_id        text        PRIMARY KEY,
    tenant        text        COLLATE "C" NOT NULL DEFAULT '',
    role          text        NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    name          text        NOT NULL DEFAULT '',
    secret_sha256 bytea       NOT NULL CHECK (octet_length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    -- Updated at most about once a minute per key (storage/api_keys.py), not per request.
    last_used_at  timestamptz
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);

-- Tenants whose entities anyone may read without credentials (writes always need a key).
CREATE TABLE tenant_access (
    tenant      text        COLLATE "C" PRIMARY KEY,
    public_read boolean     NOT NULL DEFAULT false,
    modified_at timestamptz NOT NULL DEFAULT now()
);
