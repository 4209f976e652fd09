"""The `stadspuls` commands as an operator runs them, against the real services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stadspuls.embedded import free_port
from stadspuls.publisher import publish_all
from stadspuls.simulator import message_stream
from storage.database import drop_database
from tests.support.fixtures import scratch_database_url
from tests.support.ingest import WorkerProcess, ingest_settings, wait_for_rows, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stadspuls(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STADSPULS_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "stadspuls", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_creates_the_database_and_devices_import_registers_the_example():
    url = scratch_database_url("stadspuls_cli")
    try:
        migrated = stadspuls(url, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert "PostgreSQL" in migrated.stdout
        imported = stadspuls(url, "devices", "import", str(REPO / "docs/examples/devices.yaml"))
        assert imported.returncode == 0, imported.stderr
        assert "registered 5 groups and 2 devices" in imported.stdout
    finally:
        drop_database(url)


def test_a_bad_device_file_is_refused_with_the_place_of_the_error(tmp_path):
    url = scratch_database_url("stadspuls_cli")
    bad = tmp_path / "devices.yaml"
    bad.write_text("devices:\n  - key: a\n    device_id: a\n    profile: no-such-profile\n")
    try:
        result = stadspuls(url, "devices", "import", str(bad))
        assert result.returncode != 0
        assert "no-such-profile" in result.stdout + result.stderr
    finally:
        drop_database(url)


def test_status_dead_letters_and_metrics_of_a_running_worker(ingest_database, mqtt_url, tmp_path):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    messages = [(m.topic, m.payload) for m in message_stream(100, start, devices_per_profile=2)]
    messages.append(("sensor-community/777", b"{not json"))
    port = free_port()
    settings = ingest_settings(ingest_database, mqtt_url)
    with WorkerProcess(settings, tmp_path / "worker.log", metrics_port=port) as worker:
        publish_all(mqtt_url, messages)
        wait_for_rows(ingest_database, 1)

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                return page.read().decode()

        wait_until(
            lambda: "stadspuls_messages_received_total 101.0" in metrics(), 30, "the metrics"
        )
        text = metrics()
        assert 'stadspuls_messages_dead_lettered_total{reason="invalid_json"} 1.0' in text
        assert "stadspuls_batch_commit_seconds_count" in text
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0

    status = stadspuls(ingest_database, "status")
    assert status.returncode == 0, status.stderr
    assert "PostgreSQL" in status.stdout
    assert "100 decoded, 1 dead-lettered" in status.stdout
    assert "invalid_json" in status.stdout
    assert "dl-pm-0" in status.stdout  # last message per device
    rows = {line.split("│")[1].strip(): line for line in status.stdout.splitlines() if "│" in line}
    assert "3.10 V" in rows["dl-pm-0"] and "│ ok" in rows["dl-pm-0"]  # device health
    assert "1 invalid_json" in rows["777"] and "never-seen" in rows["777"]

    letters = stadspuls(ingest_database, "dead-letters", "--reason", "invalid_json")
    assert letters.returncode == 0, letters.stderr
    assert "sensor-community/777" in letters.stdout
