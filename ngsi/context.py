"""@context resolution: expand the caller's terms and compact IRIs on the way out.

ETSI GS CIM 009, 5.5.7: the core context is always in force and comes last, so its terms
cannot be redefined; terms no context defines expand under the core's `@vocab` (the default
context). The core context (every version's URL, v1.3-v1.9) and the Smart Data Models domain
contexts are bundled and never fetched; other contexts are fetched once, with a timeout, and
cached (clause 5.13 calls them "Cached"); a context the service hosts itself (POSTed to
/jsonldContexts, "Hosted") is read from the database. Context processing is pyld's; the
resulting term table is turned into two dictionaries so that expanding and compacting a name
in a request is a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from cachetools import LRUCache
from pyld import jsonld
from pyld.context_resolver import ContextResolver as PyldContextResolver

from ngsi.errors import ErrorType, NgsiError, bad_request
from ngsi.vocabulary import (
    CORE_CONTEXT_FILE,
    DOMAINS,
    bundled_document,
    domain_context_file,
    is_iri,
)

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
#: Every published core context URL resolves to the bundled v1.8 copy.
CORE_CONTEXT_URLS = frozenset(
    [
        f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld"
        for minor in range(3, 10)
    ]
    + ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]
)
#: Where the Smart Data Models publish their domain contexts; served from the bundled copies.
SDM_CONTEXT_URLS = {
    url: domain_context_file(domain)
    for domain in DOMAINS
    for url in (
        f"https://raw.githubusercontent.com/smart-data-models/dataModel.{domain}/master/context.jsonld",
        f"https://smart-data-models.github.io/dataModel.{domain}/context.jsonld",
    )
}
MAX_CONTEXT_URLS = 16
MAX_CACHED_DOCUMENTS = 128
MAX_CONTEXT_BYTES = 1024 * 1024

#: Loads a context document the service hosts, by URL; None when it hosts no such context.
HostedLoader = Callable[[str], Awaitable[dict[str, Any] | None]]


def bundled(url: str) -> dict[str, Any] | None:
    """The bundled document behind `url`, if the service carries one."""
    if url in CORE_CONTEXT_URLS:
        return bundled_document(CORE_CONTEXT_FILE)
    file_name = SDM_CONTEXT_URLS.get(url)
    return bundled_document(file_name) if file_name else None


class ActiveContext:
    """The caller's context with the core context last: term ↔ IRI lookups, memoized."""

    def __init__(self, source: Any, mappings: dict[str, dict[str, Any]], vocab: str) -> None:
        #: The context as the caller gave it (a URL, an object, or a list); None for core only.
        self.source = source
        self._vocab = vocab
        self._expanded: dict[str, str] = {
            term: definition["@id"]
            for term, definition in mappings.items()
            if definition and isinstance(definition.get("@id"), str)
        }
        self._prefixes = sorted(
            (
                (iri, term)
                for term, iri in self._expanded.items()
                if mappings[term].get("_prefix") and iri[-1:] in "/#:"
            ),
            key=lambda pair: -len(pair[0]),
        )
        inverse: dict[str, str] = {}
        # The shortest term wins, then the first in alphabetical order (JSON-LD 1.1, 6.2).
        for term, iri in sorted(self._expanded.items(), key=lambda item: (len(item[0]), item[0])):
            if not term.startswith("@") and ":" not in term:
                inverse.setdefault(iri, term)
        self._compacted = inverse
        self._expand_memo: dict[str, str] = {}
        self._compact_memo: dict[str, str] = {}

    @property
    def link_url(self) -> str:
        """The URL to send in a response's Link header for this context."""
        if isinstance(self.source, str):
            return self.source
        return CORE_CONTEXT_URL

    def expand(self, term: str) -> str:
        """The IRI of an attribute name or entity type as the caller wrote it."""
        iri = self._expand_memo.get(term)
        if iri is None:
            iri = self._expand_memo[term] = self._expand(term)
        return iri

    def _expand(self, term: str) -> str:
        iri = self._expanded.get(term)
        if iri is not None:
            return iri
        prefix, colon, suffix = term.partition(":")
        if colon and not suffix.startswith("//") and prefix in self._expanded:
            return self._expanded[prefix] + suffix
        if is_iri(term) or colon:
            return term
        return self._vocab + term

    def compact(self, iri: str) -> str:
        """The caller's name for an IRI: its term, a compact IRI, or the IRI itself."""
        term = self._compact_memo.get(iri)
        if term is None:
            term = self._compact_memo[iri] = self._compact(iri)
        return term

    def _compact(self, iri: str) -> str:
        term = self._compacted.get(iri)
        if term is not None:
            return term
        if iri.startswith(self._vocab):
            suffix = iri[len(self._vocab) :]
            if suffix and self._expand(suffix) == iri:
                return suffix
        for prefix_iri, prefix in self._prefixes:
            if iri.startswith(prefix_iri) and len(iri) > len(prefix_iri):
                return f"{prefix}:{iri[len(prefix_iri) :]}"
        return iri


