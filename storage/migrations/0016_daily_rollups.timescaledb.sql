-- Daily rollups on TimescaleDB: a hierarchical continuous aggregate (TimescaleDB >= 2.9) on
-- the hourly one, `observations_hourly` (0002), with days of one time zone. time_bucket's
-- `timezone` argument (TimescaleDB >= 2.8) starts each bucket at local midnight, so a day is
-- 23, 24 or 25 hours long; summing hours into days is exact because every UTC offset of
-- Europe/Brussels is a whole number of hours. A day bucket (variable width) may sit on an
-- hour bucket (fixed width, a divisor of a day); the reverse is what TimescaleDB refuses.
-- https://www.tigerdata.com/docs/use-timescale/latest/continuous-aggregates/hierarchical-continuous-aggregates
-- https://www.tigerdata.com/docs/api/latest/hyperfunctions/time_bucket/
-- The zone is fixed by this view (storage/rollups.py configure_daily_rollups() reports a
-- setting that differs; readers then use the days only for requests in this zone).
-- Same columns as observations_hourly; `bucket` is the instant the local day begins. It
-- has a row per entity type as well, like the hourly one, so readers group it again.
-- WITH NO DATA: see 0002 (not inside a transaction block); the policy below fills it.
CREATE MATERIALIZED VIEW observations_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tenant,
       entity_id,
       entity_type,
       attribute,
       dataset_id,
       time_bucket(INTERVAL '1 day', bucket, 'Europe/Brussels') AS bucket,
       sum(observation_count)::bigint AS observation_count,
       sum(value_count)::bigint AS value_count,
       sum(value_sum) AS value_sum,
       min(value_min) AS value_min,
       max(value_max) AS value_max,
       sum(value_sum_squares) AS value_sum_squares
FROM observations_hourly
GROUP BY tenant, entity_id, entity_type, attribute, dataset_id,
         time_bucket(INTERVAL '1 day', bucket, 'Europe/Brussels')
WITH NO DATA;

-- Materialize the days of the last 9 days every hour, up to 3 hours ago: a day is then
-- materialized only once the hourly policy (every 30 minutes, up to an hour ago) has
-- materialized all of its hours, because refreshing a day reads the hourly aggregate's
-- materialized rows. Later days are answered by real-time aggregation over the hourly one.
-- Late data older than that is recorded in rollup_pending (0007) and refreshed by
-- storage/rollups.py, hours first, then the days that hold them.
-- https://www.tigerdata.com/docs/reference/timescaledb/continuous-aggregates/add_continuous_aggregate_policy
SELECT add_continuous_aggregate_policy('observations_daily',
                                       start_offset => INTERVAL '9 days',
                                       end_offset => INTERVAL '3 hours',
                                       schedule_interval => INTERVAL '1 hour',
                                       if_not_exists => TRUE);

-- The zone of the days (one row), as on plain PostgreSQL (0016_daily_rollups.postgres.sql).
CREATE TABLE daily_rollup_zone (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    zone     text    NOT NULL
);
INSERT INTO daily_rollup_zone (zone) VALUES ('Europe/Brussels');
