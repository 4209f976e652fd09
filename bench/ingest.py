"""Ingest benchmark: throughput, latency and memory of the real pipeline on this machine.

Run: `python -m bench.ingest` (or `make bench`). Prints the figures and writes them to
bench/results/ingest.json. Everything runs on 127.0.0.1: a Mosquitto of its own started
from deploy/mosquitto.conf (persistence off, so the broker's disk does not enter the
figures), a scratch database on the local PostgreSQL, consumers as child processes.

Throughput is measured by draining a backlog published beforehand, so the publisher's CPU
does not distort it; the baseline is a bare paho subscriber draining the same backlog in
the same run, and the pipeline is reported as a ratio of it. Messages are published by
bench/loadgen.py (pre-encoded QoS 1 packets, every PUBACK awaited), which costs almost no
CPU, so the fixed-rate latency run measures the pipeline rather than the publisher.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

from bench.cpu import busy_seconds
from bench.loadgen import LoadGenerator
from stadspuls.embedded import running_mosquitto
from stadspuls.settings import Settings
from stadspuls.simulator import message_stream, sample_devices, sample_groups
from stadspuls.wiring import prepare_database
from storage.database import connect, drop_database
from storage.writer import write_registry

RESULTS = Path(__file__).resolve().parent / "results"
MIX = ("ttn-v3", "sensor-community", "telraam", "iotagent-json", "traffic-loop")


class Bench:
    """One benchmark run: a broker, a database, and consumers started as child processes."""

    def __init__(self, port: int, database_url: str, devices: int) -> None:
        self.port = port
        self.database_url = database_url
        self.devices = devices
        # Every run gets its own 12 hours, all in the past (the pipeline refuses readings
        # stamped more than a day ahead).
        self.start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
        self._runs = 0

    def messages(self, count: int, profiles: tuple[str, ...] = MIX) -> list[tuple[str, bytes]]:
        """`count` distinct messages (a new time range for every call)."""
        self._runs += 1
        start = self.start + timedelta(hours=12 * self._runs)
        stream = message_stream(
            count, start, devices_per_profile=self.devices, profiles=profiles, seed=self._runs
        )
        return [(m.topic, m.payload) for m in stream]

    def consumer(self, mode: str, client_id: str, *extra: str) -> list[str]:
        """The command line of one consumer child process."""
        command = [sys.executable, "-m", "bench.consumer", mode, "--port", str(self.port)]
        command += ["--client-id", client_id, "--database-url", self.database_url]
        return command + list(extra)

    def prepare(self, mode: str, client_ids: list[str], shared: str | None = None) -> None:
        """Create the consumers' persistent sessions so the broker queues a backlog for them."""
        group = ["--shared-group", shared] if shared else []
        for client_id in client_ids:
            subprocess.run(self.consumer(mode, client_id, "--prepare", *group), check=True)

    def drain(
        self, mode: str, client_ids: list[str], expect: int, shared: str | None = None
    ) -> dict:
        """Start the consumers on a queued backlog; time from first arrival to last commit."""
        group = ["--shared-group", shared] if shared else []
        share = expect // len(client_ids)
        processes = [
            subprocess.Popen(
                self.consumer(mode, client_id, "--expect", str(share), *group),
                stdout=subprocess.PIPE,
            )
            for client_id in client_ids
        ]
        watched = _watch(processes, self.database_url.rsplit("/", 1)[1])
        reports = [json.loads(p.communicate(timeout=3600)[0] or b"{}") for p in processes]
        peak, cpu_seconds = watched()
        first = min(r["first"] for r in reports)
        last = max(r["last"] for r in reports)
        messages = sum(r["messages"] for r in reports)
        seconds = last - first
        result = {
            "messages": messages,
            "seconds": round(seconds, 3),
            "messages_per_second": round(messages / seconds, 1),
            "peak_rss_mb": round(peak / 2**20, 1),
            # CPU per message of each component over the whole run (start-up included),
            # and the machine's: what 2 cores can give divided by this is the ceiling.
            "cpu_us_per_message": {
                kind: round(used / messages * 1e6, 1) for kind, used in cpu_seconds.items()
            },
        }
        if mode == "pipeline":
            readings = sum(r["readings"] for r in reports)
            result["readings"] = readings
            result["readings_per_second"] = round(readings / seconds, 1)
        return result

    def backlog_run(
        self, mode: str, count: int, workers: int = 1, profiles: tuple[str, ...] = MIX
    ) -> dict:
        """Publish `count` messages while the consumers are away, then drain them."""
        tag = f"{mode}-{workers}-{self._runs}"
        client_ids = [f"bench-{tag}-{i}" for i in range(workers)]
        shared = f"bench{self._runs}" if workers > 1 else None
        self.prepare(mode, client_ids, shared)
        messages = self.messages(count, profiles)
        _publish(self.port, messages)
        del messages
        return self.drain(mode, client_ids, count, shared)

    def latency_run(self, rate: int, seconds: float) -> dict:
        """Publish at a fixed rate to a running worker; publish-to-commit latency percentiles."""
        count = int(rate * seconds)
        messages = self.messages(count)
        with tempfile.TemporaryDirectory() as scratch:
            times_file = Path(scratch) / "commits.npy"
            client_id = f"bench-latency-{self._runs}"
            self.prepare("pipeline", [client_id])
            worker = subprocess.Popen(
                self.consumer(
                    "pipeline",
                    client_id,
                    "--expect",
                    str(count),
                    "--commit-times",
                    str(times_file),
                ),
                stdout=subprocess.PIPE,
            )
            time.sleep(3)  # the worker connects and its writer process starts
            published, achieved = _publish(self.port, messages, rate)
            worker.communicate(timeout=600)
            commits = np.load(times_file)
        latency = commits[: len(published)] - published[: len(commits)]
        return {
            "target_rate": rate,
            "achieved_publish_rate": round(achieved, 1),
            "messages": int(len(latency)),
            "p50_ms": round(float(np.percentile(latency, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(latency, 99)) * 1000, 1),
            "max_ms": round(float(latency.max()) * 1000, 1),
        }


#: Where CPU time goes while consumers drain: the consumers (MQTT and writer processes),
#: this run's PostgreSQL backends, and the broker.
COMPONENTS = ("consumers", "postgres", "mosquitto")


def _component(process: psutil.Process, consumers: set[int], database: str) -> str | None:
    if process.pid in consumers:
        return "consumers"
    name, cmdline = process.info["name"] or "", " ".join(process.info["cmdline"] or ())
    if name.startswith("postgres") and database in cmdline:
        return "postgres"
    if name == "mosquitto":
        return "mosquitto"
    return None


def _watch(processes: list[subprocess.Popen], database: str):
    """Sample, until the processes exit, their summed RSS (with children) and the CPU
    seconds of each component (the last sample of every process that was seen)."""
    peak = [0]
    cpu: dict[int, tuple[str, float]] = {}
    busy = busy_seconds()

    def sample() -> None:
        handles = [psutil.Process(p.pid) for p in processes]
        while any(p.poll() is None for p in processes):
            total = 0
            consumers: set[int] = set()
            for handle in handles:
                try:
                    family = [handle, *handle.children(recursive=True)]
                    total += sum(member.memory_info().rss for member in family)
                    consumers.update(member.pid for member in family)
                except psutil.NoSuchProcess:
                    continue
            peak[0] = max(peak[0], total)
            for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
                kind = _component(process, consumers, database)
                times = process.info["cpu_times"]
                if kind is not None and times is not None:
                    cpu[process.pid] = (kind, times.user + times.system)
            time.sleep(0.2)

    before = {
        process.pid: process.info["cpu_times"].user + process.info["cpu_times"].system
        for process in psutil.process_iter(["cpu_times"])
        if process.info["cpu_times"] is not None
    }
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def finish() -> tuple[int, dict[str, float]]:
        thread.join()
        seconds = dict.fromkeys(COMPONENTS, 0.0)
        for pid, (kind, used) in cpu.items():
            seconds[kind] += used - before.get(pid, 0.0)
        seconds["machine"] = busy_seconds() - busy
        return peak[0], seconds

    return finish


def _publish(port: int, messages: list[tuple[str, bytes]], rate: float | None = None):
    """Publish at QoS 1 (at `rate` messages/s if given) and wait for every PUBACK."""
    generator = LoadGenerator(port, messages, f"bench-publisher-{time.monotonic_ns()}")
    began = time.monotonic()
    sent = generator.run(rate)
    achieved = len(messages) / (time.monotonic() - began)
    generator.wait_acknowledged()
    return sent, achieved


def main() -> None:
    """Run every measurement and print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="backlog per throughput run")
    parser.add_argument("--gateway-messages", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=1_000_000, help="backlog of the RSS run")
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--devices", type=int, default=200, help="devices per profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    parser.add_argument(
        "--only", default="", help="comma-separated steps to run (default: all), e.g. latency"
    )
    args = parser.parse_args()

    maintenance = os.environ.get(
        "STADSPULS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_url = f"{maintenance.rsplit('/', 1)[0]}/stadspuls_bench_{os.getpid()}"
    backend = prepare_database(Settings(database_url=database_url, metrics_port=0))
    with connect(database_url) as conn:
        write_registry(conn, sample_devices(), sample_groups())
        conn.commit()
    results: dict = {"machine": {"cpus": os.cpu_count(), "backend": backend.version}}
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            running_mosquitto(Path(scratch), persistence=False) as url,
        ):
            bench = Bench(int(url.rsplit(":", 1)[1]), database_url, args.devices)
            results.update(_measure(bench, args))
    finally:
        drop_database(database_url)
    _report(results, args.out)


def _measure(bench: Bench, args: argparse.Namespace) -> dict:
    results: dict = {}
    steps = [
        ("bare_subscriber", lambda: bench.backlog_run("bare", args.messages)),
        ("pipeline_1_worker", lambda: bench.backlog_run("pipeline", args.messages)),
        ("pipeline_2_workers", lambda: bench.backlog_run("pipeline", args.messages, workers=2)),
        (
            "pipeline_gateway_20_readings",
            lambda: bench.backlog_run("pipeline", args.gateway_messages, profiles=("gateway",)),
        ),
        ("latency_fixed_rate", lambda: bench.latency_run(args.rate, args.rate_seconds)),
        ("backlog_drain", lambda: bench.backlog_run("pipeline", args.backlog)),
    ]
    wanted = {name for name in args.only.split(",") if name}
    for name, step in steps:
        if wanted and not any(name.startswith(prefix) for prefix in wanted):
            continue
        print(f"running {name} ...", flush=True)
        results[name] = step()
        print(f"  {json.dumps(results[name])}", flush=True)
    if "bare_subscriber" not in results or "pipeline_2_workers" not in results:
        return results
    bare = results["bare_subscriber"]["messages_per_second"]
    results["ratios"] = {
        "pipeline_1_worker_vs_bare": round(
            results["pipeline_1_worker"]["messages_per_second"] / bare, 3
        ),
        "pipeline_2_workers_vs_bare": round(
            results["pipeline_2_workers"]["messages_per_second"] / bare, 3
        ),
    }
    return results


def _report(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    ratios = results.get("ratios", {})
    print("\nIngest benchmark")
    for name, figures in results.items():
        print(f"  {name}: {figures}")
    print(
        f"  one worker / bare subscriber: {ratios.get('pipeline_1_worker_vs_bare')} (target ≥ 0.8)"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
