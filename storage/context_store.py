"""The @contexts the API hosts (table `jsonld_contexts`; ETSI GS CIM 009, clause 5.13).

A context POSTed to /ngsi-ld/v1/jsonldContexts is kind "Hosted": it is stored here under a
generated id and served at `/ngsi-ld/v1/jsonldContexts/{id}`. When a request's @context
refers to such a URL, `hosted_loader` reads it from this table (counting the use) instead of
fetching it over HTTP, whatever host the URL names: an id is a random 128-bit hex string, so
it never matches another server's context by chance.

The same loader keeps, in the app state, a `ContextLog`: when each context URL the resolver had
to fetch was asked for (the resolver asks the loader first, right before it fetches), which is
the createdAt of a "Cached" context.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from psycopg import AsyncConnection

from ngsi.context import CORE_CONTEXT_URL, HostedLoader, bundled
from storage.entity_store import jsonb

#: The local id under which the bundled core context is listed and served.
CORE_CONTEXT_ID = "ngsi-ld-core-context-v1.8"
#: The path of a served context, relative to the API root.
CONTEXT_PATH = "/ngsi-ld/v1/jsonldContexts/"
_HOSTED_PATH = re.compile(r"/ngsi-ld/v1/jsonldContexts/([^/]+)$")
#: Fetched-context URLs whose first fetch time is remembered (the oldest are forgotten).
MAX_LOGGED_URLS = 1024


@dataclass(frozen=True, slots=True)
class StoredContext:
    """A hosted context: its document ({"@context": ...}) and its usage."""

    id: str
    created_at: datetime
    last_usage: datetime | None
    hits: int
    #: The document; None where a listing left it out.
    body: dict[str, Any] | None = None


@dataclass(slots=True)
class ContextLog:
    """Per-process facts about contexts that are not in the database."""

    #: When the bundled core context came into this process's store.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: URL → when the resolver last had to fetch it (the Cached kind's createdAt).
    fetched: OrderedDict[str, datetime] = field(default_factory=OrderedDict)

    def note_fetch(self, url: str) -> None:
        """Remember that `url` is being fetched now."""
        self.fetched[url] = datetime.now(UTC)
        self.fetched.move_to_end(url)
        while len(self.fetched) > MAX_LOGGED_URLS:
            self.fetched.popitem(last=False)


def context_log(state: Any) -> ContextLog:
    """The app's ContextLog, kept in `app.state.context_log` (made on first use)."""
    log: ContextLog | None = getattr(state, "context_log", None)
    if log is None:
        log = ContextLog()
        state.context_log = log
    return log


def new_context_id() -> str:
    """A fresh local id for a hosted context."""
    return uuid.uuid4().hex


def hosted_id(url: str) -> str | None:
    """The local id in a URL whose path ends in /ngsi-ld/v1/jsonldContexts/{id}, else None."""
    match = _HOSTED_PATH.search(urlsplit(url).path)
    return unquote(match.group(1)) if match else None


def core_document() -> dict[str, Any]:
    """The bundled core context document."""
    document = bundled(CORE_CONTEXT_URL)
    assert document is not None  # the core context is always bundled
    return document


async def add_context(conn: AsyncConnection[Any], body: dict[str, Any]) -> str:
    """Store a context document as Hosted; its new local id."""
    context_id = new_context_id()
    await conn.execute(
        "INSERT INTO jsonld_contexts (id, body) VALUES (%s, %s)", (context_id, jsonb(body))
    )
    return context_id


async def get_context(conn: AsyncConnection[Any], context_id: str) -> StoredContext | None:
    """A hosted context with its document, or None."""
    cursor = await conn.execute(
        "SELECT id, created_at, last_usage, hits, body FROM jsonld_contexts WHERE id = %s",
        (context_id,),
    )
    row = await cursor.fetchone()
    return StoredContext(*row) if row else None


async def list_contexts(conn: AsyncConnection[Any]) -> list[StoredContext]:
    """Every hosted context, oldest first, without the documents."""
    cursor = await conn.execute(
        "SELECT id, created_at, last_usage, hits FROM jsonld_contexts ORDER BY created_at, id"
    )
    return [StoredContext(*row) for row in await cursor.fetchall()]


async def delete_context(conn: AsyncConnection[Any], context_id: str) -> bool:
    """Remove a hosted context; False when there was none."""
    cursor = await conn.execute("DELETE FROM jsonld_contexts WHERE id = %s", (context_id,))
    return cursor.rowcount > 0


async def use_context(conn: AsyncConnection[Any], context_id: str) -> dict[str, Any] | None:
    """A hosted context's document for a request that uses it (counted), or None."""
    cursor = await conn.execute(
        "UPDATE jsonld_contexts SET hits = hits + 1, last_usage = now() WHERE id = %s"
        " RETURNING body",
        (context_id,),
    )
    row = await cursor.fetchone()
    return row[0] if row else None


def hosted_loader(state: Any) -> HostedLoader:
    """The ContextResolver's loader of hosted contexts; reads `state.pool` when called."""
    log = context_log(state)

    async def load(url: str) -> dict[str, Any] | None:
        context_id = hosted_id(url)
        if context_id == CORE_CONTEXT_ID:
            return core_document()
        pool = getattr(state, "pool", None)
        if context_id is not None and pool is not None:
            async with pool.connection() as conn:
                document = await use_context(conn, context_id)
            if document is not None:
                return document
        log.note_fetch(url)  # the resolver fetches what the loader does not have
        return None

    return load
