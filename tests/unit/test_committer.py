"""Which database errors the committer retries and which it dead-letters."""

from __future__ import annotations

import psycopg
import pytest

from ingest.committer import is_transient


def failure(sqlstate: str | None) -> psycopg.Error:
    """The psycopg exception the server's SQLSTATE maps to (none: a failed connection)."""
    if sqlstate is None:
        return psycopg.OperationalError("connection to server failed")
    return psycopg.errors.lookup(sqlstate)("failure")


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        (None, True),  # the connection failed: no server answer at all
        ("08006", True),  # connection failure
        ("40P01", True),  # deadlock detected
        ("40001", True),  # serialization failure
        ("57P01", True),  # admin shutdown (pg_terminate_backend)
        ("57P03", True),  # cannot connect now (starting up)
        ("53300", True),  # too many connections
        ("54000", False),  # program limit: index row too large
        ("22P02", False),  # invalid text representation
        ("23505", False),  # unique violation outside the handled path
        ("42P01", False),  # undefined table: a bug, not the network
    ],
)
def test_only_connection_and_concurrency_failures_are_retried(sqlstate, transient):
    assert is_transient(failure(sqlstate)) is transient
