"""API benchmark: the NGSI-LD API over a real socket with 100,000 entities loaded.

Run: `python -m bench.api` (or `make bench-api`); needs `wrk` (Debian: `apt-get install -y
wrk`). Prints the figures and writes them to bench/results/api.json with the targets and
whether each is met. Everything runs on 127.0.0.1 and stops by itself: a scratch database
on the local PostgreSQL (dropped at the end), `stadspuls api` (uvicorn) as a child process
per worker count, wrk as the load generator (C, one thread: it takes little of the CPU the
server needs).

The baseline of the same run is the SQL behind each API call, issued by psycopg through the
API's own storage code (EntityStore.get, storage.entity_query.run_query) on a connection set
up as the API's pool sets them up, from 16 concurrent connections: the API's figures are
reported as ratios of it (the API's overhead over its database work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import orjson
import psutil
import psycopg
from psycopg.types.json import set_json_loads

from bench.cpu import busy_seconds
from ngsi.context import ContextResolver
from ngsi.query import EntityQuery
from stadspuls.embedded import free_port
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import drop_database
from storage.entity_query import run_query
from storage.entity_store import EntityStore
from storage.geosql import postgis_available_async

RESULTS = Path(__file__).resolve().parent / "results"
SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"
TRANSPORTATION = SDM.format("Transportation")
ENVIRONMENT = SDM.format("Environment")
CONTEXT_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
QUERY_PATH = "/ngsi-ld/v1/entities?type=TrafficFlowObserved&q=intensity%3E100"
TARGETS = {
    "get_by_id_requests_per_second": 1000,
    "query_requests_per_second": 300,
    "query_p95_ms": 100,
    "batch_upsert_2000_seconds": 1.0,
}
#: Share of each entity type among the loaded entities, and its @context.
KINDS = (
    ("TrafficFlowObserved", 0.4, TRANSPORTATION),
    ("ItemFlowObserved", 0.3, TRANSPORTATION),
    ("AirQualityObserved", 0.3, ENVIRONMENT),
)
GHENT = (3.66, 51.00, 3.79, 51.10)  # west, south, east, north
#: Reports one JSON line after a wrk run: counts, errors and latency percentiles (µs).
WRK_SCRIPT = """
local paths = {}
local next_path = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  next_path = math.random(#paths)
end
function request()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d,'
    .. ' "read_errors": %d, "write_errors": %d, "timeouts": %d, "non_2xx": %d,'
    .. ' "p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d,'
    .. ' "mean_us": %.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
"""


def entity_id(kind: str, number: int) -> str:
    """The id of entity `number` of a type."""
    return f"urn:ngsi-ld:{kind}:gent-{number:06d}"


def make_entity(kind: str, number: int, rng: random.Random, observed: str) -> dict[str, Any]:
    """One realistic entity in Ghent with Smart Data Models attributes (normalized)."""
    west, south, east, north = GHENT
    point = [round(rng.uniform(west, east), 6), round(rng.uniform(south, north), 6)]

    def measured(value: Any, unit: str | None = None) -> dict[str, Any]:
        attribute = {"type": "Property", "value": value, "observedAt": observed}
        return {**attribute, "unitCode": unit} if unit else attribute

    entity: dict[str, Any] = {
        "id": entity_id(kind, number),
        "type": kind,
        "dateObserved": {"type": "Property", "value": observed},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": point}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:gent-{number:06d}"},
    }
    if kind == "TrafficFlowObserved":
        intensity = int(rng.lognormvariate(5.3, 0.9))
        entity |= {
            "intensity": measured(intensity),
            "averageVehicleSpeed": measured(round(rng.uniform(15, 90), 1), "KMH"),
            "occupancy": measured(round(rng.uniform(0, 0.6), 3)),
            "congested": measured(intensity > 900),
            "laneId": {"type": "Property", "value": number % 4 + 1},
            "laneDirection": {"type": "Property", "value": rng.choice(["forward", "backward"])},
            "vehicleType": {"type": "Property", "value": "car"},
            "refRoadSegment": {
                "type": "Relationship",
                "object": f"urn:ngsi-ld:RoadSegment:gent-{number // 4:05d}",
            },
        }
    elif kind == "ItemFlowObserved":
        entity |= {
            "intensity": measured(int(rng.lognormvariate(3.5, 1.0))),
            "itemType": {"type": "Property", "value": rng.choice(["bicycle", "pedestrian"])},
            "direction": {"type": "Property", "value": rng.choice(["inbound", "outbound"])},
        }
    else:
        entity |= {
            "pm25": measured(round(rng.uniform(2, 45), 1), "GQ"),
            "pm10": measured(round(rng.uniform(5, 70), 1), "GQ"),
            "no2": measured(round(rng.uniform(5, 90), 1), "GQ"),
            "temperature": measured(round(rng.uniform(-5, 30), 1), "CEL"),
            "relativeHumidity": measured(round(rng.uniform(0.3, 0.99), 2), "P1"),
            "airQualityLevel": {"type": "Property", "value": rng.choice(["good", "moderate"])},
        }
    return entity


def load_batches(total: int, size: int, seed: int = 1) -> Iterator[tuple[str, bytes, int]]:
    """(@context, body, entity count) of the upserts that load `total` entities."""
    rng = random.Random(seed)
    observed = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind, share, context in KINDS:
        count = int(total * share)
        for start in range(0, count, size):
            numbers = range(start, min(start + size, count))
            body = [make_entity(kind, n, rng, observed) for n in numbers]
            yield context, orjson.dumps(body), len(body)


def link(context: str) -> dict[str, str]:
    """The Link header naming `context`."""
    return {"Link": f"<{context}>; {CONTEXT_REL}"}


@contextmanager
def running_api(database_url: str, workers: int, body_bytes: int) -> Iterator[tuple[str, int]]:
    """`stadspuls api` on a free loopback port until the block ends; its base URL and pid
    (with several workers, the pid of uvicorn's supervisor, their parent)."""
    port = free_port()
    env = {
        **os.environ,
        "STADSPULS_DATABASE_URL": database_url,
        "STADSPULS_AUTH_ENABLED": "false",
        "STADSPULS_API_WORKERS": str(workers),
        "STADSPULS_API_HOST": "127.0.0.1",
        "STADSPULS_API_PORT": str(port),
        "STADSPULS_API_MAX_BODY_BYTES": str(body_bytes),
        "STADSPULS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "stadspuls", "api", "--no-migrate"]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, workers)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stadspuls api exited with {process.returncode}")
        try:
            if httpx.get(base + "/openapi.json", timeout=2).status_code == 200:
                # Every worker has to have started, not only the first to answer.
                children = psutil.Process(process.pid).children(recursive=True)
                if workers == 1 or len(children) >= workers:
                    time.sleep(1.0)
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("stadspuls api did not answer within 60 s")


class CpuMeter:
    """Cores used over a phase by the API server (with its workers), PostgreSQL, wrk and
    other Python processes (the SQL baseline's clients, or whatever else runs here)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start = self._sample()
        self.busy = busy_seconds()
        self.began = time.monotonic()

    def _sample(self) -> dict[int, tuple[str, float]]:
        server: set[int] = set()
        if self.server_pid is not None:
            root = psutil.Process(self.server_pid)
            server = {root.pid, *(c.pid for c in root.children(recursive=True))}
        found = {}
        for process in psutil.process_iter(["pid", "name", "cpu_times"]):
            pid, name, times = (process.info[k] for k in ("pid", "name", "cpu_times"))
            name = name or ""
            if times is None or pid == os.getpid():
                continue
            if pid in server:
                kind = "server"
            elif name.startswith("postgres"):
                kind = "postgres"
            elif name == "wrk":
                kind = "wrk"
            elif name.startswith("python"):
                kind = "other_python"
            else:
                continue
            found[pid] = (kind, times.user + times.system)
        return found

    def cores(self) -> dict[str, float]:
        """Average cores each used since the meter started (per process, so that one that
        ended during the phase counts for nothing rather than a negative)."""
        seconds = time.monotonic() - self.began
        totals = dict.fromkeys(("server", "postgres", "wrk", "other_python"), 0.0)
        for pid, (kind, used) in self._sample().items():
            before = self.start.get(pid)
            totals[kind] += used - (before[1] if before and before[0] == kind else 0.0)
        # Everything busy on the machine: what the others leave out is someone else's load.
        totals["machine"] = busy_seconds() - self.busy
        return {kind: round(used / seconds, 2) for kind, used in totals.items()}


def wrk(base: str, paths: list[str], headers: dict[str, str], seconds: float, clients: int) -> dict:
    """A closed-loop wrk run of `clients` connections cycling through `paths`."""
    with tempfile.TemporaryDirectory() as scratch:
        script, path_file = Path(scratch) / "report.lua", Path(scratch) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        path_file.write_text("\n".join(paths) + "\n")
        command = ["wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds:g}s"]
        command += ["--timeout", "10s", "-s", str(script)]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = subprocess.run(
            [*command, base, "--", str(path_file)], capture_output=True, text=True, check=True
        ).stdout
    line = next(x for x in output.splitlines() if x.startswith("WRK "))
    raw = json.loads(line[4:])
    seconds_run = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "requests": raw["requests"],
        "seconds": round(seconds_run, 2),
        "requests_per_second": round(raw["requests"] / seconds_run, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "non_2xx": raw["non_2xx"],
    }


def http_phase(
    base: str, server_pid: int, paths: list[str], headers: dict[str, str], args: argparse.Namespace
) -> dict:
    """Warm up, then measure `paths` under wrk; the figures and the cores each side used."""
    wrk(base, paths, headers, args.warmup, args.clients)
    meter = CpuMeter(server_pid)
    result = wrk(base, paths, headers, args.seconds, args.clients)
    result["cores"] = meter.cores()
    return result


def batch_phase(client: httpx.Client, rounds: int, size: int) -> dict:
    """Upserts of `size` entities: new ones (created), the same again (replaced), again with
    options=update (merged); then their batch delete. Seconds per request, client-side."""
    rng = random.Random(7)
    observed = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = 900_000
    numbers = range(first, first + size)
    bodies = [
        orjson.dumps([make_entity("TrafficFlowObserved", n, rng, observed) for n in numbers])
        for _ in range(3)
    ]
    ids = orjson.dumps([entity_id("TrafficFlowObserved", n) for n in numbers])
    headers = {"Content-Type": "application/json", **link(TRANSPORTATION)}
    steps = [
        ("create", "upsert", {}, 0, 201),
        ("replace", "upsert", {}, 1, 204),
        ("update", "upsert", {"options": "update"}, 2, 204),
        ("delete", "delete", {}, None, 204),
    ]
    times: dict[str, list[float]] = {name: [] for name, *_ in steps}
    for _ in range(rounds):
        for name, operation, params, body, status in steps:
            content = ids if body is None else bodies[body]
            began = time.perf_counter()
            response = client.post(
                f"/ngsi-ld/v1/entityOperations/{operation}",
                content=content,
                params=params,
                headers=headers,
            )
            times[name].append(time.perf_counter() - began)
            if response.status_code != status:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
    return {
        "entities": size,
        "body_bytes": len(bodies[0]),
        **{
            name: {
                "median_s": round(statistics.median(seconds), 3),
                "max_s": round(max(seconds), 3),
                "runs": len(seconds),
            }
            for name, seconds in times.items()
        },
    }


def load(client: httpx.Client, total: int, size: int) -> dict:
    """Load `total` entities with batch upserts of `size`; timings of the load."""
    seconds: list[float] = []
    began = time.perf_counter()
    loaded = 0
    for context, body, count in load_batches(total, size):
        headers = {"Content-Type": "application/json", **link(context)}
        start = time.perf_counter()
        response = client.post("/ngsi-ld/v1/entityOperations/upsert", content=body, headers=headers)
        seconds.append(time.perf_counter() - start)
        if response.status_code != 201:
            raise RuntimeError(f"load: {response.status_code} {response.text[:300]}")
        loaded += count
    elapsed = time.perf_counter() - began
    return {
        "entities": loaded,
        "seconds": round(elapsed, 1),
        "entities_per_second": round(loaded / elapsed),
        "upsert_median_s": round(statistics.median(seconds), 3),
        "upsert_max_s": round(max(seconds), 3),
    }


def sample_paths(total: int, count: int = 5000) -> list[str]:
    """GET-by-id paths of `count` entities drawn from every type."""
    rng = random.Random(3)
    paths = []
    for _ in range(count):
        kind, share, _ = rng.choice(KINDS)
        paths.append("/ngsi-ld/v1/entities/" + entity_id(kind, rng.randrange(int(total * share))))
    return paths


# --- the SQL baseline: psycopg and the API's own storage code, no HTTP ---


def sql_phase(database_url: str, kind: str, paths: list[str], args: argparse.Namespace) -> dict:
    """`clients` connections spread over `processes` processes running the API's statement
    for `kind` (get: EntityStore.get; query: run_query) in a closed loop."""
    ids = [path.rsplit("/", 1)[1] for path in paths]
    per_process = args.clients // args.sql_processes
    with ProcessPoolExecutor(args.sql_processes) as pool:
        warm = [
            pool.submit(_sql_worker, database_url, kind, ids, per_process, args.warmup, seed)
            for seed in range(args.sql_processes)
        ]
        [future.result() for future in warm]
        meter = CpuMeter(None)
        futures = [
            pool.submit(_sql_worker, database_url, kind, ids, per_process, args.seconds, seed)
            for seed in range(args.sql_processes)
        ]
        latencies = np.concatenate([future.result() for future in futures])
        cores = meter.cores()
    return {
        "queries": int(len(latencies)),
        "queries_per_second": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 3),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 3),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 3),
        "connections": per_process * args.sql_processes,
        "processes": args.sql_processes,
        "cores": cores,
    }


def _sql_worker(
    database_url: str, kind: str, ids: list[str], clients: int, seconds: float, seed: int
) -> np.ndarray:
    return asyncio.run(_sql_clients(database_url, kind, ids, clients, seconds, seed))


async def _sql_clients(
    database_url: str, kind: str, ids: list[str], clients: int, seconds: float, seed: int
) -> np.ndarray:
    query = await traffic_query()
    connections = [await _connect(database_url) for _ in range(clients)]
    postgis = await postgis_available_async(connections[0])
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def client(conn: psycopg.AsyncConnection[Any], rng: random.Random) -> None:
        store = EntityStore(conn)
        while (began := time.perf_counter()) < deadline:
            if kind == "get":
                await store.get("", rng.choice(ids))
            else:
                await run_query(store, "", query, 20, 0, False, postgis=postgis)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(
        *(client(c, random.Random(seed * 100 + n)) for n, c in enumerate(connections))
    )
    for conn in connections:
        await conn.close()
    return np.array(latencies)


async def _connect(database_url: str) -> psycopg.AsyncConnection[Any]:
    """A connection as the API's pool makes them (autocommit, orjson for jsonb)."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    set_json_loads(orjson.loads, conn)
    return conn


async def traffic_query() -> EntityQuery:
    """The benchmark's query, parsed as GET /entities parses its parameters."""
    context = await ContextResolver().resolve(TRANSPORTATION)
    return EntityQuery.from_parameters(context, types="TrafficFlowObserved", q="intensity>100")


class _Recording:
    """A connection that remembers the statements run through it."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.statements: list[Any] = []

    async def execute(self, query: Any, params: Any = None) -> Any:
        self.statements.append(query)
        return await self.conn.execute(query, params)


async def explain(database_url: str) -> dict:
    """The statement the API runs for the benchmark's query, and its plan."""
    conn = await _connect(database_url)
    recording = _Recording(conn)
    store = EntityStore(cast(psycopg.AsyncConnection[Any], recording))
    postgis = await postgis_available_async(conn)
    await run_query(store, "", await traffic_query(), 20, 0, False, postgis=postgis)
    statement = recording.statements[0]
    text = statement if isinstance(statement, str) else statement.as_string(conn)
    cursor = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text)
    plan = [row[0] for row in await cursor.fetchall()]
    await conn.close()
    return {"statement": text, "plan": plan}


def analyze(database_url: str) -> None:
    """VACUUM ANALYZE entities: the planner's statistics of a settled table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE entities")


def check_answers(base: str, paths: list[str]) -> None:
    """The measured requests answer what they should (200, an entity; 20 entities)."""
    headers = link(TRANSPORTATION)
    entity = httpx.get(base + paths[0], headers=headers, timeout=10)
    if entity.status_code != 200 or entity.json().get("id") != paths[0].rsplit("/", 1)[1]:
        raise RuntimeError(f"GET by id: {entity.status_code} {entity.text[:300]}")
    page = httpx.get(base + QUERY_PATH, headers=headers, timeout=10)
    if page.status_code != 200 or len(page.json()) != 20:
        raise RuntimeError(f"query: {page.status_code} {page.text[:300]}")
    if not all(e["intensity"]["value"] > 100 for e in page.json()):
        raise RuntimeError("query: an entity with intensity <= 100 was selected")


def main() -> None:
    """Run every measurement and print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000, help="entities per batch upsert")
    parser.add_argument("--batch-rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=15.0, help="per measured phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure")
    parser.add_argument("--sql-processes", type=int, default=2)
    parser.add_argument(
        "--body-bytes",
        type=int,
        default=Settings().api_max_body_bytes,
        help="STADSPULS_API_MAX_BODY_BYTES of the server",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "api.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.api needs wrk, the HTTP load generator: apt-get install -y wrk")

    maintenance = os.environ.get(
        "STADSPULS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_url = f"{maintenance.rsplit('/', 1)[0]}/stadspuls_bench_api_{os.getpid()}"
    prepare_database(Settings(database_url=database_url, metrics_port=0))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "clients": args.clients, "seconds": args.seconds},
        "targets": TARGETS,
    }
    try:
        results.update(measure(database_url, args))
    finally:
        drop_database(database_url)
    report(results, args.out)


