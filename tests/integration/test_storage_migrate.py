"""Migrations and backend detection against the real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest

from storage.backend import Backend, BackendUnavailable, detect_backend
from storage.database import connect, create_database_if_missing, drop_database, make_pool
from storage.migrate import MigrationError, available_migrations, migrate
from tests.support.fixtures import scratch_database_url

pytestmark = pytest.mark.integration

TABLES = [
    "entities",
    "observations",
    "dead_letters",
    "device_activity",
    "device_groups",
    "devices",
    "stadspuls_schema_migrations",
]


def expected_files(backend_name: str) -> list[str]:
    return [migration.filename for migration in available_migrations(backend_name)]


SHARED = ["0003_registry.sql", "0004_api.sql", "0005_geo.sql", "0006_access.sql"]


@pytest.mark.parametrize("name", ["postgres", "timescaledb"])
def test_each_backend_gets_the_shared_files_and_its_own(name):
    assert expected_files(name) == [
        "0001_core.sql",
        f"0002_observations.{name}.sql",
        *SHARED,
        f"0007_rollups.{name}.sql",
        "0008_entity_type_order.sql",
        "0009_subscriptions.sql",
        "0010_notifications.sql",
        "0011_alerts.sql",
        "0012_mqtt_credentials.sql",
        "0013_device_health.sql",
        "0014_feed_state.sql",
        "0015_roadwork_versions.sql",
        f"0016_daily_rollups.{name}.sql",
        "0017_subscription_types.sql",
        "0018_change_capture_fast_path.sql",
        *(["0019_hour_packs.postgres.sql"] if name == "postgres" else []),
    ]


def test_fresh_migrate_applies_every_file_once_in_order(fresh_database_url, backend_name):
    with connect(fresh_database_url) as conn:
        backend = detect_backend(conn, backend_name)
        applied = migrate(conn, backend)
        recorded = conn.execute(
            "SELECT filename FROM stadspuls_schema_migrations ORDER BY version"
        ).fetchall()
        missing = [
            table
            for table in TABLES
            if conn.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,)
        ]
    assert applied == expected_files(backend_name)
    assert [filename for (filename,) in recorded] == applied
    assert missing == []


def test_running_migrate_again_changes_nothing(fresh_database_url, fresh_backend):
    with connect(fresh_database_url) as conn:
        before = conn.execute(
            "SELECT version, applied_at FROM stadspuls_schema_migrations"
        ).fetchall()
        conn.commit()
        assert migrate(conn, fresh_backend) == []
        after = conn.execute(
            "SELECT version, applied_at FROM stadspuls_schema_migrations"
        ).fetchall()
    assert sorted(after) == sorted(before)


def test_two_workers_migrating_at_once_apply_each_file_exactly_once(
    fresh_database_url, backend_name, run_together
):
    with connect(fresh_database_url) as conn:
        backend = detect_backend(conn, backend_name)
    results = run_together(fresh_database_url, 2, lambda conn: migrate(conn, backend))
    assert sorted(results, key=len) == [[], expected_files(backend_name)]


def test_migrating_for_the_other_backend_is_refused(fresh_database_url, fresh_backend):
    other = "timescaledb" if fresh_backend.name == "postgres" else "postgres"
    with connect(fresh_database_url) as conn:
        with pytest.raises(MigrationError, match=f"migrated for .*{fresh_backend.name}"):
            migrate(conn, replace(fresh_backend, name=other))
        with pytest.raises(BackendUnavailable, match=f"migrated for the {fresh_backend.name}"):
            detect_backend(conn, other)
        # auto keeps whatever the database was migrated for.
        assert detect_backend(conn, "auto").name == fresh_backend.name


def test_detect_backend_reports_versions(conn, backend: Backend):
    detected = detect_backend(conn, backend.name)
    assert detected == backend
    assert detected.postgresql_version.startswith("PostgreSQL ")
    prefix = "TimescaleDB " if backend.name == "timescaledb" else "PostgreSQL "
    assert detected.version.startswith(prefix)
    assert detected.has_timescaledb == (backend.name == "timescaledb")


def test_asking_for_timescaledb_where_it_is_missing_says_why(fresh_database_url):
    with connect(fresh_database_url) as conn:
        offered = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        if offered:
            pytest.skip("timescaledb is available here, so asking for it succeeds")
        with pytest.raises(BackendUnavailable, match="pg_available_extensions has no"):
            detect_backend(conn, "timescaledb")
        assert detect_backend(conn, "auto").name == "postgres"


def test_an_unknown_preference_is_refused(conn):
    with pytest.raises(ValueError, match="backend preference must be one of"):
        detect_backend(conn, "mysql")


def test_create_database_if_missing_then_drop():
    url = scratch_database_url("stadspuls_test_create")
    try:
        assert create_database_if_missing(url) is True
        assert create_database_if_missing(url) is False
        with connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() is not None
    finally:
        drop_database(url)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


def test_a_pool_opens_on_entry_and_hands_out_transactional_connections(database_url, backend):
    with make_pool(database_url, min_size=1, max_size=2) as pool, pool.connection() as conn:
        assert conn.autocommit is False
        assert conn.execute("SELECT current_database()").fetchone() is not None
