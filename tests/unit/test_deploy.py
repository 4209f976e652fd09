"""The shipped deployment files: compose file valid, broker sized for batched acknowledgement."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stadspuls.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def broker_settings() -> dict[str, str]:
    lines = (REPO / "deploy" / "mosquitto.conf").read_text().splitlines()
    pairs = (line.split(None, 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_broker_windows_and_queues_fit_the_batch_size():
    broker, settings = broker_settings(), Settings()
    assert int(broker["max_inflight_messages"]) >= 2 * settings.batch_size
    assert settings.mqtt_receive_maximum >= 2 * settings.batch_size
    assert int(broker["max_queued_messages"]) >= 1_000_000
    assert broker["persistence"] == "true"
    assert int(broker["autosave_interval"]) <= 60


def test_compose_file_is_valid_and_gives_each_worker_its_own_client_id():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    result = subprocess.run(
        [compose, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    workers = [s for s in services.values() if s.get("command") == ["stadspuls", "ingest"]]
    client_ids = {w["environment"]["STADSPULS_MQTT_CLIENT_ID"] for w in workers}
    assert len(workers) == len(client_ids) >= 2
    mounts = " ".join(str(v) for v in services["mosquitto"]["volumes"])
    assert "deploy/mosquitto.conf" in mounts
