"""`stadspuls feeds import-gipod SOURCE`: GIPOD mobility hindrances into CityWork entities.

SOURCE is a local file (.nq, .nt, .ttl, .trig, .jsonld) or the URL of an LDES (a view or any
page of it). An LDES is read page by page, following every `tree:relation` (LDES 1.0 / TREE),
and each page is committed with the state that says where the import stopped (`feed_state`):
the newest `prov:generatedAtTime` applied and the page that held it. A re-run starts from that
page (the growing end of a time-ordered stream) and skips relations that can only lead to
older members, so it fetches only what came after; a member at or before the newest time seen
is not written again, and per hindrance an older version never replaces a newer one
(feeds/gipod_store.py). docs/gipod.md describes the whole flow.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import httpx
import psycopg

from feeds.gipod import (
    HindranceVersion,
    Relation,
    hindrance_versions,
    media_type_parser,
    parse_graph,
    parser_of_name,
    relations,
)
from feeds.gipod_store import apply_version, load_feed_state, save_feed_state

logger = logging.getLogger(__name__)

#: What an LDES server is asked for: N-Quads first (no @context to resolve, streams well).
ACCEPT = (
    "application/n-quads, text/turtle;q=0.9, application/trig;q=0.8,"
    " application/ld+json;q=0.7, application/n-triples;q=0.6"
)
#: Relations whose members all come before the relation's value (TREE 1.0 §5).
OLDER_ONLY = ("LessThanRelation", "LessThanOrEqualToRelation")
DEFAULT_MAX_PAGES = 10_000
HTTP_TIMEOUT_SECONDS = 30.0


class SourceError(RuntimeError):
    """The source cannot be read (missing file, unknown format, HTTP failure)."""


@dataclass
class ImportReport:
    """What one import did."""

    pages: int = 0
    members: int = 0
    created: int = 0
    updated: int = 0
    #: Members no newer than what is stored (re-delivered, or superseded in the same page).
    unchanged: int = 0
    #: Members older than the stored version of their hindrance.
    older: int = 0
    problems: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"{self.pages} page(s), {self.members} member(s): {self.created} created,"
            f" {self.updated} updated, {self.unchanged} unchanged, {self.older} older ignored,"
            f" {len(self.problems)} problem(s)"
        )


def state_name(source: str, tenant: str) -> str:
    """The feed_state key of an import: importer, tenant and source."""
    return f"gipod:{tenant}:{source}"


def is_url(source: str) -> bool:
    """Whether SOURCE is an http(s) URL rather than a file."""
    return source.startswith(("http://", "https://"))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _sniffed_parser(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "json-ld"
    if stripped.startswith(("@prefix", "@base", "PREFIX", "BASE")):
        return "turtle"
    return "nquads"


class _Run:
    """One import: applies pages and keeps the resume state."""

    def __init__(self, conn: psycopg.Connection, tenant: str, name: str) -> None:
        self.conn = conn
        self.tenant = tenant
        self.name = name
        self.state = load_feed_state(conn, name)
        self.last_seen = _parse_time(self.state.get("last_generated_at"))
        self.report = ImportReport()

    def apply_page(self, url: str, versions: list[HindranceVersion], problems: list[str]) -> None:
        """Write a page's new members, then the state that says the page is done."""
        self.report.pages += 1
        self.report.members += len(versions)
        self.report.problems.extend(f"{url}: {problem}" for problem in problems)
        fresh = [v for v in versions if self.last_seen is None or v.generated_at >= self.last_seen]
        self.report.unchanged += len(versions) - len(fresh)
        newest: dict[str, HindranceVersion] = {}
        for version in fresh:  # generatedAtTime order: the last one per hindrance wins
            if version.roadwork.id in newest:
                self.report.unchanged += 1
            newest[version.roadwork.id] = version
        for entity_id in sorted(newest):
            outcome = apply_version(self.conn, self.tenant, newest[entity_id])
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            # One hindrance per transaction: its two rows are the only ones locked at a time,
            # and a page cut short is simply applied again (each write is idempotent).
            self.conn.commit()
        if versions:
            page_newest = versions[-1].generated_at
            if self.last_seen is None or page_newest >= self.last_seen:
                self.last_seen = page_newest
                self.state["resume_page"] = url
            self.state["last_generated_at"] = self.last_seen.isoformat()  # type: ignore[union-attr]
        save_feed_state(self.conn, self.name, self.state)
        self.conn.commit()

    def leads_to_newer(self, relation: Relation) -> bool:
        """False for a relation whose members are all older than the newest one applied."""
        if relation.kind not in OLDER_ONLY or self.last_seen is None:
            return True
        bound = _parse_time(relation.value)
        return bound is None or bound > self.last_seen


def import_file(conn: psycopg.Connection, path: Path, tenant: str = "") -> ImportReport:
    """Import every hindrance version of one RDF file."""
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error}") from None
    parser = parser_of_name(path.name) or _sniffed_parser(text)
    run = _Run(conn, tenant, state_name(str(path.resolve()), tenant))
    versions, problems = hindrance_versions(parse_graph(text, parser, path.resolve().as_uri()))
    run.apply_page(str(path), versions, problems)
    return run.report


def _fetch(client: httpx.Client, url: str) -> tuple[str, str, str]:
    """The text, rdflib parser and final URL (after redirects) of one page."""
    try:
        response = client.get(url, headers={"Accept": ACCEPT})
    except httpx.HTTPError as error:
        raise SourceError(f"cannot fetch {url}: {error}") from None
    if response.status_code >= 400:
        raise SourceError(f"{url} answered HTTP {response.status_code}")
    final = str(response.url)
    media_type = response.headers.get("content-type", "")
    parser = media_type_parser(media_type) or parser_of_name(final)
    if parser is None:
        parser = _sniffed_parser(response.text)
    return response.text, parser, final


def import_ldes(
    conn: psycopg.Connection,
    url: str,
    tenant: str = "",
    *,
    client: httpx.Client | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> ImportReport:
    """Import the members an LDES published since the last import from it."""
    run = _Run(conn, tenant, state_name(url, tenant))
    owned = client is None
    client = client or httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=True)
    start = str(run.state.get("resume_page") or url)
    queue, queued = deque([start]), {start}
    try:
        while queue and run.report.pages < max_pages:
            page = queue.popleft()
            try:
                text, parser, final = _fetch(client, page)
            except SourceError:
                if page == url:
                    raise
                # The resume page may have gone (a retention policy): start at the view.
                logger.warning("page %s is gone; starting again from %s", page, url)
                if url not in queued:
                    queue.append(url)
                    queued.add(url)
                continue
            run.report.fetched.append(page)
            graph = parse_graph(text, parser, final)
            versions, problems = hindrance_versions(graph)
            run.apply_page(page, versions, problems)
            for relation in relations(graph):
                target = urljoin(final, relation.node)
                if target not in queued and run.leads_to_newer(relation):
                    queue.append(target)
                    queued.add(target)
        if queue:
            logger.warning("stopped after %d pages; the next import continues", max_pages)
    finally:
        if owned:
            client.close()
    return run.report


def import_source(conn: psycopg.Connection, source: str, tenant: str = "") -> ImportReport:
    """Import from a file path or an LDES URL."""
    if is_url(source):
        return import_ldes(conn, source, tenant)
    return import_file(conn, Path(source), tenant)
