"""Numbered SQL migrations, applied once each, shared files plus backend-specific ones.

Files in storage/migrations are named `NNNN_name.sql` (every backend) or
`NNNN_name.<backend>.sql` (only that backend). Each version is recorded in
`stadspuls_schema_migrations`; all pending versions run in one transaction under the
schema-change advisory lock, so two workers starting together never race.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from storage.backend import Backend
from storage.database import lock_schema_changes

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("postgres", "timescaledb")
_FILENAME = re.compile(r"^(?P<number>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<backend>[a-z]+))?\.sql$")

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS stadspuls_schema_migrations (
    version    text        PRIMARY KEY,
    filename   text        NOT NULL,
    backend    text,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the recorded schema do not fit the chosen backend."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: `version` is `NNNN_name`, `backend` None for a shared file."""

    version: str
    filename: str
    backend: str | None
    sql: str


def _parse(filename: str, text: str) -> Migration:
    match = _FILENAME.match(filename)
    if not match:
        raise MigrationError(
            f"migration file name not of the form NNNN_name[.backend].sql: {filename}"
        )
    backend = match["backend"]
    if backend is not None and backend not in BACKEND_NAMES:
        raise MigrationError(f"unknown backend {backend!r} in migration file name {filename}")
    return Migration(f"{match['number']}_{match['name']}", filename, backend, text)


def available_migrations(backend_name: str) -> list[Migration]:
    """The migrations that apply to `backend_name`, in order."""
    directory = resources.files("storage").joinpath("migrations")
    found = [
        _parse(entry.name, entry.read_text(encoding="utf-8"))
        for entry in directory.iterdir()
        if entry.name.endswith(".sql")
    ]
    chosen = sorted(
        (m for m in found if m.backend in (None, backend_name)), key=lambda m: m.version
    )
    numbers = [m.version[:4] for m in chosen]
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicated:
        raise MigrationError(f"migration numbers used twice for {backend_name}: {duplicated}")
    return chosen


def applied_migrations(conn: psycopg.Connection) -> dict[str, str | None]:
    """Recorded versions and the backend each backend-specific one ran for."""
    rows = conn.execute("SELECT version, backend FROM stadspuls_schema_migrations").fetchall()
    return dict(rows)


def migrate(conn: psycopg.Connection, backend: Backend) -> list[str]:
    """Apply the pending migrations for `backend` and commit; returns the files applied."""
    pending = available_migrations(backend.name)
    with conn.transaction():
        lock_schema_changes(conn)
        conn.execute(_CREATE_MIGRATIONS_TABLE)
        applied = applied_migrations(conn)
        foreign = sorted({b for b in applied.values() if b and b != backend.name})
        if foreign:
            raise MigrationError(
                f"this database was migrated for {foreign}, not for {backend.name}"
            )
        done: list[str] = []
        for migration in pending:
            if migration.version in applied:
                continue
            logger.info("applying migration %s", migration.filename)
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO stadspuls_schema_migrations (version, filename, backend)"
                " VALUES (%s, %s, %s)",
                [migration.version, migration.filename, migration.backend],
            )
            done.append(migration.filename)
    return done
