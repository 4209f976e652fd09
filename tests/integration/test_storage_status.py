"""`stadspuls status` queries against the real PostgreSQL, each test on a database of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.database import connect
from storage.records import Batch
from storage.status import (
    DeadLetterSummary,
    collect_status,
    count_observations,
    estimate_observations,
    list_dead_letters,
)
from storage.writer import BatchWriter

pytestmark = pytest.mark.integration

START = datetime(2030, 6, 1, tzinfo=UTC)


@pytest.fixture
def status_conn(fresh_database_url, fresh_backend):
    with connect(fresh_database_url) as connection:
        yield connection


def test_an_empty_store_reports_zeros_and_its_backend(status_conn, fresh_backend):
    report = collect_status(status_conn, fresh_backend)
    assert (report.backend_name, report.backend_version) == (
        fresh_backend.name,
        fresh_backend.version,
    )
    assert (report.observations, report.observations_exact) == (0, True)
    assert (report.entities, report.messages, report.readings) == (0, 0, 0)
    assert (report.dead_letters, report.devices) == ([], [])


def test_status_counts_what_the_writer_stored(status_conn, fresh_backend, records):
    writer = BatchWriter(fresh_backend)
    writer.write(
        status_conn,
        Batch(
            observations=records.observations(30, START, entities=3),
            entities=[records.fragment({"name": {"value": str(i)}}, i) for i in range(3)],
            dead_letters=[
                records.dead_letter(b"x", START),
                records.dead_letter(b"x", START + timedelta(seconds=1)),
                records.dead_letter(b"y", START),
                records.dead_letter(b"z", START, reason="oversize"),
            ],
            activity=[
                records.activity(f"device-{i}", i + 1, 10 * (i + 1), START + timedelta(minutes=i))
                for i in range(5)
            ],
        ),
    )
    report = collect_status(status_conn, fresh_backend, devices=2)
    assert (report.observations, report.observations_exact, report.entities) == (30, True, 3)
    assert (report.messages, report.readings) == (15, 150)
    assert report.dead_letters == [
        DeadLetterSummary("invalid_json", messages=2, times_received=3),
        DeadLetterSummary("oversize", messages=1, times_received=1),
    ]
    assert [(d.device_id, d.last_message_at) for d in report.devices] == [
        ("device-4", START + timedelta(minutes=4)),
        ("device-3", START + timedelta(minutes=3)),
    ]


def test_observations_are_estimated_when_asked_and_counted_when_small(
    status_conn, fresh_backend, records
):
    BatchWriter(fresh_backend).write(
        status_conn, Batch(observations=records.observations(500, START))
    )
    status_conn.execute("ANALYZE observations")
    status_conn.commit()
    estimate = estimate_observations(status_conn, fresh_backend)
    assert estimate is not None and 400 <= estimate <= 600
    assert count_observations(status_conn, fresh_backend, exact=False) == (estimate, False)
    assert count_observations(status_conn, fresh_backend) == (500, True)
    assert count_observations(status_conn, fresh_backend, exact=True) == (500, True)


def test_dead_letters_are_listed_newest_first_with_their_payload(
    status_conn, fresh_backend, records
):
    letters = [
        records.dead_letter(f"payload {i}".encode(), START + timedelta(minutes=i)) for i in range(4)
    ]
    letters.append(records.dead_letter(b"\x00\xff", START, reason="oversize"))
    BatchWriter(fresh_backend).write(status_conn, Batch(dead_letters=letters))

    newest = list_dead_letters(status_conn, limit=2)
    assert [(d.payload, d.reason) for d in newest] == [
        (b"payload 3", "invalid_json"),
        (b"payload 2", "invalid_json"),
    ]
    oversize = list_dead_letters(status_conn, limit=10, reason="oversize")
    assert [(d.payload, d.topic, d.times_received) for d in oversize] == [
        (b"\x00\xff", f"{records.tenant}/up", 1)
    ]
