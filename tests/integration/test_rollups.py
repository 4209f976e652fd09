"""storage/rollups.py: pending ranges from the writer, refresh, overlaps, on each backend.

Values are multiples of 1/4 of modest size, so every sum and sum of squares is exact in
float64 whatever the order of addition: the rollups must equal a GROUP BY bit for bit.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.committer import RollupRefresher
from stadspuls.publisher import publish_all
from stadspuls.simulator import message_stream
from storage.backend import Backend
from storage.database import connect
from storage.records import Batch, ObservationRow
from storage.rollup_refresh import refresh_rollups
from storage.rollups import (
    HOUR,
    MICROSECOND,
    pending_overlaps,
    plan_refresh,
    record_pending,
    tenant_ranges,
)
from storage.temporal_days import configure_daily_rollups
from storage.temporal_writes import delete_entity_history
from storage.writer import BatchWriter
from tests.support.ingest import ingest_settings, running_worker, wait_for_rows, wait_until

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
QUIET = timedelta(0)  # recompute every pending hour at once

EXPECTED = """
SELECT entity_id, attribute, dataset_id,
       date_bin('1 hour', observed_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*), count(value_num), sum(value_num), min(value_num), max(value_num),
       sum(value_num * value_num)
FROM observations WHERE tenant = %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
ACTUAL = """
SELECT entity_id, attribute, dataset_id, bucket, sum(observation_count), sum(value_count),
       sum(value_sum), min(value_min), max(value_max), sum(value_sum_squares)
FROM {table} WHERE tenant = %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
ROLLUP_TABLES = {"postgres": "observation_rollups", "timescaledb": "observations_hourly"}
DAILY_TABLES = {"postgres": "observation_daily_rollups", "timescaledb": "observations_daily"}
#: The daily rollups must equal a GROUP BY of the raw rows over local days of their zone.
DAILY_EXPECTED = """
SELECT entity_id, attribute, dataset_id, date_trunc('day', observed_at, %s),
       count(*), count(value_num), sum(value_num), min(value_num), max(value_num),
       sum(value_num * value_num)
FROM observations WHERE tenant = %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""


