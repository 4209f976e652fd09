"""Fixtures for API tests: a migrated database per module and an in-process client per test.

Each test gets a tenant of its own (the client sends `NGSILD-Tenant`), so tests never see
each other's entities even though they share a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from stadspuls.api import create_app
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import drop_database
from tests.support.fixtures import scratch_database_url


@pytest.fixture(scope="module")
def api_database() -> Iterator[str]:
    """A migrated database for the tests of one module; dropped afterwards."""
    url = scratch_database_url("stadspuls_api")
    prepare_database(Settings(database_url=url, metrics_port=0))
    yield url
    drop_database(url)


def api_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for an API under test: access control off unless a test turns it on."""
    values: dict[str, object] = {"database_url": database_url, "auth_enabled": False}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def tenant() -> str:
    """A tenant of this test's own."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(api_database: str, tenant: str) -> Iterator[TestClient]:
    """An in-process client (httpx over ASGI) of a fresh app, speaking for `tenant`."""
    with TestClient(create_app(api_settings(api_database))) as client:
        client.headers["NGSILD-Tenant"] = tenant
        yield client
