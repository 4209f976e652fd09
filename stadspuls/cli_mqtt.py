"""`stadspuls mqtt`: per-device MQTT logins, and the broker's password and ACL files."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from devices.mqtt_acl import (
    ACL_FILE_NAME,
    PASSWORD_FILE_NAME,
    broker_config_lines,
    render_acl,
    render_password_file,
)
from storage.database import connect
from storage.mqtt_credentials import (
    IssuedCredentials,
    broker_users,
    issue_device_credentials,
    issue_service_credentials,
    list_credentials,
    revoke_credentials,
)

from .wiring import migrated_database_url

mqtt_app = typer.Typer(help="MQTT logins and the broker's ACL.", no_args_is_help=True)
console = Console()
#: Notes go to stderr, so that stdout holds only what a script needs (the login).
errors = Console(stderr=True)


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _show_once(issued: IssuedCredentials) -> None:
    errors.print(
        f"{'rotated' if issued.info.rotated_at else 'issued'} MQTT login {issued.username!r}."
        " Store the password now: it cannot be shown again. Run `stadspuls mqtt export-acl`"
        " and reload the broker for it to take effect."
    )
    # Plain print: rich would wrap or highlight the password.
    print(f"username: {issued.username}")
    print(f"password: {issued.password}")


@mqtt_app.command("credentials")
def credentials_command(
    device_key: str = typer.Argument(..., help="The device key, as in the device registry."),
    profile: str = typer.Option(..., help="The device's profile (payload family)."),
    rotate: bool = typer.Option(False, "--rotate", help="Replace the device's password."),
) -> None:
    """Issue (or with --rotate replace) a device's login; the password is printed once."""
    try:
        with connect(migrated_database_url()) as conn:
            issued = issue_device_credentials(conn, profile, device_key, rotate=rotate)
    except ValueError as error:  # storage.mqtt_credentials.CredentialError included
        errors.print(f"error: {error}")
        raise typer.Exit(1) from None
    _show_once(issued)


@mqtt_app.command("service-user")
def service_user_command(
    name: str = typer.Argument(..., help="The login name, e.g. stadspuls-ingest."),
    rotate: bool = typer.Option(False, "--rotate", help="Replace the login's password."),
) -> None:
    """Issue a login that reads every topic, for the ingest workers; printed once."""
    try:
        with connect(migrated_database_url()) as conn:
            issued = issue_service_credentials(conn, name, rotate=rotate)
    except ValueError as error:
        errors.print(f"error: {error}")
        raise typer.Exit(1) from None
    _show_once(issued)
    errors.print(
        "give it to the workers as STADSPULS_MQTT_URL=mqtt://<user>:<password>@<host>:<port>"
        " (percent-encode the password)"
    )


@mqtt_app.command("list")
def list_command() -> None:
    """List the MQTT logins, tab-separated (never their passwords)."""
    with connect(migrated_database_url()) as conn:
        logins = list_credentials(conn)
    # Plain lines, not a table: usernames are long and are copied into `mqtt revoke`.
    print("username\tkind\ttenant\tcreated\trotated")
    for login in logins:
        tenant = (login.tenant or "(default)") if login.kind == "device" else ""
        fields = [login.username, login.kind, tenant, _moment(login.created_at)]
        print("\t".join([*fields, _moment(login.rotated_at)]))


@mqtt_app.command("revoke")
def revoke_command(
    username: str = typer.Argument(..., help="The login (from `mqtt list`)."),
) -> None:
    """Delete a login; it stops working at the next export-acl and broker reload."""
    with connect(migrated_database_url()) as conn:
        info = revoke_credentials(conn, username)
    if info is None:
        errors.print(f"no MQTT login {username!r}")
        raise typer.Exit(1)
    console.print(f"revoked {username!r}: run `stadspuls mqtt export-acl` and reload the broker")


@mqtt_app.command("export-acl")
def export_acl_command(
    out: Annotated[Path, typer.Option(help="Directory for the `passwd` and `acl` files.")],
) -> None:
    """Write the broker's password file and ACL (mode 0600) and print the config lines."""
    with connect(migrated_database_url()) as conn:
        users = broker_users(conn)
    try:
        texts = {PASSWORD_FILE_NAME: render_password_file(users), ACL_FILE_NAME: render_acl(users)}
    except ValueError as error:
        errors.print(f"error: {error}")
        raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        _write_private(out / name, text)
    directory = out.resolve()
    errors.print(
        f"wrote {len(users)} logins to {directory}; in mosquitto.conf (then reload the"
        " broker, e.g. SIGHUP):"
    )
    for line in broker_config_lines(directory):
        print(line)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it atomically."""
    # The temporary file is created 0600 (never readable by others, not even briefly);
    # os.replace swaps it in, so a broker reloading meanwhile reads an old or a new file.
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to an existing file
    os.replace(temporary, path)
