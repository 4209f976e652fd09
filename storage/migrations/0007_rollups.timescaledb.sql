-- Rollup upkeep on TimescaleDB: the hourly rollups are the continuous aggregate
-- `observations_hourly` (0002_observations.timescaledb.sql); this only adds the record of
-- late ranges that it does not show yet.
--
-- Why a record is needed at all: real-time aggregation (materialized_only = false) adds the
-- raw rows *above* the watermark to a query, but a row added to an hour that is already
-- materialized is not reflected until a refresh covers that hour ("eventually consistent
-- for historical data"):
-- https://www.tigerdata.com/docs/learn/continuous-aggregates/real-time-aggregates
-- The refresh policy only looks at its window (the last 7 days, every 30 minutes), so a late
-- reading older than that would never be counted, and one inside it only after up to 30
-- minutes. storage/rollups.py therefore records every written range here, exactly as on
-- plain PostgreSQL, and refresh_rollups() calls refresh_continuous_aggregate() over the
-- hours of each late range once it has been quiet for a few seconds (ranges in the last
-- hour, which the policy leaves to real-time aggregation, are simply dropped):
-- https://www.tigerdata.com/docs/api/latest/continuous-aggregates/refresh_continuous_aggregate
-- That procedure cannot run inside a transaction block (timescale/timescaledb issue #2983),
-- so the refresher holds a session advisory lock instead of row locks, and removes the
-- ranges it refreshed only afterwards. Readers treat a pending hour as on plain PostgreSQL:
-- they read it raw.
CREATE TABLE rollup_pending (
    id          bigserial   PRIMARY KEY,
    tenant      text COLLATE "C" NOT NULL,
    from_ts     timestamptz NOT NULL,
    to_ts       timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_ts < to_ts)
);
CREATE INDEX rollup_pending_tenant_idx ON rollup_pending (tenant, from_ts);
