-- Observation history on TimescaleDB 2.x: a hypertable with compression and an hourly
-- continuous aggregate. The primary key makes ingest idempotent: a redelivered reading never
-- makes a second row (TimescaleDB requires the time column in every unique index; it is).
-- Identifier columns compare bytewise (COLLATE "C"): the primary key index is the main cost
-- of ingest, and a linguistic collation makes every key comparison slower for no benefit.
CREATE TABLE observations (
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    entity_type text COLLATE "C" NOT NULL,
    attribute   text COLLATE "C" NOT NULL,
    dataset_id  text COLLATE "C" NOT NULL DEFAULT '',
    observed_at timestamptz      NOT NULL,
    value_num   double precision,
    value_json  jsonb,
    unit_code   text,
    PRIMARY KEY (tenant, entity_id, attribute, dataset_id, observed_at)
);

-- create_hypertable() generalized interface (TimescaleDB >= 2.13) with the by_range() builder:
-- https://www.tigerdata.com/docs/reference/timescaledb/hypertables/create_hypertable
SELECT create_hypertable('observations', by_range('observed_at', INTERVAL '1 day'),
                         if_not_exists => TRUE);

-- "All sensors of this type" queries (temporal API with type=..., rollups).
CREATE INDEX observations_type_idx ON observations (tenant, entity_type, attribute, observed_at);

-- Compression, segmented per series and ordered newest first:
-- https://www.tigerdata.com/docs/api/latest/compression/alter_table_compression
-- dataset_id is segmented too: every column of a unique index should be a segmentby or
-- orderby column so the primary key can be checked against compressed chunks (TimescaleDB
-- warns otherwise; see timescale/timescaledb issue #5892). It is '' for nearly every series,
-- so it adds no segments.
ALTER TABLE observations SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'tenant, entity_id, attribute, dataset_id',
    timescaledb.compress_orderby = 'observed_at DESC'
);

-- https://www.tigerdata.com/docs/api/latest/compression/add_compression_policy
SELECT add_compression_policy('observations', compress_after => INTERVAL '7 days',
                              if_not_exists => TRUE);

-- Hourly rollup as a continuous aggregate; sum of squares lets callers derive the variance.
-- WITH NO DATA because CREATE MATERIALIZED VIEW ... WITH DATA cannot run inside a transaction
-- block, and migrations run in one; the refresh policy fills it.
-- materialized_only = false: real-time aggregation adds the not yet materialized raw rows.
-- https://www.tigerdata.com/docs/api/latest/continuous-aggregates/create_materialized_view
-- (WITH DATA refused in a transaction block: timescale/timescaledb pull request #2389)
CREATE MATERIALIZED VIEW observations_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tenant,
       entity_id,
       entity_type,
       attribute,
       dataset_id,
       time_bucket(INTERVAL '1 hour', observed_at) AS bucket,
       count(*) AS observation_count,
       count(value_num) AS value_count,
       sum(value_num) AS value_sum,
       min(value_num) AS value_min,
       max(value_num) AS value_max,
       sum(value_num * value_num) AS value_sum_squares
FROM observations
GROUP BY tenant, entity_id, entity_type, attribute, dataset_id, bucket
WITH NO DATA;

-- Refresh the last 7 days (the window still uncompressed) every 30 minutes, leaving the
-- current hour to real-time aggregation:
-- https://www.tigerdata.com/docs/reference/timescaledb/continuous-aggregates/add_continuous_aggregate_policy
SELECT add_continuous_aggregate_policy('observations_hourly',
                                       start_offset => INTERVAL '7 days',
                                       end_offset => INTERVAL '1 hour',
                                       schedule_interval => INTERVAL '30 minutes',
                                       if_not_exists => TRUE);
