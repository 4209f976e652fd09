-- Daily rollups on plain PostgreSQL, kept by storage/rollups.py with the hourly ones (0007):
-- one row per series (tenant, entity_id, attribute, dataset_id) and local day of one time
-- zone, with the columns and meaning of observation_rollups. `bucket` is the instant the
-- day begins (local midnight), so a day is 23, 24 or 25 hours long. Days are summed from
-- the hourly rollups, which is exact only when every UTC offset of the zone is a whole
-- number of hours (storage/rollups.py refuses other zones). A P1D question over a year
-- then reads 365 rows instead of 8,760 (docs/temporal.md, "Choosing the path").
CREATE TABLE observation_daily_rollups (
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
-- The refresh replaces a tenant's days: DELETE ... WHERE tenant = $1 AND bucket in a range.
CREATE INDEX observation_daily_rollups_bucket_idx ON observation_daily_rollups (tenant, bucket);

-- The zone of the days (one row). storage/rollups.py configure_daily_rollups() sets it to
-- STADSPULS_TEMPORAL_TIME_ZONE and rebuilds the days when it changes; readers use a day
-- only for a request in this zone, and check the zone in the statement that reads the days.
CREATE TABLE daily_rollup_zone (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    zone     text    NOT NULL
);
INSERT INTO daily_rollup_zone (zone) VALUES ('Europe/Brussels');

-- A database that already holds hourly rollups gets its days now. Days that pending ranges
-- touch are recomputed by the next refresh; readers do not use them meanwhile.
INSERT INTO observation_daily_rollups (tenant, entity_id, entity_type, attribute, dataset_id,
    bucket, observation_count, value_count, value_sum, value_min, value_max, value_sum_squares)
SELECT tenant, entity_id, min(entity_type), attribute, dataset_id,
       date_trunc('day', bucket, 'Europe/Brussels'),
       sum(observation_count), sum(value_count), sum(value_sum), min(value_min),
       max(value_max), sum(value_sum_squares)
FROM observation_rollups
GROUP BY tenant, entity_id, attribute, dataset_id, date_trunc('day', bucket, 'Europe/Brussels');