def fetch(conn: psycopg.Connection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query, leaving the connection idle (the writer and refresh need that)."""
    rows = conn.execute(query, params).fetchall()  # type: ignore[call-overload]
    conn.commit()
    return rows


def rollups(conn: psycopg.Connection, backend: Backend, tenant: str) -> list[tuple[Any, ...]]:
    """The tenant's rollups, in the form of EXPECTED (numeric sums come back as Decimal)."""
    rows = fetch(conn, ACTUAL.format(table=ROLLUP_TABLES[backend.name]), tenant)
    return [(*row[:4], int(row[4]), int(row[5]), *row[6:]) for row in rows]


def assert_rollups_exact(conn: psycopg.Connection, backend: Backend, *tenants: str) -> None:
    for tenant in tenants:
        expected = fetch(conn, EXPECTED, tenant)
        assert expected, f"no observations for {tenant}"
        assert rollups(conn, backend, tenant) == expected


def pending_rows(conn: psycopg.Connection, tenant: str) -> list[tuple[datetime, datetime]]:
    return fetch(
        conn, "SELECT from_ts, to_ts FROM rollup_pending WHERE tenant = %s ORDER BY 1", tenant
    )


def overlaps(conn: psycopg.Connection, tenant: str, start=None, end=None) -> list[Any]:
    """pending_overlaps, leaving the connection idle."""
    found = pending_overlaps(conn, tenant, start, end)
    conn.commit()
    return found


def readings(
    rng: random.Random, tenant: str, count: int, start: datetime, span: timedelta
) -> list[Any]:
    """Random readings of three entities, two attributes, two datasets; some not numbers."""
    rows = []
    for _ in range(count):
        moment = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
        number = rng.randrange(-4000, 4000) / 4 if rng.random() < 0.9 else None
        rows.append(
            ObservationRow(
                tenant,
                f"urn:ngsi-ld:AirQualityObserved:{tenant}-{rng.randrange(3)}",
                "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",
                rng.choice(["https://example.org/pm25", "https://example.org/no2"]),
                rng.choice(["", "urn:ngsi-ld:Dataset:raw"]),
                moment,
                number,
                None if number is not None else {"state": rng.choice(["ok", "error"])},
                "GQ",
            )
        )
    return rows


@pytest.fixture
def tenants(tenant: str) -> tuple[str, str]:
    """Two tenants of this test."""
    return tenant, f"{tenant}-other"


def test_rollups_equal_a_group_by_after_redelivery_and_late_data(conn, backend, tenants):
    rng = random.Random(7)
    first, second = tenants
    writer = BatchWriter(backend)
    batches = [
        readings(rng, first, 300, START, 3 * HOUR) + readings(rng, second, 200, START, 2 * HOUR),
        readings(rng, first, 300, START + 2 * HOUR, 2 * HOUR),
    ]
    for rows in batches:
        writer.write(conn, Batch(observations=rows))
    assert refresh_rollups(conn, settle=QUIET) >= 2
    assert_rollups_exact(conn, backend, first, second)
    assert overlaps(conn, first, None, None) == []

    # A redelivered batch inserts nothing and so records no range.
    assert writer.write(conn, Batch(observations=batches[0])).observations_inserted == 0
    assert pending_rows(conn, first) == pending_rows(conn, second) == []

    # Late data for an old hour of one tenant, with a few duplicates in the same batch.
    old_hour = START - timedelta(days=2)
    late = readings(rng, first, 40, old_hour + timedelta(minutes=5), timedelta(minutes=50))
    writer.write(conn, Batch(observations=late + batches[1][:10]))
    assert overlaps(conn, first, None, None) == [(old_hour, old_hour + HOUR)]
    assert overlaps(conn, first, START, None) == []
    assert overlaps(conn, second, None, None) == []
    refresh_rollups(conn, settle=QUIET)
    assert_rollups_exact(conn, backend, first, second)
    assert overlaps(conn, first, None, None) == []


def test_a_half_redelivered_batch_records_only_the_new_rows_range(conn, backend, tenants):
    rng = random.Random(11)
    first, _ = tenants
    writer = BatchWriter(backend)
    old = readings(rng, first, 50, START, HOUR)
    writer.write(conn, Batch(observations=old))
    refresh_rollups(conn, settle=QUIET)
    new = [old[0]._replace(observed_at=START + 2 * HOUR + timedelta(minutes=i)) for i in range(5)]
    assert writer.write(conn, Batch(observations=old + new)).observations_inserted == 5
    assert writer.slow_path_batches == 1
    newest = START + 2 * HOUR + timedelta(minutes=4)
    assert pending_rows(conn, first) == [(START + 2 * HOUR, newest + MICROSECOND)]
    refresh_rollups(conn, settle=QUIET)
    assert_rollups_exact(conn, backend, first)


def test_refresh_is_idempotent(conn, backend, tenants):
    rng = random.Random(3)
    first, second = tenants
    rows = readings(rng, first, 200, START, 5 * HOUR) + readings(rng, second, 100, START, HOUR)
    BatchWriter(backend).write(conn, Batch(observations=rows))
    refresh_rollups(conn, settle=QUIET)
    before = rollups(conn, backend, first), rollups(conn, backend, second)
    # Recording the same ranges again (as a redelivery on another path might) changes nothing.
    with conn.transaction(), conn.cursor() as cursor:
        record_pending(cursor, tenant_ranges(rows) + tenant_ranges(rows))
    assert refresh_rollups(conn, settle=QUIET) >= 2
    assert (rollups(conn, backend, first), rollups(conn, backend, second)) == before
    assert_rollups_exact(conn, backend, first, second)


def test_recent_writes_wait_until_their_hours_are_quiet(conn, backend, tenants):
    rng = random.Random(5)
    first, _ = tenants
    writer = BatchWriter(backend)
    for offset in range(3):
        rows = readings(rng, first, 30, START + offset * HOUR / 2, HOUR / 2)
        writer.write(conn, Batch(observations=rows))
    assert len(pending_rows(conn, first)) == 3
    refresh_rollups(conn, settle=timedelta(minutes=10))
    # Nothing recomputed yet; the three ranges are kept as one, on whole hours.
    assert rollups(conn, backend, first) == []
    assert pending_rows(conn, first) == [(START, START + 2 * HOUR)]
    assert overlaps(conn, first, START + HOUR, START + 3 * HOUR) == [(START, START + 2 * HOUR)]
    refresh_rollups(conn, settle=QUIET)
    assert_rollups_exact(conn, backend, first)
    assert pending_rows(conn, first) == []


def test_refresh_needs_an_idle_connection(conn, backend):
    conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="outside any transaction"):
        refresh_rollups(conn)
    conn.rollback()


