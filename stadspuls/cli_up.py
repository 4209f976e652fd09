"""`stadspuls up [--demo]`: the whole service, on an embedded database and broker if need be.

With STADSPULS_DATABASE_URL / STADSPULS_MQTT_URL set, those are used; without them, an
embedded PostgreSQL (stadspuls/embedded_postgres.py) and an embedded broker
(stadspuls/embedded_broker.py) run from the data directory, so the first command of the
README works on a machine with nothing installed but Python. Then migrations, the API and
notifier processes, ingest in this process, and with --demo the Mechelen simulator.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Literal

import typer
from prometheus_client import start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from ingest.runtime import tune_garbage_collector

from .demo import DemoPublisher, example_entity_ids, register_demo
from .embedded import free_port
from .embedded_broker import EmbeddedBroker
from .embedded_postgres import EmbeddedPostgres
from .settings import Settings
from .wiring import build_worker, prepare_database

log = logging.getLogger("stadspuls")
console = Console()

#: Ports the embedded servers prefer (next to the usual 5432 and 1883, which a system
#: PostgreSQL or Mosquitto may hold); any free port when these are taken.
PREFERRED_POSTGRES_PORT = 5433
PREFERRED_MQTT_PORT = 1884
API_WAIT_SECONDS = 60.0
HELPER_STOP_SECONDS = 10.0
ENVIRONMENT_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
TRANSPORTATION_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld"
)


class UpSettings(BaseSettings):
    """Settings of `stadspuls up` only: the data directory and the embedded servers."""

    model_config = SettingsConfigDict(env_prefix="STADSPULS_", extra="ignore")

    #: Where the embedded PostgreSQL cluster, the broker's persistence and the demo's state live.
    data_dir: Path = Path(".stadspuls")
    #: Port of the embedded PostgreSQL; unset: 5433 when free, else any free port; 0: any.
    embedded_postgres_port: int | None = Field(default=None, ge=0, le=65535)
    #: Port of the embedded broker; unset: 1884 when free, else any free port; 0: any.
    embedded_mqtt_port: int | None = Field(default=None, ge=0, le=65535)
    #: auto: Mosquitto when installed, else amqtt (pure Python).
    embedded_broker: Literal["auto", "mosquitto", "amqtt"] = "auto"
    #: Hours of history the demo publishes at its first start (and at most after a pause).
    demo_backfill_hours: float = Field(default=24.0, ge=0)


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (and we may bind it)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(configured: int | None, preferred: int) -> int:
    """The configured port (0: any free one), or `preferred` when free, else any free port."""
    if configured:
        return configured
    if configured is None and port_is_free(preferred):
        return preferred
    return free_port()


def up_command(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Also run a simulated town (Mechelen) publishing in every profile."
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Embedded database, broker and demo state [default: STADSPULS_DATA_DIR or "
            "./.stadspuls].",
        ),
    ] = None,
) -> None:
    """Run the whole service: database (embedded if none is configured), broker, API, ingest."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = UpSettings()
    directory = (data_dir or options.data_dir).resolve()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as cleanup:
        settings = _start_embedded(settings, options, directory, cleanup)
        if stop.is_set():
            return
        backend = prepare_database(settings)
        console.print(f"storage: {backend.version} ({backend.name})")
        if demo:
            devices = register_demo(settings.database_url)
            console.print(f"demo:    {devices} devices of Mechelen registered")
        helpers = _start_helpers(settings, demo, cleanup)
        failed = _serve(settings, backend, helpers, stop, directory, options if demo else None)
    console.print("stopped cleanly" if not failed else "stopped after a failure")
    if failed:
        raise typer.Exit(1)


def _start_embedded(
    settings: Settings, options: UpSettings, directory: Path, cleanup: ExitStack
) -> Settings:
    """Start what is not configured; return the settings with the effective URLs."""
    overrides: dict[str, str] = {}
    directory.mkdir(parents=True, exist_ok=True)
    if "database_url" not in settings.model_fields_set:
        port = choose_port(options.embedded_postgres_port, PREFERRED_POSTGRES_PORT)
        server = EmbeddedPostgres(directory, port)
        first = "creating" if not server.initialized else "starting"
        console.print(f"{first} the embedded PostgreSQL in {server.cluster} (port {port})")
        overrides["database_url"] = server.start()
        cleanup.callback(server.stop)
    if "mqtt_url" not in settings.model_fields_set:
        port = choose_port(options.embedded_mqtt_port, PREFERRED_MQTT_PORT)
        broker = EmbeddedBroker(directory, port, options.embedded_broker)
        console.print(f"starting the embedded broker ({broker.kind}) on port {port}")
        overrides["mqtt_url"] = broker.start()
        cleanup.callback(broker.stop)
        if broker.kind == "amqtt" and "mqtt_protocol" not in settings.model_fields_set:
            # amqtt neither accepts nor refuses an MQTT 5 CONNECT (it never answers), so
            # ingest's fallback on refusal cannot kick in: ask for 3.1.1 from the start.
            overrides["mqtt_protocol"] = "3.1.1"
    return settings.model_copy(update=overrides)


