"""Connections: opening one, a pool, and creating or dropping a database by URL."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

#: The maintenance database that always exists; CREATE/DROP DATABASE run from there.
MAINTENANCE_DATABASE = "postgres"


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """Open a connection to `url` in transaction mode (autocommit off)."""
    kwargs.setdefault("autocommit", False)
    return psycopg.connect(url, **kwargs)


def make_pool(url: str, *, min_size: int = 1, max_size: int = 4, **kwargs: Any) -> ConnectionPool:
    """An unopened connection pool for `url`; the caller opens it (`with pool:` or `.open()`)."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": False},
        check=ConnectionPool.check_connection,
        open=False,
        **kwargs,
    )


def database_name(url: str) -> str:
    """The database name a connection URL points at."""
    name = conninfo_to_dict(url).get("dbname")
    if not name:
        raise ValueError(f"the database URL names no database: {url!r}")
    return str(name)


def maintenance_url(url: str) -> str:
    """The same server and credentials as `url`, on the maintenance database."""
    return make_conninfo(url, dbname=MAINTENANCE_DATABASE)


def create_database_if_missing(url: str) -> bool:
    """Create the database `url` names unless it exists; True when this call created it."""
    name = database_name(url)
    with psycopg.connect(maintenance_url(url), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return False
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another process created it between our check and our CREATE.
            return False
    return True


def drop_database(url: str) -> None:
    """Drop the database `url` names, ending its open sessions; a missing database is fine."""
    name = database_name(url)
    with psycopg.connect(maintenance_url(url), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


#: pg_advisory_xact_lock key serialising schema changes (extension creation, migrations)
#: across workers that start together; the bytes spell "Stadspul".
SCHEMA_LOCK_KEY = 0x53746164737075_6C


def lock_schema_changes(conn: psycopg.Connection) -> None:
    """Wait for, and hold until the end of the current transaction, the schema-change lock."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK_KEY])
