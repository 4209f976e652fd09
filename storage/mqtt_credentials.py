"""MQTT logins of devices and services: the `mqtt_credentials` table.

A password is generated here, handed to the caller once and never stored: only its hash,
in Mosquitto's `$7$` form (devices.mqtt_acl), so that `broker_users` can produce the
broker's password and ACL files again at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from devices.mqtt_acl import (
    SERVICE_READ_TOPICS,
    MqttUser,
    check_username,
    device_username,
    generate_password,
    hash_password,
)
from devices.topics import device_topics


class CredentialError(ValueError):
    """A login that cannot be issued, rotated or found; the message says why."""


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A login as listed: everything but the password hash."""

    username: str
    kind: str
    tenant: str
    profile: str | None
    device_key: str | None
    created_at: datetime
    rotated_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """A new or rotated login: `password` is the only time the password is available."""

    username: str
    password: str
    info: CredentialInfo


_INFO_COLUMNS = "username, kind, tenant, profile, device_key, created_at, rotated_at"


def issue_device_credentials(
    conn: psycopg.Connection, profile: str, device_key: str, rotate: bool = False
) -> IssuedCredentials:
    """A login for a registered device (a new password with `rotate`), committed."""
    # Fails early (ValueError) for a key whose topics could not be written into an ACL.
    device_topics(profile, device_key)
    username = device_username(profile, device_key)
    row = conn.execute(
        "SELECT tenant FROM devices WHERE profile = %s AND device_key = %s", [profile, device_key]
    ).fetchone()
    if row is None:
        conn.rollback()
        raise CredentialError(
            f"no registered {profile} device with key {device_key!r}: register it first"
            " (stadspuls devices import)"
        )
    return _store(conn, username, "device", row[0], profile, device_key, rotate)


def issue_service_credentials(
    conn: psycopg.Connection, name: str, rotate: bool = False
) -> IssuedCredentials:
    """A login that reads every topic (the ingest workers), committed."""
    if "/" in check_username(name):
        # Device logins are `{profile}/{key}`: a service name without "/" never collides.
        raise CredentialError(f"a service username holds no '/': {name!r}")
    return _store(conn, name, "service", "", None, None, rotate)


def revoke_credentials(conn: psycopg.Connection, username: str) -> CredentialInfo | None:
    """Delete a login and commit; None when there is none. Export again to take effect."""
    row = conn.execute(
        f"DELETE FROM mqtt_credentials WHERE username = %s RETURNING {_INFO_COLUMNS}",
        [username],
    ).fetchone()
    conn.commit()
    return CredentialInfo(*row) if row else None


def list_credentials(conn: psycopg.Connection) -> list[CredentialInfo]:
    """Every login, services first, then devices by username; never the hashes."""
    rows = conn.execute(
        f"SELECT {_INFO_COLUMNS} FROM mqtt_credentials ORDER BY kind DESC, username"
    ).fetchall()
    return [CredentialInfo(*row) for row in rows]


def broker_users(conn: psycopg.Connection) -> list[MqttUser]:
    """Every login with its hash and grants, for the password file and the ACL."""
    rows = conn.execute(
        "SELECT username, kind, profile, device_key, password_hash FROM mqtt_credentials"
        " ORDER BY username"
    ).fetchall()
    users = []
    for username, kind, profile, device_key, password_hash in rows:
        if kind == "device":
            topics = device_topics(profile, device_key)
            users.append(MqttUser(username, password_hash, write_topics=topics))
        else:
            users.append(MqttUser(username, password_hash, read_topics=SERVICE_READ_TOPICS))
    return users


def _store(
    conn: psycopg.Connection,
    username: str,
    kind: str,
    tenant: str,
    profile: str | None,
    device_key: str | None,
    rotate: bool,
) -> IssuedCredentials:
    """Insert a login, or with `rotate` replace the hash of an existing one; commit."""
    password = generate_password()
    password_hash = hash_password(password)
    if rotate:
        row = conn.execute(
            "UPDATE mqtt_credentials SET password_hash = %s, rotated_at = now()"
            f" WHERE username = %s AND kind = %s RETURNING {_INFO_COLUMNS}",
            [password_hash, username, kind],
        ).fetchone()
        problem = f"{username!r} has no credentials to rotate: issue them without --rotate"
    else:
        row = conn.execute(
            "INSERT INTO mqtt_credentials"
            " (username, kind, tenant, profile, device_key, password_hash)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING"
            f" RETURNING {_INFO_COLUMNS}",
            [username, kind, tenant, profile, device_key, password_hash],
        ).fetchone()
        problem = (
            f"{username!r} has credentials already; their password cannot be shown again:"
            " use --rotate for a new one"
        )
    conn.commit()
    if row is None:
        raise CredentialError(problem)
    return IssuedCredentials(username, password, CredentialInfo(*row))
