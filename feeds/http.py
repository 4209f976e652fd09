"""HTTP caching of the feeds: ETag, Last-Modified and conditional GET (RFC 9110 §13, 9111).

A feed answer is built from a `Revision` (something that changes whenever the feed would:
a count and the newest modification time); a client that already holds that revision gets
304 Not Modified without the feed being rendered again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response


@dataclass(frozen=True, slots=True)
class Revision:
    """What identifies one state of a feed."""

    #: Any text that changes when the content does (counts, ids, times, the format).
    key: str
    #: The newest modification of anything in the feed, if known.
    modified_at: datetime | None

    @property
    def etag(self) -> str:
        """A strong entity tag derived from the key."""
        return '"' + hashlib.sha256(self.key.encode()).hexdigest()[:32] + '"'

    def last_modified(self) -> str | None:
        """The Last-Modified header value (HTTP date, whole seconds)."""
        if self.modified_at is None:
            return None
        return format_datetime(self.modified_at.astimezone(UTC).replace(microsecond=0), usegmt=True)


def caching_headers(revision: Revision, max_age: int) -> dict[str, str]:
    """ETag, Last-Modified and Cache-Control for an answer of `revision`."""
    headers = {"ETag": revision.etag, "Cache-Control": f"public, max-age={max_age}"}
    if (last_modified := revision.last_modified()) is not None:
        headers["Last-Modified"] = last_modified
    return headers


def not_modified(request: Request, revision: Revision, max_age: int) -> Response | None:
    """A 304 answer when the request's validators match `revision`, else None.

    If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    """
    headers = caching_headers(revision, max_age)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if "*" in tags or revision.etag in tags:
            return Response(status_code=304, headers=headers)
        return None
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since and revision.modified_at is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return None
        if since.tzinfo is not None and revision.modified_at.replace(microsecond=0) <= since:
            return Response(status_code=304, headers=headers)
    return None


def cached_answer(
    request: Request,
    revision: Revision,
    max_age: int,
    render: Callable[[], tuple[bytes, str]],
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """304 when the client holds `revision`, else the body and media type `render` makes,
    both with the caching headers (and `extra_headers`, such as Vary)."""
    extra = extra_headers or {}
    answer = not_modified(request, revision, max_age)
    if answer is not None:
        answer.headers.update(extra)
        return answer
    body, media_type = render()
    headers = {**caching_headers(revision, max_age), **extra}
    return Response(body, media_type=media_type, headers=headers)
