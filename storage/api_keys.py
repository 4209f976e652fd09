"""API keys and public read per tenant: the `api_keys` and `tenant_access` tables.

A key is shown once, at creation, as `sp_<key_id>_<secret>` (16 and 64 hex digits). Only
SHA-256 of the 32 secret bytes is stored (storage/migrations/0006_access.sql says why that
is enough); the API finds the row by `key_id` and compares digests in constant time.

`KeyCache` keeps what the API read about a key (or a tenant's public read) for a few
seconds, so that a busy API does not spend one query per request on it. The price is that
a revoked key keeps working, in each API process, until its entry expires: at most
`Settings.auth_cache_seconds` after the revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Generic, TypeVar

import psycopg

KEY_PREFIX = "sp"
_KEY = re.compile(r"^sp_(?P<key_id>[0-9a-f]{16})_(?P<secret>[0-9a-f]{64})$")
_SECRET_BYTES = 32

#: last_used_at is written when a verified key's stored value is older than this, so an
#: active key costs one UPDATE a minute or so, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Role(IntEnum):
    """What a principal may do on a tenant; a higher role includes the lower ones."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The stored and displayed name: read, write or admin."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role called `name` (read, write, admin); ValueError for anything else."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: use read, write or admin") from None


ROLE_NAMES = tuple(role.label for role in Role)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as listed: everything but the secret."""

    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the API needs to verify a key: its grant and the digest of its secret."""

    key_id: str
    tenant: str
    role: Role
    secret_sha256: bytes
    revoked: bool
    last_used_at: datetime | None

    def matches(self, secret: bytes) -> bool:
        """True when `secret` is this key's secret (constant-time comparison)."""
        return hmac.compare_digest(self.secret_sha256, secret_digest(secret))


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: `key` is the only time the full key is available."""

    key: str
    info: ApiKeyInfo


def secret_digest(secret: bytes) -> bytes:
    """The stored form of a secret: its SHA-256 digest."""
    return hashlib.sha256(secret).digest()


def format_key(key_id: str, secret: bytes) -> str:
    """The key as handed to its holder: `sp_<key_id>_<secret as hex>`."""
    return f"{KEY_PREFIX}_{key_id}_{secret.hex()}"


def parse_key(text: str) -> tuple[str, bytes]:
    """Split a key into its id and secret bytes; ValueError when it is not of our form."""
    match = _KEY.match(text.strip())
    if not match:
        raise ValueError("an API key reads sp_<16 hex digits>_<64 hex digits>")
    return match["key_id"], bytes.fromhex(match["secret"])


def generate_key() -> tuple[str, bytes]:
    """A fresh key id and 32-byte secret from the operating system's CSPRNG."""
    return secrets.token_hex(8), secrets.token_bytes(_SECRET_BYTES)


_INFO_COLUMNS = "key_id, tenant, role, name, created_at, revoked_at, last_used_at"


def _info(row: tuple) -> ApiKeyInfo:
    key_id, tenant, role, name, created_at, revoked_at, last_used_at = row
    return ApiKeyInfo(key_id, tenant, Role.parse(role), name, created_at, revoked_at, last_used_at)


def create_key(conn: psycopg.Connection, *, tenant: str, role: Role, name: str) -> CreatedKey:
    """Store a new key for `tenant` with `role` and commit; the result holds the full key."""
    key_id, secret = generate_key()
    row = conn.execute(
        "INSERT INTO api_keys (key_id, tenant, role, name, secret_sha256)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_INFO_COLUMNS}",
        [key_id, tenant, role.label, name, secret_digest(secret)],
    ).fetchone()
    conn.commit()
    assert row is not None
    return CreatedKey(format_key(key_id, secret), _info(row))


def revoke_key(conn: psycopg.Connection, key_id: str) -> ApiKeyInfo | None:
    """Revoke a key (keeping the first revocation time) and commit; None if there is none."""
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        f" WHERE key_id = %s RETURNING {_INFO_COLUMNS}",
        [key_id],
    ).fetchone()
    conn.commit()
    return _info(row) if row else None


def list_keys(conn: psycopg.Connection, tenant: str | None = None) -> list[ApiKeyInfo]:
    """The keys of `tenant` (all tenants when None), oldest first; never their secrets."""
    rows = conn.execute(
        f"SELECT {_INFO_COLUMNS} FROM api_keys"
        " WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s"
        " ORDER BY tenant, created_at, key_id",
        {"tenant": tenant},
    ).fetchall()
    return [_info(row) for row in rows]


def set_public_read(conn: psycopg.Connection, tenant: str, public: bool) -> None:
    """Allow (or stop allowing) anonymous reads of `tenant`, and commit."""
    conn.execute(
        "INSERT INTO tenant_access (tenant, public_read) VALUES (%s, %s)"
        " ON CONFLICT (tenant) DO UPDATE"
        " SET public_read = excluded.public_read, modified_at = now()",
        [tenant, public],
    )
    conn.commit()


def get_public_read(conn: psycopg.Connection, tenant: str) -> bool:
    """Whether anonymous reads of `tenant` are switched on in the database."""
    row = conn.execute(
        "SELECT public_read FROM tenant_access WHERE tenant = %s", [tenant]
    ).fetchone()
    return bool(row and row[0])


async def fetch_key(conn: psycopg.AsyncConnection, key_id: str) -> StoredKey | None:
    """The stored key `key_id`, revoked or not; None when there is no such key."""
    cursor = await conn.execute(
        "SELECT key_id, tenant, role, secret_sha256, revoked_at IS NOT NULL, last_used_at"
        " FROM api_keys WHERE key_id = %s",
        [key_id],
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    key_id, tenant, role, digest, revoked, last_used_at = row
    return StoredKey(key_id, tenant, Role.parse(role), bytes(digest), revoked, last_used_at)


async def touch_key(conn: psycopg.AsyncConnection, key: StoredKey, now: datetime) -> None:
    """Record that `key` was used, unless its stored last use is recent enough already."""
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = %s", [key.key_id])


async def fetch_public_read(conn: psycopg.AsyncConnection, tenant: str) -> bool:
    """Whether anonymous reads of `tenant` are switched on in the database."""
    cursor = await conn.execute("SELECT public_read FROM tenant_access WHERE tenant = %s", [tenant])
    row = await cursor.fetchone()
    return bool(row and row[0])


Key = TypeVar("Key")
Value = TypeVar("Value")


class KeyCache(Generic[Key, Value]):
    """A bounded map whose entries expire `seconds` after they were stored.

    Entries all live equally long, so insertion order is expiry order: the oldest entry is
    the one evicted when the cache is full.
    """

    def __init__(
        self,
        seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, Value]] = OrderedDict()

    def get(self, key: Key) -> tuple[bool, Value | None]:
        """(True, value) while an entry for `key` is fresh, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if self.clock() >= entry[0]:
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: Key, value: Value) -> None:
        """Remember `value` for `key` for the cache's lifetime (nothing when that is 0)."""
        if self.seconds <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.seconds, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
