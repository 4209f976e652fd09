"""`stadspuls alerts ...`: alert rules from YAML files, listing, events and dry runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from alerts.history import load_history
from alerts.rules import RuleError, dump_rules_yaml, load_rules_yaml, parse_rule, rule_document
from ngsi.errors import NgsiError
from storage.alert_store import delete_rule, list_events, load_rules, reset_states, save_rule
from storage.database import connect

from .wiring import migrated_database_url

alerts_app = typer.Typer(help="Alert rules (docs/alerts.md).", no_args_is_help=True)
console = Console()
TENANT = typer.Option("", "--tenant", help="The tenant (NGSILD-Tenant); default: none.")


@alerts_app.command("import")
def import_rules(path: Path, tenant: str = TENANT) -> None:
    """Create or replace the rules of a YAML file; nothing is written if any rule is invalid."""
    try:
        rules = load_rules_yaml(path.read_text(), tenant)
    except RuleError as error:
        for problem in error.problems:
            console.print(f"[red]{path}: {problem}[/red]")
        raise typer.Exit(1) from None
    with connect(migrated_database_url()) as conn:
        for rule in rules:
            save_rule(conn, tenant, rule.id, rule_document(rule), rule.enabled)
            reset_states(conn, tenant, rule.id)
        conn.commit()
    console.print(f"imported {len(rules)} rules from {path}")


@alerts_app.command("list")
def list_rules(tenant: str = TENANT) -> None:
    """The tenant's rules."""
    with connect(migrated_database_url()) as conn:
        stored = load_rules(conn, tenant)
    table = Table("id", "kind", "name", "enabled", "scope")
    for item in stored:
        rule = parse_rule(item.document, tenant)
        table.add_row(rule.id, rule.kind, rule.name, str(rule.enabled), rule.scope.describe())
    console.print(table)


@alerts_app.command("export")
def export_rules(tenant: str = TENANT) -> None:
    """Print the tenant's rules as YAML (the form `import` reads)."""
    with connect(migrated_database_url()) as conn:
        rules = [parse_rule(item.document, tenant) for item in load_rules(conn, tenant)]
    typer.echo(dump_rules_yaml(rules), nl=False)


@alerts_app.command("delete")
def delete(rule_id: str, tenant: str = TENANT) -> None:
    """Delete a rule and its states (its Alert entities and events stay)."""
    with connect(migrated_database_url()) as conn:
        deleted = delete_rule(conn, tenant, rule_id)
        conn.commit()
    if not deleted:
        console.print(f"[red]no alert rule {rule_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"deleted {rule_id}")


@alerts_app.command("events")
def events(rule_id: str, tenant: str = TENANT, limit: int = 20) -> None:
    """A rule's newest transitions."""
    with connect(migrated_database_url()) as conn:
        found = list_events(conn, tenant, rule_id, limit)
    table = Table("at", "change", "entity", "value", "detail")
    for event in found:
        value = "" if event.value is None else f"{event.value:g}"
        table.add_row(event.at.isoformat(), event.change, event.entity_id, value, event.detail)
    console.print(table)


@alerts_app.command("dry-run")
def dry_run(
    rule_id: str,
    start: str = typer.Option(..., "--from", help="ISO 8601 start, with a zone"),
    end: str = typer.Option(..., "--to", help="ISO 8601 end, with a zone"),
    tenant: str = TENANT,
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Replay a stored rule over history: how often and when it would have fired."""
    with connect(migrated_database_url()) as conn:
        stored = {item.id: item for item in load_rules(conn, tenant)}
        if rule_id not in stored:
            console.print(f"[red]no alert rule {rule_id!r}[/red]")
            raise typer.Exit(1)
        rule = parse_rule(stored[rule_id].document, tenant)
        try:
            result = load_history(conn, rule, _aware(start), _aware(end))
        except NgsiError as error:
            console.print(f"[red]{error.detail}[/red]")
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(f"{rule_id} would have fired {result['timesFired']} times")
    table = Table("entity", "raised", "resolved", "peak")
    for episode in result["episodes"]:
        table.add_row(
            episode["entity"], episode["raisedAt"], episode["resolvedAt"] or "-",
            f"{episode['peak']:g}",
        )  # fmt: skip
    console.print(table)


def _aware(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text} needs a time zone (Z or +01:00)")
    return moment
