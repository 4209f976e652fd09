"""Storage fixtures: a database per backend for the session, fresh ones where a test needs one.

The server comes from STADSPULS_TEST_DATABASE_URL (see tests/support/fixtures.py). Every
storage test runs once per backend; the TimescaleDB run is skipped, with the reason printed,
where the extension cannot be used.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest

from storage.backend import Backend, BackendUnavailable, detect_backend
from storage.database import connect, create_database_if_missing, drop_database
from storage.migrate import migrate
from storage.records import DeadLetter, DeviceActivity, EntityFragment, ObservationRow
from tests.support.fixtures import MAINTENANCE_URL, scratch_database_url

BACKEND_NAMES = ["postgres", "timescaledb"]

Result = TypeVar("Result")


def _timescaledb_absence() -> str | None:
    """None when the server offers timescaledb, else what pg_available_extensions said."""
    with psycopg.connect(MAINTENANCE_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions"
            " WHERE name = 'timescaledb'"
        ).fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    if row is None:
        return f"pg_available_extensions has no 'timescaledb' row (PostgreSQL {version[0]})"
    return None


def _skip_without_timescaledb(backend_name: str) -> None:
    if backend_name == "timescaledb" and (absence := _timescaledb_absence()):
        pytest.skip(f"timescaledb extension not available on this PostgreSQL: {absence}")


def _prepare(url: str, backend_name: str) -> Backend:
    """Detect the backend (skipping if it cannot be created here) and migrate."""
    with connect(url) as conn:
        try:
            backend = detect_backend(conn, backend_name)
        except BackendUnavailable as error:
            pytest.skip(f"timescaledb extension not usable on this PostgreSQL: {error}")
        migrate(conn, backend)
    return backend


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn; TimescaleDB only where the extension is available."""
    _skip_without_timescaledb(request.param)
    return request.param


@pytest.fixture(scope="session")
def database_url(backend_name: str) -> Iterator[str]:
    """A database of this session for one backend, dropped at the end."""
    url = scratch_database_url(f"stadspuls_test_{backend_name}")
    create_database_if_missing(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def backend(database_url: str, backend_name: str) -> Backend:
    """The session database's backend, migrated."""
    return _prepare(database_url, backend_name)


@pytest.fixture
def conn(database_url: str, backend: Backend) -> Iterator[psycopg.Connection]:
    """A connection of this test to the migrated session database."""
    with connect(database_url) as connection:
        yield connection


@pytest.fixture
def fresh_database_url(backend_name: str) -> Iterator[str]:
    """An empty database of this test only (not migrated), dropped afterwards."""
    url = scratch_database_url(f"stadspuls_test_{backend_name}")
    create_database_if_missing(url)
    yield url
    drop_database(url)


@pytest.fixture
def fresh_backend(fresh_database_url: str, backend_name: str) -> Backend:
    """The fresh database, migrated for this test's backend."""
    return _prepare(fresh_database_url, backend_name)


@pytest.fixture
def tenant() -> str:
    """A tenant of this test only, so tests sharing a database never see each other's rows."""
    return f"tenant-{uuid.uuid4().hex[:12]}"


class RecordFactory:
    """Builds the records of one test's tenant, so each test owns its rows."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def entity_id(self, number: int = 0, entity_type: str = "AirQualityObserved") -> str:
        """An NGSI-LD entity id of this tenant."""
        return f"urn:ngsi-ld:{entity_type}:{self.tenant}-{number}"

    def observations(
        self,
        count: int,
        start: datetime,
        *,
        entities: int = 1,
        step: timedelta = timedelta(minutes=1),
    ) -> list[ObservationRow]:
        """`count` pm25 readings spread over `entities` entities, one `step` apart."""
        return [
            ObservationRow(
                self.tenant,
                self.entity_id(i % entities),
                "AirQualityObserved",
                "pm25",
                "",
                start + step * i,
                float(i),
                None,
                "GQ",
            )
            for i in range(count)
        ]

    def fragment(self, attributes: dict[str, Any], number: int = 0) -> EntityFragment:
        """Latest-state attributes for one entity of this tenant."""
        return EntityFragment(self.tenant, self.entity_id(number), "AirQualityObserved", attributes)

    def dead_letter(
        self, payload: bytes, received_at: datetime, reason: str = "invalid_json"
    ) -> DeadLetter:
        """A message of this tenant that could not be decoded."""
        return DeadLetter(
            f"{self.tenant}/up",
            payload,
            reason,
            f"{reason} detail",
            received_at,
            self.tenant,
            "dev-1",
        )

    def activity(self, device: str, messages: int, readings: int, seen: datetime) -> DeviceActivity:
        """Counters of one device of this tenant."""
        return DeviceActivity(self.tenant, device, messages, readings, seen)


@pytest.fixture
def records(tenant: str) -> RecordFactory:
    """Record builders for this test's tenant."""
    return RecordFactory(tenant)


def _run_together(
    url: str, count: int, action: Callable[[psycopg.Connection], Result]
) -> list[Result]:
    start = threading.Barrier(count)
    results: list[Result] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with connect(url) as connection:
                start.wait()
                results.append(action(connection))
        except BaseException as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def run_together() -> Callable[..., list[Any]]:
    """Run an action on `count` connections to `url` at the same moment, as racing workers do."""
    return _run_together
