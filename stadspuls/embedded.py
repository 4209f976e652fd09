"""Mosquitto started from the configuration the project ships (deploy/mosquitto.conf).

Used by the tests and benchmarks for a broker of their own, and by `stadspuls up` when no
broker is configured.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "deploy" / "mosquitto.conf"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broker_config(
    port: int, data_dir: Path, persistence: bool = True, extra_config: str = ""
) -> str:
    """The shipped configuration, listening on `port` on loopback, persisting in `data_dir`.

    Lines of `extra_config` are appended; a shipped line setting an option that
    `extra_config` sets too (e.g. `allow_anonymous`) is left out.
    """
    extra = [line for line in extra_config.splitlines() if line.strip()]
    overridden = {line.split()[0] for line in extra if not line.startswith("#")}
    lines = []
    for line in SHIPPED_CONFIG.read_text().splitlines():
        if line.split(" ", 1)[0] in overridden:
            continue
        if line.startswith("listener "):
            line = f"listener {port} 127.0.0.1"
        elif line.startswith("persistence_location "):
            line = f"persistence_location {data_dir}/"
        elif line.startswith("persistence ") and not persistence:
            line = "persistence false"
        lines.append(line)
    return "\n".join([*lines, *extra]) + "\n"


class Mosquitto:
    """A Mosquitto process on a fixed port and data directory; it can be stopped and restarted."""

    def __init__(self, workdir: Path, persistence: bool = True, extra_config: str = "") -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        data = workdir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(broker_config(self.port, data, persistence, extra_config))
        self.log_path = workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the broker and wait until it listens."""
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=log
            )
        _wait_for_port(self.port, self.process)

    def stop(self) -> None:
        """Stop the broker cleanly (it saves its persistent sessions)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextmanager
def running_mosquitto(
    workdir: Path, persistence: bool = True, extra_config: str = ""
) -> Iterator[str]:
    """Run Mosquitto with the shipped configuration (plus `extra_config`); yield its URL."""
    broker = Mosquitto(workdir, persistence, extra_config)
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on port {port} within {timeout} s")