def measure(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every phase of the run."""
    results: dict[str, Any] = {}
    paths = sample_paths(args.entities)
    for number, workers in enumerate(int(w) for w in args.workers.split(",")):
        with running_api(database_url, workers, args.body_bytes) as (base, server_pid):
            with httpx.Client(base_url=base, timeout=60) as client:
                if number == 0:
                    print(f"loading {args.entities} entities ...", flush=True)
                    results["load"] = load(client, args.entities, args.batch)
                    print(f"  {results['load']}", flush=True)
                    analyze(database_url)
                check_answers(base, paths)
                figures: dict[str, Any] = {}
                print(f"workers={workers}: batch upserts ...", flush=True)
                figures["batch_upsert"] = batch_phase(client, args.batch_rounds, args.batch)
                print(f"  {figures['batch_upsert']}", flush=True)
            headers = link(TRANSPORTATION)
            for name, phase_paths in (("get_by_id", paths), ("query", [QUERY_PATH])):
                print(f"workers={workers}: {name} ...", flush=True)
                figures[name] = http_phase(base, server_pid, phase_paths, headers, args)
                print(f"  {figures[name]}", flush=True)
            results[f"workers_{workers}"] = figures
    results["query_statement"] = asyncio.run(explain(database_url))
    results["sql"] = {}
    for name, kind in (("get_by_id", "get"), ("query", "query")):
        print(f"SQL baseline: {name} ...", flush=True)
        results["sql"][name] = sql_phase(database_url, kind, paths, args)
        print(f"  {results['sql'][name]}", flush=True)
    results.update(verdict(results))
    return results


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Overhead ratios against the SQL baseline, pass/fail per worker count, and the best
    worker count: the one meeting most targets, then the one furthest above them."""
    sql = results["sql"]
    runs = {k: v for k, v in results.items() if k.startswith("workers_")}
    overhead = {}
    for run, figures in runs.items():
        for kind in ("get_by_id", "query"):
            api, base = figures[kind], sql[kind]
            overhead[f"{run}_{kind}"] = {
                "latency_p50_api_over_sql": round(api["p50_ms"] / base["p50_ms"], 1),
                "latency_p95_api_over_sql": round(api["p95_ms"] / base["p95_ms"], 1),
                "throughput_api_over_sql": round(
                    api["requests_per_second"] / base["queries_per_second"], 3
                ),
            }
    passed = {run: _passed(figures) for run, figures in runs.items()}

    def merit(run: str) -> tuple[int, float]:
        get, query = runs[run]["get_by_id"], runs[run]["query"]
        headroom = get["requests_per_second"] / TARGETS["get_by_id_requests_per_second"]
        headroom += query["requests_per_second"] / TARGETS["query_requests_per_second"]
        return sum(passed[run].values()), headroom

    best = max(runs, key=merit)
    return {"overhead": overhead, "passed_per_run": passed, "best": best, "passed": passed[best]}


def _passed(figures: dict[str, Any]) -> dict[str, bool]:
    upsert = max(figures["batch_upsert"][k]["median_s"] for k in ("create", "replace"))
    get, query = figures["get_by_id"], figures["query"]
    return {
        "get_by_id": get["requests_per_second"] >= TARGETS["get_by_id_requests_per_second"],
        "query_throughput": query["requests_per_second"] >= TARGETS["query_requests_per_second"],
        "query_p95": query["p95_ms"] < TARGETS["query_p95_ms"],
        "batch_upsert": upsert < TARGETS["batch_upsert_2000_seconds"],
    }


def report(results: dict[str, Any], out: Path) -> None:
    """Print the figures and write them as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("\nAPI benchmark")
    for name, figures in results.items():
        if name != "query_statement":
            print(f"  {name}: {json.dumps(figures)}")
    print("  query statement:", results["query_statement"]["statement"])
    print("  plan:\n    " + "\n    ".join(results["query_statement"]["plan"]))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
