-- Observation history on plain PostgreSQL: native range partitioning by month.
-- The primary key makes ingest idempotent: a redelivered reading never makes a second row.
-- Monthly partitions are created on demand by the writer (storage/partitions.py) before it
-- writes a batch. There is deliberately no DEFAULT partition: rows in it would make creating
-- the partition for their month fail later.
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
) PARTITION BY RANGE (observed_at);

-- "All sensors of this type" queries (temporal API with type=..., rollups).
CREATE INDEX observations_type_idx ON observations (tenant, entity_type, attribute, observed_at);
