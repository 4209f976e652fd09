-- Device health (storage/device_health.py, docs/device-health.md).

-- The 10-minute bucket a message received at `moment` is counted in. The one definition of
-- the bucket: the batch writer fills buckets with it, device health reads them back.
CREATE FUNCTION stadspuls_activity_bucket(moment timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin('10 minutes', moment, timestamptz '2000-01-01 00:00:00+00')
$$;

-- Messages and readings per device per bucket of received time, for "messages in the last
-- hour" and the 24-hour message rate. The batch writer adds to it in the statement that
-- upserts device_activity (one row per device per batch, as there); refresh_device_states
-- deletes buckets older than a day. Updates touch only the counters, which no index
-- covers, so with the free space per page they stay HOT.
CREATE TABLE device_activity_recent (
    tenant    text        NOT NULL,
    device_id text        NOT NULL,
    bucket    timestamptz NOT NULL,
    messages  bigint      NOT NULL DEFAULT 0,
    readings  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, device_id, bucket)
) WITH (fillfactor = 80);
CREATE INDEX device_activity_recent_bucket_idx ON device_activity_recent (bucket);

-- Dead letters per device (count and latest reason) without scanning every dead letter.
CREATE INDEX dead_letters_device_idx ON dead_letters (tenant, device_id, last_received_at DESC)
    WHERE device_id IS NOT NULL;
