"""Helpers for ingest integration tests: settings, expected rows, waiting for the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from ingest.worker import IngestWorker
from stadspuls.settings import Settings
from stadspuls.simulator import Message, sample_devices, sample_groups
from stadspuls.wiring import build_worker
from storage.backend import detect_backend
from storage.database import connect
from storage.records import ObservationRow

ObservationKey = tuple[str, str, str, str]


def ingest_settings(database_url: str, mqtt_url: str, **overrides) -> Settings:
    """Settings for one test's worker: its own client id, a short session, no metrics port."""
    values = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "mqtt_client_id": f"test-worker-{uuid.uuid4().hex[:8]}",
        "mqtt_session_expiry": 300,
        "metrics_port": 0,
        "batch_size": 200,
        "batch_time": 0.05,
        "registry_refresh_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


def expected_observations(messages: Iterable[Message]) -> set[ObservationKey]:
    """The observation keys the pipeline makes of `messages`, decoded in-process."""
    registry = DeviceRegistry(sample_devices(), sample_groups())
    builder = BatchBuilder(lambda: registry, 256 * 1024)
    now = datetime.now(UTC)
    raw = [RawMessage(m.topic, m.payload, 0, 1, now, 0.0) for m in messages]
    built = builder.build(raw)
    assert not built.batch.dead_letters, built.batch.dead_letters[:3]
    rows = (ObservationRow(*row) for row in built.batch.observations)
    return {(r.entity_id, r.attribute, r.dataset_id, r.observed_at.isoformat()) for r in rows}


def stored_observations(conn: psycopg.Connection) -> list[ObservationKey]:
    """Every stored observation key, duplicates included (there must be none)."""
    rows = conn.execute(
        "SELECT entity_id, attribute, dataset_id, observed_at FROM observations"
    ).fetchall()
    conn.commit()
    return [(e, a, d, t.isoformat()) for e, a, d, t in rows]


def count(conn: psycopg.Connection, sql: str, params: tuple = ()) -> int:
    """A single count from `sql`, outside any lingering transaction."""
    value = conn.execute(sql, params).fetchone()[0]
    conn.commit()
    return int(value)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def wait_for_rows(database_url: str, expected: int, timeout: float = 60.0) -> None:
    """Wait until the observations table holds `expected` rows."""
    with connect(database_url) as conn:
        wait_until(
            lambda: count(conn, "SELECT count(*) FROM observations") >= expected,
            timeout,
            f"{expected} observations",
        )


@contextmanager
def running_worker(settings: Settings, **kwargs) -> Iterator[IngestWorker]:
    """An in-process ingest worker, connected and subscribed; drained and stopped afterwards."""
    with connect(settings.database_url) as conn:
        backend = detect_backend(conn, settings.storage_backend)
    worker = build_worker(settings, backend, **kwargs)
    worker.start()
    try:
        if not worker.consumer.wait_connected(10):
            raise AssertionError("worker did not connect to the broker within 10 s")
        time.sleep(0.2)  # let the SUBACK arrive before anything is published
        yield worker
    finally:
        worker.stop()


class WorkerProcess:
    """`python -m stadspuls ingest` as a child process, as an operator would run it."""

    def __init__(self, settings: Settings, log_path: Path, metrics_port: int = 0) -> None:
        self.env = {
            **os.environ,
            "STADSPULS_DATABASE_URL": settings.database_url,
            "STADSPULS_MQTT_URL": settings.mqtt_url,
            "STADSPULS_MQTT_CLIENT_ID": settings.mqtt_client_id,
            "STADSPULS_MQTT_SESSION_EXPIRY": str(settings.mqtt_session_expiry),
            "STADSPULS_BATCH_SIZE": str(settings.batch_size),
            "STADSPULS_BATCH_TIME": str(settings.batch_time),
            "STADSPULS_METRICS_PORT": str(metrics_port),
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the worker and wait until it has subscribed."""
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stadspuls", "ingest"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        marks = self.log_path.read_text().count("subscribed to")
        wait_until(
            lambda: (
                self.log_path.read_text().count("subscribed to") > marks
                or self.process.poll() is not None
            ),
            30,
            "the worker process to subscribe",
        )
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]
        time.sleep(0.2)

    def signal(self, signum: int) -> None:
        """Send `signum` to the worker."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the worker to exit; its return code."""
        assert self.process is not None
        return self.process.wait(timeout)

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