def context_urls(local: Any) -> list[str]:
    """The URLs a local context refers to at its top level."""
    items = local if isinstance(local, list) else [local]
    return [item for item in items if isinstance(item, str)]


class ContextResolver:
    """Resolves callers' contexts to ActiveContexts; caches documents and results."""

    def __init__(
        self,
        fetch_timeout: float = 5.0,
        hosted: HostedLoader | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_size: int = 256,
        document_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = fetch_timeout
        self._hosted = hosted
        self._transport = transport
        # Fetched documents (kind Cached) with when they were fetched: refetched after
        # `document_seconds` (clause 5.13.1: cached contexts are invalidated periodically),
        # least recently used dropped beyond MAX_CACHED_DOCUMENTS.
        self._documents: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._document_seconds = document_seconds
        self._clock = clock
        self._active: OrderedDict[bytes, ActiveContext] = OrderedDict()
        self._cache_size = cache_size
        self._fetch_locks: dict[str, asyncio.Lock] = {}
        self.core = self._process(None)

    @property
    def cached_urls(self) -> list[str]:
        """URLs of the fetched contexts held in memory (kind Cached)."""
        return sorted(self._documents)

    def forget(self, url: str | None = None) -> None:
        """Drop a cached document (all, without `url`) and every context built on it."""
        if url is None:
            self._documents.clear()
        else:
            self._documents.pop(url, None)
        self._active.clear()

    async def resolve(self, local: Any) -> ActiveContext:
        """The active context for `local` (None: the core context alone)."""
        if local is None or local == [] or (isinstance(local, str) and local in CORE_CONTEXT_URLS):
            return self.core
        key = orjson.dumps(local, option=orjson.OPT_SORT_KEYS)
        active = self._active.get(key)
        if active is not None:
            self._active.move_to_end(key)
            return active
        documents = await self._load_all(local)
        active = self._process(local, documents)
        self._active[key] = active
        if len(self._active) > self._cache_size:
            self._active.popitem(last=False)
        return active

    async def document(self, url: str) -> dict[str, Any]:
        """The document behind a context URL: bundled, hosted, cached or fetched."""
        found = bundled(url) or self._cached(url)
        if found is not None:
            return found
        if self._hosted is not None:
            hosted = await self._hosted(url)
            if hosted is not None:
                return hosted
        lock = self._fetch_locks.setdefault(url, asyncio.Lock())
        async with lock:  # one fetch per URL, however many requests wait for it
            found = self._cached(url)
            if found is None:
                found = await self._fetch(url)
                self.replace(url, found)
        self._fetch_locks.pop(url, None)
        return found

    def _cached(self, url: str) -> dict[str, Any] | None:
        entry = self._documents.get(url)
        if entry is None:
            return None
        if self._clock() - entry[0] > self._document_seconds:
            del self._documents[url]
            self._active.clear()  # contexts built on the stale copy go too
            return None
        self._documents.move_to_end(url)
        return entry[1]

    def replace(self, url: str, document: dict[str, Any]) -> None:
        """Hold `document` as the cached copy of `url` (after a fetch or a reload)."""
        self._documents[url] = (self._clock(), document)
        self._documents.move_to_end(url)
        while len(self._documents) > MAX_CACHED_DOCUMENTS:
            self._documents.popitem(last=False)
        self._active.clear()

    async def _load_all(self, local: Any) -> dict[str, dict[str, Any]]:
        """Every document `local` needs, following nested context URLs."""
        documents: dict[str, dict[str, Any]] = {}
        pending = context_urls(local) + _nested_urls(local)
        while pending:
            url = pending.pop()
            if url in documents:
                continue
            if len(documents) >= MAX_CONTEXT_URLS:
                raise bad_request(f"the @context refers to more than {MAX_CONTEXT_URLS} URLs")
            documents[url] = document = await self.document(url)
            pending.extend(_nested_urls(document.get("@context")))
        return documents

    async def _fetch(self, url: str) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise NgsiError(
                ErrorType.LD_CONTEXT_NOT_AVAILABLE, f"@context {url!r} is not an http(s) URL"
            )
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport, follow_redirects=True
            ) as client:
                accept = {"Accept": "application/ld+json"}
                async with client.stream("GET", url, headers=accept) as response:
                    response.raise_for_status()
                    content = bytearray()
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) > MAX_CONTEXT_BYTES:  # stop reading, don't buffer it all
                            raise ValueError(f"larger than {MAX_CONTEXT_BYTES} bytes")
                document = orjson.loads(content)
        except (httpx.HTTPError, ValueError) as error:
            raise NgsiError(
                ErrorType.LD_CONTEXT_NOT_AVAILABLE,
                f"@context {url} could not be retrieved: {error or type(error).__name__}",
            ) from error
        if not isinstance(document, dict) or "@context" not in document:
            raise NgsiError(
                ErrorType.LD_CONTEXT_NOT_AVAILABLE,
                f"@context {url} is not a JSON-LD context document (no @context member)",
            )
        return document

    def _process(
        self, local: Any, documents: dict[str, dict[str, Any]] | None = None
    ) -> ActiveContext:
        """Run JSON-LD context processing (pyld) on `local` followed by the core context."""
        available = {CORE_CONTEXT_URL: bundled_document(CORE_CONTEXT_FILE), **(documents or {})}

        def loader(url: str, options: Any = None) -> dict[str, Any]:
            document = available.get(url) or bundled(url)
            if document is None:  # every URL was loaded beforehand; pyld found another
                raise jsonld.JsonLdError(f"context {url} not loaded", "loading document failed")
            return {"contextUrl": None, "documentUrl": url, "document": document}

        items = [] if local is None else (local if isinstance(local, list) else [local])
        options = {
            "documentLoader": loader,
            "contextResolver": PyldContextResolver(LRUCache(maxsize=64), loader),
        }
        processor = jsonld.JsonLdProcessor()
        try:
            active = processor.process_context(
                processor._get_initial_context(options), [*items, CORE_CONTEXT_URL], options
            )
        except jsonld.JsonLdError as error:
            raise bad_request(f"invalid @context: {_jsonld_reason(error)}") from error
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:
            raise bad_request(f"invalid @context: {error}") from error
        return ActiveContext(local, active.get("mappings", {}), active.get("@vocab", ""))


def _nested_urls(local: Any) -> list[str]:
    """URLs inside a context (including inside inline objects' @import)."""
    urls = context_urls(local)
    items = local if isinstance(local, list) else [local]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("@import"), str):
            urls.append(item["@import"])
    return urls


def _jsonld_reason(error: Exception) -> str:
    code = getattr(error, "code", None)
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{code}: {message}" if code else message
