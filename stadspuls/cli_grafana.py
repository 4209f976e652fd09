"""`stadspuls grafana`: create the data source and dashboards in a Grafana, export the files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer
from grafana_client.client import GrafanaException
from niquests.exceptions import RequestException
from rich.console import Console

from .grafana import (
    DASHBOARD_DIRECTORY,
    FOLDER_TITLE,
    DatabaseFacts,
    connect_grafana,
    export_dashboards,
    probe_database,
    sync,
)
from .settings import Settings

grafana_app = typer.Typer(help="Grafana data source and dashboards.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _facts(database_url: str, timescaledb: bool | None) -> DatabaseFacts:
    """What the database says about itself; without an answer, what the options say."""
    try:
        facts = probe_database(database_url)
    except psycopg.Error as error:
        # Grafana may reach the database where this machine cannot: carry on with defaults.
        errors.print(f"[yellow]could not ask the database ({error}); assuming plain PostgreSQL")
        facts = DatabaseFacts()
    if timescaledb is not None:
        facts = DatabaseFacts(timescaledb=timescaledb, postgres_version=facts.postgres_version)
    return facts


@grafana_app.command("sync")
def sync_command(
    url: str = typer.Option(..., help="Grafana's base URL, e.g. http://127.0.0.1:3000."),
    token: str = typer.Option(
        ..., envvar="GRAFANA_TOKEN", help="A Grafana service-account token (Admin or Editor)."
    ),
    database_url: str | None = typer.Option(
        None,
        help="The database as Grafana reaches it; STADSPULS_DATABASE_URL if omitted.",
    ),
    folder: str = typer.Option(FOLDER_TITLE, help="Title of the folder for the dashboards."),
    timescaledb: bool | None = typer.Option(
        None,
        "--timescaledb/--no-timescaledb",
        help="Use TimescaleDB's time_bucket in the panels; asked of the database if omitted.",
    ),
) -> None:
    """Create or update the PostgreSQL data source, the folder and the Stadspuls dashboards."""
    target_database = database_url or Settings().database_url
    facts = _facts(target_database, timescaledb)
    api = connect_grafana(url, token)
    try:
        report = sync(api, target_database, facts, folder_title=folder)
    except (GrafanaException, RequestException) as error:
        errors.print(f"[red]Grafana at {url} refused or failed: {error}")
        raise typer.Exit(1) from None
    verb = "created" if report.datasource_created else "updated"
    console.print(f"data source {report.datasource_uid}: {verb}")
    console.print(f"folder {folder}: {'created' if report.folder_created else 'exists'}")
    for uid in report.dashboards:
        console.print(f"dashboard {uid}: uploaded")


@grafana_app.command("export")
def export_command(
    directory: Annotated[
        Path, typer.Option(help="The dashboard JSON files.")
    ] = DASHBOARD_DIRECTORY,
) -> None:
    """Rewrite the dashboard files with the current air-quality limits (for provisioning)."""
    for path in export_dashboards(directory):
        console.print(f"wrote {path}")
