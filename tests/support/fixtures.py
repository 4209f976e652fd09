"""Fixtures for ingest tests: a real Mosquitto per test and a migrated database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stadspuls.embedded import running_mosquitto
from stadspuls.settings import Settings
from stadspuls.simulator import sample_devices, sample_groups
from stadspuls.wiring import prepare_database
from storage.database import connect, drop_database
from storage.writer import write_registry

MAINTENANCE_URL = os.environ.get(
    "STADSPULS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def scratch_database_url(prefix: str) -> str:
    """A URL for a database that does not exist yet, on the test PostgreSQL server."""
    base = MAINTENANCE_URL.rsplit("/", 1)[0]
    return f"{base}/{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mqtt_url(tmp_path: Path) -> Iterator[str]:
    """A Mosquitto of its own for this test, running the configuration the project ships."""
    with running_mosquitto(tmp_path) as url:
        yield url


@pytest.fixture
def ingest_database() -> Iterator[str]:
    """A migrated database with the simulator's device groups registered; dropped afterwards."""
    url = scratch_database_url("stadspuls_ingest")
    prepare_database(Settings(database_url=url, metrics_port=0))
    with connect(url) as conn:
        write_registry(conn, sample_devices(), sample_groups())
        conn.commit()
    yield url
    drop_database(url)
