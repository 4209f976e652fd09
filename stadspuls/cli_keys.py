"""`stadspuls keys`: create, list and revoke API keys; switch public read of a tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Column, Table

from storage.api_keys import (
    ROLE_NAMES,
    Role,
    create_key,
    list_keys,
    revoke_key,
    set_public_read,
)
from storage.database import connect

from .wiring import migrated_database_url

keys_app = typer.Typer(help="API keys and public read of the NGSI-LD API.", no_args_is_help=True)
console = Console()
#: Warnings go to stderr so that `stadspuls keys create ... > key.txt` captures the key alone.
errors = Console(stderr=True)


def _tenant_label(tenant: str) -> str:
    return tenant or "(default)"


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _parse_role(value: str) -> Role:
    try:
        return Role.parse(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


@keys_app.command("create")
def create_command(
    name: str = typer.Option(..., help="What the key is for (shown in `keys list`)."),
    role: str = typer.Option(..., help=f"One of {', '.join(ROLE_NAMES)}."),
    tenant: str = typer.Option(
        "", help="The tenant (NGSILD-Tenant); the default tenant if omitted."
    ),
) -> None:
    """Create an API key and print it; it is shown this once and cannot be shown again."""
    chosen = _parse_role(role)
    with connect(migrated_database_url()) as conn:
        created = create_key(conn, tenant=tenant, role=chosen, name=name)
    info = created.info
    errors.print(
        f"created key {info.key_id} ({info.role.label} on {_tenant_label(info.tenant)}, "
        f"{info.name!r}). Store it now: it cannot be shown again."
    )
    # Plain print: rich would wrap or highlight the key.
    print(created.key)


@keys_app.command("list")
def list_command(
    tenant: str | None = typer.Option(None, help='Only this tenant ("" for the default).'),
) -> None:
    """List the API keys (never their secrets), revoked ones included."""
    with connect(migrated_database_url()) as conn:
        keys = list_keys(conn, tenant)
    # Key ids are copied into `keys revoke`: never wrapped.
    key_id = Column("key id", no_wrap=True, min_width=16)
    table = Table(key_id, "tenant", "role", "name", "created", "last used", "revoked")
    for key in keys:
        table.add_row(
            key.key_id,
            _tenant_label(key.tenant),
            key.role.label,
            key.name,
            _moment(key.created_at),
            _moment(key.last_used_at),
            _moment(key.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_command(
    key_id: str = typer.Argument(..., help="The key id (from `keys list`)."),
) -> None:
    """Revoke an API key; running API processes refuse it within STADSPULS_AUTH_CACHE_SECONDS."""
    with connect(migrated_database_url()) as conn:
        info = revoke_key(conn, key_id)
    if info is None:
        errors.print(f"no API key with id {key_id!r}")
        raise typer.Exit(1)
    console.print(f"key {info.key_id} ({info.name!r}) revoked at {_moment(info.revoked_at)}")


@keys_app.command("public-read")
def public_read_command(
    tenant: str = typer.Argument(..., help='The tenant ("" for the default tenant).'),
    on: bool = typer.Option(..., "--on/--off", help="Allow or stop anonymous reads."),
) -> None:
    """Allow (--on) or stop (--off) anonymous reads of a tenant; writes always need a key."""
    with connect(migrated_database_url()) as conn:
        set_public_read(conn, tenant, on)
    state = "readable by anyone" if on else "readable with credentials only"
    console.print(f"{_tenant_label(tenant)} is now {state}")
