-- Where each feed importer stopped (feeds/gipod_store.py, docs/gipod.md): one row per
-- importer, source and tenant, with whatever the importer needs to resume, e.g. the newest
-- version time it applied and the page to start from next time.
CREATE TABLE feed_state (
    name       text        COLLATE "C" PRIMARY KEY,
    state      jsonb       NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
