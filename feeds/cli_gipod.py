"""`stadspuls feeds import-gipod SOURCE`: import GIPOD mobility hindrances (docs/gipod.md)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from feeds.gipod import GipodError
from feeds.gipod_import import SourceError, import_source
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import connect

console = Console()


def import_gipod(
    source: Annotated[str, typer.Argument(help="An RDF file (.nq/.ttl/.jsonld) or an LDES URL.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant (NGSILD-Tenant).")] = "",
) -> None:
    """Import GIPOD mobility hindrances as CityWork entities and roadwork Alerts.

    Incremental: a re-run reads only what the source published since the last run.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    prepare_database(settings)
    try:
        with connect(settings.database_url) as conn:
            report = import_source(conn, source, tenant)
    except (SourceError, GipodError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    for problem in report.problems:
        console.print(f"[yellow]{problem}[/yellow]")
    console.print(report.summary())
