"""`stadspuls feeds export-wzdx PATH` and `export-waze PATH`: the feeds written to files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from storage.database import connect
from storage.roadwork_store import load_roadworks, roadworks_revision

from .publication import publication_from_settings
from .waze import waze_feed
from .wzdx import feed_update_date, wzdx_feed

PATH = Annotated[Path, typer.Argument(help="The file to write (replaced if it exists).")]
TENANT = Annotated[str, typer.Option("--tenant", help="The tenant (NGSILD-Tenant); default: none.")]


def _settings():  # type: ignore[no-untyped-def]
    # Imported here: the composition root depends on feeds, not the other way round.
    from stadspuls.settings import Settings
    from stadspuls.wiring import prepare_database

    settings = Settings()
    prepare_database(settings)
    return settings


def _write(path: Path, document: object) -> None:
    """Write through a temporary file, so a reader never sees half a feed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    temporary.replace(path)


def export_wzdx(path: PATH, tenant: TENANT = "") -> None:
    """Write the tenant's roadworks as a WZDx 4.2 WorkZoneFeed (GeoJSON)."""
    settings = _settings()
    with connect(settings.database_url) as conn:
        roadworks = load_roadworks(conn, tenant)
        _, modified = roadworks_revision(conn, tenant)
    update_date = modified or feed_update_date(roadworks, datetime.now(UTC))
    _write(path, wzdx_feed(roadworks, publication_from_settings(settings), update_date))
    typer.echo(f"wrote {path}")


def export_waze(path: PATH, tenant: TENANT = "") -> None:
    """Write the tenant's road closures as a Waze CIFS feed (JSON)."""
    settings = _settings()
    with connect(settings.database_url) as conn:
        roadworks = load_roadworks(conn, tenant)
    _write(path, waze_feed(roadworks))
    typer.echo(f"wrote {path}")