def test_concurrent_refreshes_take_each_range_once(
    fresh_database_url: str, fresh_backend: Backend, run_together: Callable[..., list[Any]]
):
    rng = random.Random(13)
    names = [f"tenant-{i}" for i in range(6)]
    with connect(fresh_database_url) as conn:
        writer = BatchWriter(fresh_backend)
        for round_ in range(8):
            for name in names:
                start = START + round_ * HOUR
                writer.write(conn, Batch(observations=readings(rng, name, 60, start, 2 * HOUR)))
        total = fetch(conn, "SELECT count(*) FROM rollup_pending")[0][0]

    def drain(connection: psycopg.Connection) -> int:
        taken = 0
        while taken_now := refresh_rollups(connection, settle=QUIET, limit=7):
            taken += taken_now
        return taken

    taken = run_together(fresh_database_url, 2, drain)
    with connect(fresh_database_url) as conn:
        # A range claimed while the other worker held its tenant is left for a later run.
        taken.append(drain(conn))
        assert sum(taken) == total
        assert fetch(conn, "SELECT count(*) FROM rollup_pending") == [(0,)]
        assert_rollups_exact(conn, fresh_backend, *names)


def test_the_refresher_thread_retries_after_a_failure(database_url, conn, backend, tenants):
    first, _ = tenants
    rows = readings(random.Random(1), first, 50, START, HOUR)
    BatchWriter(backend).write(conn, Batch(observations=rows))
    attempts = []

    def flaky_connect() -> psycopg.Connection:
        attempts.append(1)
        if len(attempts) == 1:
            raise psycopg.OperationalError("the database is restarting")
        return connect(database_url)

    refresher = RollupRefresher(flaky_connect, 0.05, lambda c: refresh_rollups(c, settle=QUIET))
    refresher.start()
    try:
        wait_until(lambda: not pending_rows(conn, first), 10, "the pending range to be taken")
    finally:
        refresher.stop()
    assert refresher.failures == 1 and refresher.runs >= 1
    assert_rollups_exact(conn, backend, first)


def test_the_ingest_worker_refreshes_rollups_in_its_writer_process(ingest_database, mqtt_url):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    messages = [(m.topic, m.payload) for m in message_stream(90, start, devices_per_profile=3)]
    settings = ingest_settings(ingest_database, mqtt_url, batch_size=15, rollup_refresh_seconds=0.2)
    with connect(ingest_database) as conn, running_worker(settings) as worker:
        publish_all(mqtt_url, messages)
        wait_for_rows(ingest_database, 90)
        wait_until(lambda: worker.stats.batches >= 2, 10, "several batches")
        # The refresher merged the batches' ranges into whole hours (they are too fresh to
        # be recomputed before 30 s of quiet).
        wait_until(
            lambda: pending_rows(conn, "") == [(start, start + HOUR)],
            20,
            "the refresher to merge the pending ranges",
        )


def daily_rollups(conn: psycopg.Connection, backend: Backend, tenant: str) -> list[tuple[Any, ...]]:
    """The tenant's daily rollups, in the form of DAILY_EXPECTED."""
    rows = fetch(conn, ACTUAL.format(table=DAILY_TABLES[backend.name]), tenant)
    return [(*row[:4], int(row[4]), int(row[5]), *row[6:]) for row in rows]


def refresh_all(conn: psycopg.Connection) -> None:
    """Refresh until nothing is pending (24 hours per call and tenant)."""
    while refresh_rollups(conn, settle=QUIET):
        pass


