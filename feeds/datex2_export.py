"""The three DATEX II documents of a tenant, read from storage: for the HTTP routes
(feeds/routes_datex.py) and for `stadspuls feeds export-datex2 OUT_DIR` (files).

Each document has a revision (feeds/http.py) from the entities it is made of, and its
publicationTime is the newest change of those entities: the same revision gives the same
bytes, so the ETag is a strong one. (An empty situation feed has no change time and says now.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from feeds.datex2 import (
    DEFAULT_PUBLISHER,
    EmptyPublication,
    Publisher,
    measured_data_publication,
    measurement_site_table_publication,
    situation_publication,
)
from feeds.http import Revision
from storage.roadwork_store import load_roadworks, roadworks_revision
from storage.traffic_state_store import load_traffic_state, traffic_state_revision

__all__ = ["FEEDS", "DatexFeed", "EmptyPublication", "export_datex2", "write_datex2"]


@dataclass(frozen=True)
class DatexFeed:
    """One DATEX II document: its name (URL path segment), file and how to make it."""

    name: str
    file_name: str
    counts: Callable[[psycopg.Connection, str], tuple[int, datetime | None]]
    render: Callable[[psycopg.Connection, str, datetime, Publisher], bytes]

    def revision(self, conn: psycopg.Connection, tenant: str) -> Revision:
        """What identifies the document's current content."""
        count, modified_at = self.counts(conn, tenant)
        stamp = modified_at.isoformat() if modified_at else "-"
        return Revision(f"datex2:{self.name}:{tenant}:{count}:{stamp}", modified_at)

    def document(
        self,
        conn: psycopg.Connection,
        tenant: str,
        revision: Revision,
        publisher: Publisher = DEFAULT_PUBLISHER,
    ) -> bytes:
        """The document of `revision` (EmptyPublication when there is nothing to publish)."""
        publication_time = revision.modified_at or datetime.now(UTC)
        return self.render(conn, tenant, publication_time, publisher)


def _situations(
    conn: psycopg.Connection, tenant: str, publication_time: datetime, publisher: Publisher
) -> bytes:
    return situation_publication(load_roadworks(conn, tenant), publication_time, publisher)


def _measured_data(
    conn: psycopg.Connection, tenant: str, publication_time: datetime, publisher: Publisher
) -> bytes:
    sites = load_traffic_state(conn, tenant)
    return measured_data_publication(sites, publication_time, publisher)


def _measurement_sites(
    conn: psycopg.Connection, tenant: str, publication_time: datetime, publisher: Publisher
) -> bytes:
    sites = load_traffic_state(conn, tenant)
    return measurement_site_table_publication(sites, publication_time, publisher)


SITUATIONS = DatexFeed("situations", "situations.xml", roadworks_revision, _situations)
MEASURED_DATA = DatexFeed(
    "measured-data", "measured-data.xml", traffic_state_revision, _measured_data
)
MEASUREMENT_SITES = DatexFeed(
    "measurement-sites", "measurement-sites.xml", traffic_state_revision, _measurement_sites
)
FEEDS = {feed.name: feed for feed in (SITUATIONS, MEASURED_DATA, MEASUREMENT_SITES)}


def write_datex2(
    conn: psycopg.Connection,
    out_dir: Path,
    tenant: str,
    publisher: Publisher = DEFAULT_PUBLISHER,
) -> tuple[list[Path], dict[str, str]]:
    """Write every DATEX II document of a tenant into `out_dir`: (files written, name →
    why a document was skipped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    for feed in FEEDS.values():
        try:
            document = feed.document(conn, tenant, feed.revision(conn, tenant), publisher)
        except EmptyPublication as error:
            skipped[feed.name] = str(error)
            continue
        path = out_dir / feed.file_name
        # Write next to the target and rename, so a reader never sees half a document.
        partial = path.with_suffix(".xml.partial")
        partial.write_bytes(document)
        partial.replace(path)
        written.append(path)
    return written, skipped


def export_datex2(
    out_dir: Annotated[Path, typer.Argument(help="Directory for the three XML files.")],
    tenant: Annotated[str, typer.Option(help="NGSI-LD tenant ('' is the default).")] = "",
) -> None:
    """Write the DATEX II v3.1 situations, measured data and measurement site table."""
    # Imported here: the composition root imports the feeds, not the other way round.
    from stadspuls.settings import Settings
    from stadspuls.wiring import prepare_database
    from storage.database import connect

    settings = Settings()
    prepare_database(settings)
    with connect(settings.database_url) as conn:
        written, skipped = write_datex2(conn, out_dir, tenant)
    for path in written:
        typer.echo(f"wrote {path}")
    for name, reason in skipped.items():
        typer.echo(f"skipped {name}: {reason}", err=True)
