"""The `stadspuls` command line."""

from __future__ import annotations

import logging
import signal
import threading

import typer
import uvicorn
from prometheus_client import start_http_server
from rich.console import Console
from rich.table import Table

from alerts.notifier import Notifier
from ingest.runtime import tune_garbage_collector
from storage.database import connect
from storage.status import collect_status, list_dead_letters

from .cli_alerts import alerts_app
from .cli_backfill import backfill_command
from .cli_devices import devices_app
from .cli_feeds import feeds_app
from .cli_grafana import grafana_app
from .cli_keys import keys_app
from .cli_mqtt import mqtt_app
from .cli_up import up_command
from .settings import Settings
from .wiring import build_worker, notifier_options, notifier_tasks, prepare_database

app = typer.Typer(help="Stadspuls: city sensor data from MQTT to NGSI-LD.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(keys_app, name="keys")
app.add_typer(grafana_app, name="grafana")
app.add_typer(mqtt_app, name="mqtt")
app.add_typer(alerts_app, name="alerts")
app.add_typer(feeds_app, name="feeds")
app.command("backfill")(backfill_command)
app.command("up")(up_command)
console = Console()


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


@app.command("migrate")
def migrate_command() -> None:
    """Create the database if needed and apply the schema migrations."""
    settings = _settings()
    backend = prepare_database(settings)
    console.print(f"schema up to date on {backend.version} ({backend.name})")


@app.command("ingest")
def ingest_command() -> None:
    """Run the ingest worker until SIGTERM or Ctrl-C, then drain, commit and ack."""
    settings = _settings()
    backend = prepare_database(settings)
    _run_worker(settings, backend)


@app.command("api")
def api_command(
    migrate: bool = typer.Option(True, help="Apply pending migrations before serving."),
) -> None:
    """Serve the NGSI-LD API (FastAPI under uvicorn) on STADSPULS_API_HOST:STADSPULS_API_PORT."""
    settings = _settings()
    if migrate:
        prepare_database(settings)
    uvicorn.run(
        "stadspuls.api:create_served_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command("notify")
def notify_command(
    migrate: bool = typer.Option(True, help="Apply pending migrations before starting."),
) -> None:
    """Deliver subscription and alert notifications (durable outbox) until SIGTERM or Ctrl-C."""
    settings = _settings()
    if migrate:
        prepare_database(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Notifier(settings.database_url, notifier_options(settings), notifier_tasks(settings)).run(stop)


def _run_worker(settings: Settings, backend) -> None:
    worker = build_worker(settings, backend)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, registry=worker.metrics.registry)
        except OSError as error:
            # Metrics are for watching; a taken port must not stop ingest.
            logging.getLogger("stadspuls").warning(
                "metrics not served on port %d (%s); set STADSPULS_METRICS_PORT",
                settings.metrics_port,
                error,
            )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    tune_garbage_collector()
    while not stop.wait(0.5) and not worker.failed.is_set():
        pass
    logging.getLogger("stadspuls").info("stopping: draining, committing and acknowledging")
    worker.stop()
    s = worker.stats
    console.print(
        f"stopped after {s.messages} messages, {s.readings} readings, "
        f"{s.dead_letters} dead letters in {s.batches} batches"
    )
    if worker.failed.is_set():
        raise typer.Exit(1)


@app.command("status")
def status_command(
    devices: int = typer.Option(20, help="How many devices to list."),
    silent_after: str = typer.Option(
        "1h", help="A device is silent when not heard from for longer than this: 30m, 1h, 2d."
    ),
) -> None:
    """Storage backend, message and reading counts, dead letters, health of every device."""
    # Imported here so that device health stays an edit of this command alone.
    from datetime import UTC, datetime

    from storage.device_health import device_health

    from .cli_devices import parse_duration

    silence = parse_duration(silent_after)
    settings = _settings()
    backend = prepare_database(settings)
    now = datetime.now(UTC)
    with connect(settings.database_url) as conn:
        report = collect_status(conn, backend, devices=devices)
        health = device_health(conn, now=now, silent_after=silence, limit=devices)
    console.print(f"[bold]storage[/bold]      {report.backend_version} ({report.backend_name})")
    dead = sum(reason.times_received for reason in report.dead_letters)
    console.print(f"[bold]messages[/bold]     {report.messages:,} decoded, {dead:,} dead-lettered")
    console.print(
        f"[bold]readings[/bold]     {report.readings:,} received, "
        f"{report.observations:,} stored observations"
    )
    console.print(f"[bold]entities[/bold]     {report.entities:,}")
    table = Table("dead-letter reason", "messages", "times received")
    for reason in report.dead_letters:
        table.add_row(reason.reason, f"{reason.messages:,}", f"{reason.times_received:,}")
    console.print(table)
    # One tenant (the default) is the usual set-up: leave out a column of "(default)".
    tenants = any(device.tenant for device in health)
    headings = ["device", "model", "last seen (UTC)", "last h", "msgs/h", "battery"]
    table = Table(
        *(["tenant"] if tenants else []), *headings, "dead letters", "state",
        title=f"device health (silent after {silent_after})",
    )  # fmt: skip
    for device in health:
        if device.battery_level is not None:
            battery = f"{device.battery_level:.0%}"
        elif device.battery_voltage is not None:
            battery = f"{device.battery_voltage:.2f} V"
        else:
            battery = "-"
        last_seen = device.last_seen.astimezone(UTC) if device.last_seen else None
        letters = device.dead_letters
        table.add_row(
            *([device.tenant or "(default)"] if tenants else []),
            device.device_id,
            device.model or "-",
            last_seen.strftime("%Y-%m-%d %H:%M") if last_seen else "never",
            f"{device.messages_last_hour:,}",
            f"{device.messages_per_hour:,.1f}",
            battery,
            f"{letters:,} {device.last_dead_letter_reason}" if letters else "0",
            device.state.value,
        )
    console.print(table)


@app.command("dead-letters")
def dead_letters_command(
    reason: str | None = typer.Option(None, help="Only this reason."),
    limit: int = typer.Option(20, help="How many to show, newest first."),
) -> None:
    """List dead letters with their topic, reason and detail."""
    settings = _settings()
    with connect(settings.database_url) as conn:
        letters = list_dead_letters(conn, limit=limit, reason=reason)
    table = Table("last received", "reason", "topic", "detail", "times")
    for letter in letters:
        table.add_row(
            letter.last_received_at.isoformat(),
            letter.reason,
            letter.topic,
            letter.detail,
            str(letter.times_received),
        )
    console.print(table)
