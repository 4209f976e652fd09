"""The storage backend of a database: TimescaleDB when it can, plain PostgreSQL otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import psycopg

from storage.database import lock_schema_changes

logger = logging.getLogger(__name__)

BackendName = Literal["timescaledb", "postgres"]
Preference = Literal["auto", "timescaledb", "postgres"]
PREFERENCES: tuple[str, ...] = ("auto", "timescaledb", "postgres")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot be used on this database."""


@dataclass(frozen=True, slots=True)
class Backend:
    """The backend chosen at start-up, as reported by `stadspuls status`."""

    name: BackendName
    #: Human-readable version of what stores the data, e.g. "TimescaleDB 2.17.2".
    version: str
    #: The timescaledb extension is installed in this database.
    has_timescaledb: bool
    #: e.g. "PostgreSQL 15.20".
    postgresql_version: str
    #: PostGIS version installed in this database, or installable on the server; None if absent.
    postgis_version: str | None = None
    postgis_installed: bool = False

    @property
    def has_postgis(self) -> bool:
        """PostGIS is installed or can be installed here."""
        return self.postgis_version is not None


@dataclass(frozen=True, slots=True)
class _ExtensionState:
    installed: str | None
    available: str | None


def _extension_state(conn: psycopg.Connection, name: str) -> _ExtensionState:
    row = conn.execute(
        """
        SELECT (SELECT extversion FROM pg_extension WHERE extname = %(name)s),
               (SELECT default_version FROM pg_available_extensions WHERE name = %(name)s)
        """,
        {"name": name},
    ).fetchone()
    assert row is not None
    return _ExtensionState(installed=row[0], available=row[1])


def _recorded_backend(conn: psycopg.Connection) -> BackendName | None:
    """The backend an earlier migration ran for, so a restart never switches schemas."""
    if conn.execute("SELECT to_regclass('stadspuls_schema_migrations')").fetchone() == (None,):
        return None
    row = conn.execute(
        "SELECT backend FROM stadspuls_schema_migrations WHERE backend IS NOT NULL LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def postgresql_version(conn: psycopg.Connection) -> str:
    """The server version as "PostgreSQL <major>.<minor>"."""
    number = conn.info.server_version
    return f"PostgreSQL {number // 10000}.{number % 10000}"


def _absence_text(state: _ExtensionState, server: str) -> str:
    if state.installed or state.available:
        return f"installed {state.installed}, available {state.available} on {server}"
    return f"pg_available_extensions has no 'timescaledb' row on {server}"


def describe_timescaledb_absence(conn: psycopg.Connection) -> str:
    """What pg_available_extensions says about timescaledb, for skip and error messages."""
    return _absence_text(_extension_state(conn, "timescaledb"), postgresql_version(conn))


def _choose(
    preference: str, timescaledb: _ExtensionState, recorded: BackendName | None, server: str
) -> BackendName:
    usable = bool(timescaledb.installed or timescaledb.available)
    if recorded and preference not in ("auto", recorded):
        raise BackendUnavailable(
            f"this database was migrated for the {recorded} backend; "
            f"it cannot be used as {preference}"
        )
    wanted = recorded or (preference if preference != "auto" else None)
    if wanted == "postgres" or not (wanted or usable):
        return "postgres"
    if not usable:
        raise BackendUnavailable(
            f"timescaledb extension not available: {_absence_text(timescaledb, server)}"
        )
    return "timescaledb"


def _create_timescaledb(conn: psycopg.Connection, required: bool) -> bool:
    """CREATE EXTENSION timescaledb; in auto mode a failure falls back to plain PostgreSQL."""
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as error:
        # Typically "extension must be preloaded" (shared_preload_libraries).
        if required:
            raise BackendUnavailable(f"cannot create the timescaledb extension: {error}") from error
        logger.warning(
            "timescaledb is available but cannot be created (%s); using PostgreSQL", error
        )
        return False
    return True


def create_postgis(conn: psycopg.Connection) -> bool:
    """CREATE EXTENSION postgis where the server offers it; False (and a warning) if it can't.

    Geo-queries use PostGIS when the database has it and fall back to Python otherwise.
    """
    state = _extension_state(conn, "postgis")
    if state.installed:
        return True
    if not state.available:
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as error:
        logger.warning("postgis is available but cannot be created (%s)", error)
        return False
    return True


def detect_backend(conn: psycopg.Connection, preference: Preference | str = "auto") -> Backend:
    """Choose the backend for this database (creating the timescaledb extension when chosen)."""
    if preference not in PREFERENCES:
        raise ValueError(f"backend preference must be one of {PREFERENCES}, not {preference!r}")
    with conn.transaction():
        lock_schema_changes(conn)
        timescaledb = _extension_state(conn, "timescaledb")
        recorded = _recorded_backend(conn)
        name = _choose(preference, timescaledb, recorded, postgresql_version(conn))
        if name == "timescaledb" and not timescaledb.installed:
            required = preference == "timescaledb" or recorded == "timescaledb"
            if _create_timescaledb(conn, required):
                timescaledb = _extension_state(conn, "timescaledb")
            else:
                name = "postgres"
        postgis = _extension_state(conn, "postgis")
    server = postgresql_version(conn)
    return Backend(
        name=name,
        version=f"TimescaleDB {timescaledb.installed}" if name == "timescaledb" else server,
        has_timescaledb=timescaledb.installed is not None,
        postgresql_version=server,
        postgis_version=postgis.installed or postgis.available,
        postgis_installed=postgis.installed is not None,
    )
