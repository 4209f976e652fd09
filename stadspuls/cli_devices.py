"""`stadspuls devices`: import, list, show, silent devices, the quarantine and adoption."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from devices.bulk_import import ImportRejected, accepted, parse_import_file
from devices.iota_provisioning import device_to_iota
from storage.database import connect
from storage.quarantine import adopt, device_for_group, list_quarantine
from storage.registry import get_device, get_group, list_devices, silent_devices, write_registry
from storage.writer import load_registry

from .settings import Settings
from .wiring import migrated_database_url, prepare_database

devices_app = typer.Typer(help="The device registry.", no_args_is_help=True)
console = Console()
#: Problems go to stderr, so that the listings on stdout stay clean for scripts.
errors = Console(stderr=True)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
FILE_ARGUMENT = typer.Argument(..., exists=True, dir_okay=False, help="A .yaml or .csv file.")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `1h30m`, `2d`, `1w` as a timedelta."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 30m, 1h30m, 2d")
    return sum((timedelta(**{_UNITS[unit]: float(number)}) for number, unit in parts), timedelta())


def _tenant_label(tenant: str) -> str:
    return tenant or "(default)"


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


@devices_app.command("import")
def import_command(
    path: Path = FILE_ARGUMENT,
    partial: bool = typer.Option(
        False, help="Register the valid lines even when others are invalid."
    ),
) -> None:
    """Register the groups and devices of a YAML or CSV file; all or nothing by default."""
    url = migrated_database_url()
    with connect(url) as conn:
        registered, known_groups = load_registry(conn)
        taken = {(d.tenant, d.device_id): (d.profile, key) for key, d in registered}
        plan = parse_import_file(path, known_groups, taken)
        for problem in plan.errors:
            errors.print(f"{path}:{problem.line}: {problem.message}", markup=False, highlight=False)
        try:
            devices, groups = accepted(plan, partial)
        except ImportRejected as rejected:
            errors.print(f"{rejected}; fix the lines above, or pass --partial")
            raise typer.Exit(1) from None
        write_registry(conn, devices, groups)
        conn.commit()
    skipped = f", skipped {len(plan.errors)} invalid lines" if plan.errors else ""
    console.print(
        f"registered {len(groups)} groups and {len(devices)} devices from {path}{skipped}"
    )


@devices_app.command("list")
def list_command(
    tenant: str | None = typer.Option(None, help="Only this tenant ('' for the default)."),
    model: str | None = typer.Option(None, help="Only devices of this group."),
    profile: str | None = typer.Option(None, help="Only devices of this profile."),
) -> None:
    """The registered devices, by tenant and device id."""
    with connect(migrated_database_url()) as conn:
        count, devices = list_devices(conn, tenant=tenant, model=model, profile=profile)
    table = Table("tenant", "device", "profile", "key", "model", "entity type", "location")
    for key, device in devices:
        location = f"{device.location[0]}, {device.location[1]}" if device.location else ""
        table.add_row(
            _tenant_label(device.tenant),
            device.device_id,
            device.profile,
            key,
            device.model or "",
            device.entity_type or "",
            location,
        )
    console.print(table)
    console.print(f"{count} devices")


@devices_app.command("show")
def show_command(
    device_id: str,
    tenant: str = typer.Option("", help="The device's tenant (default: the default tenant)."),
) -> None:
    """One device as the /iot API shows it, merged with its group, and when it was last heard."""
    with connect(migrated_database_url()) as conn:
        found = get_device(conn, tenant, device_id)
        if found is None:
            errors.print(f"no device {device_id!r} in {_tenant_label(tenant)}")
            raise typer.Exit(1)
        key, device = found
        group = get_group(conn, device.model) if device.model else None
        row = conn.execute(
            "SELECT messages, readings, last_message_at FROM device_activity"
            " WHERE tenant = %s AND device_id = %s",
            [tenant, device_id],
        ).fetchone()
    document = device_to_iota(key, device, group)
    if row is not None:
        document["activity"] = {
            "messages": row[0],
            "readings": row[1],
            "lastMessageAt": row[2].isoformat(),
        }
    console.print_json(orjson.dumps(document).decode())


@devices_app.command("silent")
def silent_command(
    since: str = typer.Option("1h", help="Silent for longer than this: 90s, 30m, 1h, 2d."),
    tenant: str | None = typer.Option(None, help="Only this tenant."),
) -> None:
    """Devices not heard from within `--since`, and registered devices never heard from."""
    cutoff = datetime.now(UTC) - parse_duration(since)
    with connect(migrated_database_url()) as conn:
        silent = silent_devices(conn, cutoff, tenant)
    table = Table("tenant", "device", "profile", "key", "model", "last message")
    for device in silent:
        table.add_row(
            _tenant_label(device.tenant),
            device.device_id,
            device.profile or "(not registered)",
            device.device_key or "",
            device.model or "",
            _moment(device.last_message_at),
        )
    console.print(table)
    console.print(f"{len(silent)} devices silent for more than {since}")


@devices_app.command("quarantine")
def quarantine_command(
    limit: int = typer.Option(50, help="How many devices to show, most recent first."),
) -> None:
    """Unknown devices: their key, what they sent last, and the group claiming their key."""
    with connect(migrated_database_url()) as conn:
        found = list_quarantine(conn)
    table = Table("profile", "key", "group", "messages", "last received", "latest payload")
    for device in found[:limit]:
        payload = device.latest_payload.decode("utf-8", "replace")
        table.add_row(
            device.profile,
            device.device_key,
            device.group.name if device.group else "",
            str(device.messages),
            _moment(device.last_received_at),
            payload[:80],
        )
    console.print(table)
    console.print(f"{len(found)} unknown devices")


@devices_app.command("adopt")
def adopt_command(
    key: str = typer.Argument(..., help="The device key, as the quarantine lists it."),
    profile: str = typer.Option(..., help="The device's profile."),
    group: str = typer.Option(..., help="The device group it joins."),
    device_id: str | None = typer.Option(None, help="Default: the key after the group prefix."),
) -> None:
    """Register an unknown device in a group and store what it sent while unknown."""
    settings = Settings()
    backend = prepare_database(settings)
    with connect(settings.database_url) as conn:
        found = get_group(conn, group)
        conn.commit()
        if found is None or found.profile != profile:
            errors.print(f"no {profile} device group {group!r}")
            raise typer.Exit(1)
        try:
            device = device_for_group(found, key, device_id)
            adoption = adopt(conn, backend, profile, key, device)
        except ValueError as error:
            errors.print(str(error))
            raise typer.Exit(1) from None
    refused = ", ".join(f"{n} {reason}" for reason, n in adoption.refused.items())
    console.print(
        f"adopted {profile} {key!r} as {adoption.device.device_id!r}"
        f" ({_tenant_label(adoption.device.tenant)}): {adoption.replayed} messages replayed,"
        f" {adoption.observations_inserted} observations stored"
        + (f"; still refused: {refused}" if refused else "")
    )