def test_daily_rollups_follow_local_days_and_late_data(conn, backend, tenants):
    rng = random.Random(17)
    first, second = tenants
    writer = BatchWriter(backend)
    # Around both daylight-saving changes: Brussels days of 23 and of 25 hours.
    for begin in (datetime(2026, 3, 28, 20, tzinfo=UTC), datetime(2026, 10, 24, 20, tzinfo=UTC)):
        rows = readings(rng, first, 400, begin, timedelta(hours=30))
        writer.write(conn, Batch(observations=rows + readings(rng, second, 50, begin, HOUR)))
    refresh_all(conn)
    expected = fetch(conn, DAILY_EXPECTED, "Europe/Brussels", first)
    assert len({row[3] for row in expected}) == 6  # three local days each time
    assert daily_rollups(conn, backend, first) == expected
    before = daily_rollups(conn, backend, second)

    # Late data in an old day of one tenant: that day is recomputed, the others stay.
    late_hour = datetime(2026, 3, 29, 5, tzinfo=UTC)
    writer.write(conn, Batch(observations=readings(rng, first, 30, late_hour, HOUR)))
    assert overlaps(conn, first, None, None) == [(late_hour, late_hour + HOUR)]
    refresh_all(conn)
    assert daily_rollups(conn, backend, first) == fetch(
        conn, DAILY_EXPECTED, "Europe/Brussels", first
    )
    assert daily_rollups(conn, backend, second) == before


PACKS = """
SELECT entity_id, attribute, dataset_id, day, observation_counts, value_counts, value_sums,
       value_mins, value_maxs, value_sums_squares
FROM observation_hour_packs WHERE tenant = %s
"""


def packs_unpacked(conn: psycopg.Connection, tenant: str) -> list[tuple[Any, ...]]:
    """The tenant's hour packs (migration 0019: 24 big-endian values per column) as hourly
    rows in the form of EXPECTED: hours without instances left out, NaN back to NULL."""
    rows = []
    for entity, attribute, dataset, day, *packed in fetch(conn, PACKS, tenant):
        counts, numbers = (struct.unpack(">24q", column) for column in packed[:2])
        floats = [struct.unpack(">24d", column) for column in packed[2:]]
        for slot in range(24):
            if counts[slot]:
                values = [None if math.isnan(c[slot]) else c[slot] for c in floats]
                hour = day + slot * HOUR
                rows.append(
                    (entity, attribute, dataset, hour, counts[slot], numbers[slot], *values)
                )
    return sorted(rows, key=lambda row: row[:4])


def test_hour_packs_follow_the_hours_late_data_and_deletes(conn, backend, tenants):
    if backend.name != "postgres":
        pytest.skip("hour packs are kept on plain PostgreSQL only")
    rng = random.Random(23)
    first, second = tenants
    writer = BatchWriter(backend)
    # Three UTC days, sparse (most days miss hours) and with hours of no numbers.
    begin = datetime(2026, 2, 1, 21, tzinfo=UTC)
    rows = readings(rng, first, 120, begin, timedelta(hours=50))
    writer.write(conn, Batch(observations=rows + readings(rng, second, 30, begin, HOUR)))
    refresh_all(conn)
    expected = fetch(conn, EXPECTED, first)
    assert len({row[3].date() for row in expected}) == 3
    assert packs_unpacked(conn, first) == expected
    before = packs_unpacked(conn, second)
    assert before == fetch(conn, EXPECTED, second)

    # Late data in an hour of the middle day: that day is repacked, the others stay.
    late_hour = datetime(2026, 2, 2, 13, tzinfo=UTC)
    writer.write(conn, Batch(observations=readings(rng, first, 30, late_hour, HOUR)))
    refresh_all(conn)
    assert packs_unpacked(conn, first) == fetch(conn, EXPECTED, first)
    assert packs_unpacked(conn, second) == before

    # A deleted history takes its packs along (storage/temporal_writes.py).
    gone = f"urn:ngsi-ld:AirQualityObserved:{first}-0"
    asyncio.run(_delete_entity_history(conn.info.dsn, first, gone))
    left = packs_unpacked(conn, first)
    assert left == fetch(conn, EXPECTED, first) and left
    assert all(row[0] != gone for row in left)


