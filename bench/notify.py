"""Notification benchmark: what subscriptions cost ingest, and how fast the outbox drains.

Run: `python -m bench.notify` (or `make bench-notify`). Prints the figures and writes them to
bench/results/notify.json. Everything runs on 127.0.0.1 (a Mosquitto of its own, a scratch
database, `stadspuls notify` as a child process, a local HTTP receiver).

1. Ingest drains the same kind of backlog twice: without subscriptions (the baseline of this
   run), and with a subscription to every air-quality entity whose receiver is dead
   (connection refused) while the notifier runs: the ratio says what change capture and a
   dead receiver cost ingest (the design says: a dead receiver costs it nothing).
2. The subscription is then pointed at a live receiver: the notifications that piled up
   while it was dead are delivered; notifications/s is their count over the drain time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.ingest import RESULTS, Bench
from stadspuls.api import create_app
from stadspuls.embedded import free_port, running_mosquitto
from stadspuls.settings import Settings
from stadspuls.simulator import sample_devices, sample_groups
from stadspuls.wiring import prepare_database
from storage.database import connect, drop_database
from storage.outbox import outbox_size
from storage.writer import write_registry

AIR_QUALITY = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
PROFILES = ("ttn-v3", "sensor-community", "iotagent-json")


class CountingReceiver:
    """An HTTP receiver that only counts what it takes, and when the last one came."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.last = 0.0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                counter.count += 1
                counter.last = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    """Run the measurements; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="backlog per ingest run")
    parser.add_argument("--devices", type=int, default=200, help="devices per profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "notify.json")
    args = parser.parse_args()
    maintenance = os.environ.get(
        "STADSPULS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_url = f"{maintenance.rsplit('/', 1)[0]}/stadspuls_bench_notify_{os.getpid()}"
    settings = Settings(database_url=database_url, metrics_port=0, auth_enabled=False)
    prepare_database(settings)
    with connect(database_url) as conn:
        write_registry(conn, sample_devices(), sample_groups())
        conn.commit()
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            running_mosquitto(Path(scratch), persistence=False) as url,
        ):
            bench = Bench(int(url.rsplit(":", 1)[1]), database_url, args.devices)
            results = _measure(bench, settings, args.messages)
    finally:
        drop_database(database_url)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\nNotification benchmark")
    for name, figures in results.items():
        print(f"  {name}: {figures}")
    print(f"written to {args.out}")


def _measure(bench: Bench, settings: Settings, messages: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print("ingest without subscriptions ...", flush=True)
    results["ingest_without_subscriptions"] = bench.backlog_run(
        "pipeline", messages, profiles=PROFILES
    )
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    subscription_id = "urn:ngsi-ld:Subscription:bench"
    with TestClient(create_app(settings)) as api:
        body = {
            "id": subscription_id,
            "type": "Subscription",
            "entities": [{"type": AIR_QUALITY}],
            "notification": {"endpoint": {"uri": dead, "accept": "application/json"}},
        }
        assert api.post("/ngsi-ld/v1/subscriptions", json=body).status_code == 201
        environment = {
            **os.environ,
            "STADSPULS_DATABASE_URL": settings.database_url,
            "STADSPULS_NOTIFY_MAX_BACKOFF_SECONDS": "1",
        }
        notifier = subprocess.Popen(
            [sys.executable, "-m", "stadspuls", "notify", "--no-migrate"],
            env=environment,
            stderr=subprocess.DEVNULL,
        )
        try:
            print("ingest with a subscription whose receiver is dead ...", flush=True)
            with_dead = bench.backlog_run("pipeline", messages, profiles=PROFILES)
            results["ingest_with_dead_receiver"] = with_dead
            results["delivery"] = _drain_outbox(api, settings.database_url, subscription_id)
        finally:
            notifier.terminate()
            notifier.wait(30)
    baseline = results["ingest_without_subscriptions"]["messages_per_second"]
    results["ratios"] = {
        "ingest_with_dead_receiver_vs_without": round(
            results["ingest_with_dead_receiver"]["messages_per_second"] / baseline, 3
        )
    }
    return results


def _drain_outbox(api: TestClient, database_url: str, subscription_id: str) -> dict[str, Any]:
    """Point the subscription at a live receiver and time the delivery of what piled up."""
    with connect(database_url, autocommit=True) as conn:
        deadline = time.monotonic() + 60  # let the dispatcher finish the last changes
        while _pending_changes(conn):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        waiting = outbox_size(conn)
        receiver = CountingReceiver()
        live = f"http://127.0.0.1:{receiver.port}/notify"
        patch = {"notification": {"endpoint": {"uri": live, "accept": "application/json"}}}
        response = api.patch(f"/ngsi-ld/v1/subscriptions/{subscription_id}", json=patch)
        assert response.status_code == 204, response.text
        # Rows already in the outbox keep their endpoint: re-address them to the live one.
        conn.execute(
            "UPDATE notification_outbox SET endpoint = %s, next_attempt_at = now()", [live]
        )
        started = time.monotonic()
        deadline = started + 600
        while outbox_size(conn) and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.server.shutdown()
    seconds = max(receiver.last - started, 1e-9)
    return {
        "notifications_waiting": waiting,
        "delivered": receiver.count,
        "seconds": round(seconds, 3),
        "notifications_per_second": round(receiver.count / seconds, 1),
    }


def _pending_changes(conn: Any) -> int:
    row = conn.execute("SELECT count(*) FROM entity_changes").fetchone()
    return int(row[0]) if row else 0


if __name__ == "__main__":
    main()
