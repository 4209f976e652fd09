"""`stadspuls feeds ...`: importers and file exports of the route-planner feeds."""

from __future__ import annotations

import typer

from feeds.cli_gipod import import_gipod
from feeds.cli_wzdx import export_waze, export_wzdx
from feeds.datex2_export import export_datex2

feeds_app = typer.Typer(help="Feeds for route planners (docs/feeds-*.md).", no_args_is_help=True)
feeds_app.command("import-gipod")(import_gipod)
feeds_app.command("export-datex2")(export_datex2)
feeds_app.command("export-wzdx")(export_wzdx)
feeds_app.command("export-waze")(export_waze)