async def _delete_entity_history(dsn: str, tenant: str, entity_id: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as aconn, aconn.transaction():
        assert await delete_entity_history(aconn, tenant, entity_id) > 0


def test_configuring_another_zone_rebuilds_the_days(fresh_database_url, fresh_backend):
    if fresh_backend.name != "postgres":
        pytest.skip("on TimescaleDB the zone of observations_daily is fixed by its view")
    rng = random.Random(19)
    with connect(fresh_database_url) as conn:
        begin = datetime(2026, 10, 24, 20, tzinfo=UTC)
        BatchWriter(fresh_backend).write(
            conn, Batch(observations=readings(rng, "t", 300, begin, timedelta(hours=40)))
        )
        refresh_all(conn)
        assert configure_daily_rollups(conn, "Europe/Brussels") is False  # already
        assert configure_daily_rollups(conn, "America/New_York") is True
        assert fetch(conn, "SELECT zone FROM daily_rollup_zone") == [("America/New_York",)]
        expected = fetch(conn, DAILY_EXPECTED, "America/New_York", "t")
        assert daily_rollups(conn, fresh_backend, "t") == expected
        # Later refreshes keep the days of the new zone.
        late = readings(rng, "t", 20, begin + timedelta(hours=3), HOUR)
        BatchWriter(fresh_backend).write(conn, Batch(observations=late))
        refresh_all(conn)
        expected = fetch(conn, DAILY_EXPECTED, "America/New_York", "t")
        assert daily_rollups(conn, fresh_backend, "t") == expected
        with pytest.raises(ValueError, match="whole hours: Asia/Kathmandu"):
            configure_daily_rollups(conn, "Asia/Kathmandu")


# --- pure parts -------------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([at(5), at(1), at(30)], [(at(1), at(30) + MICROSECOND)]),
        ([at(0), at(180)], [(at(0), at(180) + MICROSECOND)]),  # 3 hours: one range
        # A wrong clock far away: the hours actually touched, not all in between.
        (
            [at(10), at(20), at(60 * 24 * 365)],
            [(at(0), at(60)), (at(60 * 24 * 365), at(60 * 24 * 365 + 60))],
        ),
        ([at(10), at(70), at(60 * 5)], [(at(0), at(120)), (at(300), at(360))]),
    ],
)
def test_tenant_ranges(times, expected):
    rows = [("t", "e", "T", "a", "", moment, 1.0, None, None) for moment in times]
    assert tenant_ranges(rows) == [("t", *span) for span in expected]


def test_tenant_ranges_are_per_tenant():
    rows = [(tenant, "e", "T", "a", "", at(m), 1.0, None, None) for tenant, m in
            [("b", 5), ("a", 7), ("b", 2), ("a", 9)]]  # fmt: skip
    assert tenant_ranges(rows) == [
        ("a", at(7), at(9) + MICROSECOND),
        ("b", at(2), at(5) + MICROSECOND),
    ]


NOW = at(600)


@pytest.mark.parametrize(
    ("pending", "max_hours", "recompute", "remainder"),
    [
        # quiet, overlapping and adjacent ranges merge into one recompute on whole hours
        ([(at(5), at(10), at(0)), (at(50), at(70), at(0)), (at(120), at(121), at(1))], 24,
         [(at(0), at(180))], []),
        # a busy hour is kept, with its newest recorded_at; quiet ones around it go ahead
        ([(at(0), at(180), at(0)), (at(70), at(80), NOW)], 24,
         [(at(0), at(60)), (at(120), at(180))], [(at(60), at(120), NOW)]),
        # the work per call is bounded; the rest stays quiet for the next call
        ([(at(0), at(300), at(2))], 2, [(at(0), at(120))], [(at(120), at(300), at(2))]),
    ],
)  # fmt: skip
def test_plan_refresh(pending, max_hours, recompute, remainder):
    plan = plan_refresh(pending, NOW - timedelta(seconds=30), max_hours)
    assert plan.recompute == recompute
    assert plan.remainder == remainder


def test_plan_refresh_leaves_the_real_time_hours_to_the_continuous_aggregate():
    plan = plan_refresh([(at(0), at(300), at(0)), (at(240), at(250), NOW)], NOW, 24, at(180))
    assert plan.recompute == [(at(0), at(180))]
    assert plan.remainder == []
