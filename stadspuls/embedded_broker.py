"""An embedded MQTT broker for `stadspuls up` when no broker is configured.

Mosquitto when it is installed (with the shipped deploy/mosquitto.conf: persistence in
`<data dir>/mosquitto`, windows and queues sized for batched acknowledgement); otherwise
amqtt, a pure-Python broker from PyPI. amqtt speaks MQTT 3.1.1 only (the ingest worker falls
back to it by itself) and keeps sessions and queued messages in memory: a broker crash loses
what ingest had not yet acknowledged, a clean stop does not (ingest drains first).

Either runs as a child process in a session of its own, so the Ctrl-C that reaches the
terminal's process group does not take it away before ingest has drained: `stop()` ends it
last.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from .embedded import broker_config

BrokerKind = Literal["auto", "mosquitto", "amqtt"]
START_TIMEOUT_SECONDS = 15.0


def mosquitto_binary() -> str | None:
    """The Mosquitto executable, if one is installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    return None


class EmbeddedBroker:
    """A broker child process listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int, kind: BrokerKind = "auto") -> None:
        binary = mosquitto_binary()
        if kind == "mosquitto" and binary is None:
            raise RuntimeError("mosquitto is not installed (STADSPULS_EMBEDDED_BROKER=mosquitto)")
        self.kind: Literal["mosquitto", "amqtt"] = (
            "mosquitto" if binary is not None and kind != "amqtt" else "amqtt"
        )
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.directory = data_dir.resolve() / self.kind
        self.log_path = self.directory / f"{self.kind}.log"
        if self.kind == "mosquitto":
            assert binary is not None
            config = self.directory / "mosquitto.conf"
            self.command = [binary, "-c", str(config)]
        else:
            self.command = [sys.executable, "-m", "stadspuls.embedded_broker", str(port)]
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        """Start the broker, wait until it accepts connections and return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "mosquitto":
            data = self.directory / "data"
            data.mkdir(exist_ok=True)
            (self.directory / "mosquitto.conf").write_text(broker_config(self.port, data))
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_end_with_parent if sys.platform == "linux" else None,
            )
        wait_for_port(self.port, self.process, self.log_path)
        return self.url

    def stop(self) -> None:
        """Stop the broker (Mosquitto writes its persistence file on SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _end_with_parent() -> None:
    """In the child: SIGTERM when `up` dies, even by SIGKILL (Linux PR_SET_PDEATHSIG).

    The broker sits in a session of its own, so no terminal signal reaches it; without this
    a killed `up` would leave it running.
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_for_port(
    port: int, process: subprocess.Popen, log_path: Path, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Return once 127.0.0.1:`port` accepts connections; raise if the process dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"the broker exited with {process.returncode}:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the broker did not listen on port {port} within {timeout} s")


def amqtt_config(port: int) -> dict[str, object]:
    """amqtt broker configuration: loopback only, anonymous, no $SYS or packet logging."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve_amqtt(port: int) -> None:
    """Run an amqtt broker on `port` until SIGTERM or SIGINT, then shut it down."""
    from amqtt.broker import Broker

    broker = Broker(amqtt_config(port))
    await broker.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await broker.shutdown()


def main() -> None:
    """`python -m stadspuls.embedded_broker PORT`: the amqtt broker process."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(serve_amqtt(int(sys.argv[1])))


if __name__ == "__main__":
    main()