def _start_helpers(settings: Settings, demo: bool, cleanup: ExitStack) -> list[subprocess.Popen]:
    """The API and the notifier as processes of their own, on the effective URLs.

    Own processes, so ingest keeps this one's CPU and a slow notification receiver can
    never hold it up.
    """
    environment = {
        **os.environ,
        "STADSPULS_DATABASE_URL": settings.database_url,
        "STADSPULS_MQTT_URL": settings.mqtt_url,
    }
    if demo and "auth_public_read_tenants" not in settings.model_fields_set:
        # The demo town is public data: anyone may read it (the default tenant) while the
        # demo runs, so the printed curl commands work without an API key. Writes still
        # need one. Only this run's API process is told so; nothing is stored.
        environment["STADSPULS_AUTH_PUBLIC_READ_TENANTS"] = '[""]'
    helpers = [
        subprocess.Popen(
            [sys.executable, "-m", "stadspuls", command, "--no-migrate"], env=environment
        )
        for command in ("api", "notify")
    ]
    cleanup.callback(_stop_helpers, helpers)
    return helpers


def _stop_helpers(helpers: list[subprocess.Popen]) -> None:
    for process in helpers:
        if process.poll() is None:
            process.terminate()
    for process in helpers:
        try:
            process.wait(timeout=HELPER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _serve(
    settings: Settings,
    backend,
    helpers: list[subprocess.Popen],
    stop: threading.Event,
    directory: Path,
    demo: UpSettings | None,
) -> bool:
    """Run ingest (and the demo) until `stop`; True when something failed."""
    worker = build_worker(settings, backend)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, registry=worker.metrics.registry)
        except OSError as error:
            # Metrics are for watching; a taken port must not stop ingest.
            log.warning("metrics not served on port %d (%s)", settings.metrics_port, error)
    worker.start()
    tune_garbage_collector()
    demo_stop = threading.Event()
    demo_thread = None
    if demo is not None:
        publisher = DemoPublisher(settings.mqtt_url, directory, demo.demo_backfill_hours)
        demo_thread = threading.Thread(
            target=_run_demo, args=(publisher, demo_stop), name="demo", daemon=True
        )
        demo_thread.start()
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    if _wait_for_api(api_url, helpers, stop):
        _print_banner(settings, api_url, directory, demo is not None)
    failed = False
    while not stop.wait(0.5):
        if worker.failed.is_set():
            failed = True
            break
        exited = [process for process in helpers if process.poll() is not None]
        # A Ctrl-C reaches the helpers too; give our own handler a moment to see it.
        if exited and not stop.wait(1.0):
            log.error("a helper (pid %s) exited with %s", exited[0].pid, exited[0].returncode)
            failed = True
            break
    log.info("stopping: draining, committing and acknowledging")
    demo_stop.set()
    if demo_thread is not None:
        demo_thread.join(15)
    worker.stop()
    stats = worker.stats
    console.print(
        f"ingest stopped after {stats.messages} messages, {stats.readings} readings, "
        f"{stats.dead_letters} dead letters in {stats.batches} batches"
    )
    return failed or worker.failed.is_set()


def _run_demo(publisher: DemoPublisher, stop: threading.Event) -> None:
    try:
        publisher.run(stop)
    except Exception:  # the demo must never take ingest down with it
        log.exception("the demo simulator stopped")


def _wait_for_api(api_url: str, helpers: list[subprocess.Popen], stop: threading.Event) -> bool:
    """Wait (bounded) until the API answers; False if it did not."""
    deadline = time.monotonic() + API_WAIT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if helpers[0].poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{api_url}/openapi.json", timeout=2):
                return True
        except OSError:
            stop.wait(0.25)
    return False


def _print_banner(settings: Settings, api_url: str, directory: Path, demo: bool) -> None:
    entities = f"{api_url}/ngsi-ld/v1/entities"
    lines = [
        "",
        "[bold]Stadspuls is running[/bold]  (Ctrl-C stops everything)",
        f"  API       {entities}",
        f"  docs      {api_url}/docs",
    ]
    if settings.metrics_port:
        lines.append(f"  metrics   http://127.0.0.1:{settings.metrics_port}/metrics")
    lines += [
        f"  broker    {settings.mqtt_url}",
        f"  database  {settings.database_url}",
        f"  data      {directory}",
        "",
        "Try, from a second shell:",
        f"  export STADSPULS_DATABASE_URL={settings.database_url}"
        f" STADSPULS_MQTT_URL={settings.mqtt_url}",
        "  stadspuls status",
    ]
    if demo:
        ids = example_entity_ids()
        link = (
            f"-H 'Link: <{TRANSPORTATION_CONTEXT}>; rel=\"http://www.w3.org/ns/json-ld#context\"'"
        )
        air = f"-H 'Link: <{ENVIRONMENT_CONTEXT}>; rel=\"http://www.w3.org/ns/json-ld#context\"'"
        lines += [
            "  # congestion on the loops now (anonymous reads of the demo are allowed)",
            f"  curl {link} '{entities}?type=TrafficFlowObserved&q=occupancy>0.3"
            "&options=keyValues'",
            "  # a Decentlab air-quality station, short names",
            f"  curl {air} '{entities}/{ids['ttn-v3']}?options=keyValues'",
            "  # the last 24 hourly bike counts of a Telraam street",
            f"  curl -G {link} '{api_url}/ngsi-ld/v1/temporal/entities/{ids['telraam']}'"
            " -d attrs=intensity -d lastN=24 -d options=temporalValues",
            "  # every station above the EU PM10 daily limit right now",
            f"  curl {air} '{entities}?type=AirQualityObserved&q=pm10>50&options=keyValues'",
        ]
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


if __name__ == "__main__":
    typer.run(up_command)
