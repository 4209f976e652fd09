-- Hourly rollups of observations on plain PostgreSQL, kept by storage/rollups.py.
-- Same columns and meaning as the TimescaleDB continuous aggregate `observations_hourly`
-- (0002_observations.timescaledb.sql), so readers treat both alike: one row per series
-- (tenant, entity_id, attribute, dataset_id) and UTC hour; count(*), count(value_num),
-- sum, min, max and sum of squares of value_num (NULL when the hour has no number).
-- entity_type is the series' entity type (min() should an entity id ever carry two).
CREATE TABLE observation_rollups (
    tenant            text COLLATE "C" NOT NULL,
    entity_id         text COLLATE "C" NOT NULL,
    entity_type       text COLLATE "C" NOT NULL,
    attribute         text COLLATE "C" NOT NULL,
    dataset_id        text COLLATE "C" NOT NULL,
    bucket            timestamptz      NOT NULL,
    observation_count bigint           NOT NULL,
    value_count       bigint           NOT NULL,
    value_sum         double precision,
    value_min         double precision,
    value_max         double precision,
    value_sum_squares double precision,
    PRIMARY KEY (tenant, entity_id, attribute, dataset_id, bucket)
);

-- "All series of a type and attribute in a time range" (temporal queries by type).
CREATE INDEX observation_rollups_type_idx
    ON observation_rollups (tenant, entity_type, attribute, bucket);
-- The refresh replaces a tenant's hours: DELETE ... WHERE tenant = $1 AND bucket in a range.
CREATE INDEX observation_rollups_bucket_idx ON observation_rollups (tenant, bucket);

-- Time ranges whose hours changed in `observations` and are not recomputed yet: written in
-- the transaction that changes the observations, removed by the refresh that recomputes
-- them. [from_ts, to_ts) is half-open; the hours it touches are the ones to recompute, and
-- readers read those hours raw meanwhile. recorded_at is when the range last saw a write
-- (the refresh waits until an hour has been quiet for a few seconds before recomputing it).
CREATE TABLE rollup_pending (
    id          bigserial   PRIMARY KEY,
    tenant      text COLLATE "C" NOT NULL,
    from_ts     timestamptz NOT NULL,
    to_ts       timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_ts < to_ts)
);
CREATE INDEX rollup_pending_tenant_idx ON rollup_pending (tenant, from_ts);

-- The refresh reads one tenant's hours from `observations`, whose indexes all lead with the
-- series (or the entity type): without this it would read the whole month partition. BRIN
-- is nearly free to keep on ingest and fits rows that arrive roughly in time order. Page
-- ranges are summarized by (auto)vacuum; the newest, not yet summarized ones are simply
-- read, and they hold the hours being refreshed anyway. autosummarize stays off: at ingest
-- rates its work-item queue overflows and logs a line per request with the COPY statement.
-- https://www.postgresql.org/docs/15/brin-intro.html
CREATE INDEX observations_observed_at_brin ON observations USING brin (observed_at)
    WITH (pages_per_range = 32);
