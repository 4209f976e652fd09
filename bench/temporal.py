"""Temporal API benchmark: history reads over HTTP against a naive SQL GROUP BY of the same run.

Run: `python -m bench.temporal` (or `make bench-temporal`). Loads 1,000 traffic loops x 30
days at 5-minute resolution (8,640,000 readings) plus one road segment with a year of
15-minute data (intensity and speed, 70,080 readings) into a scratch database on the local
PostgreSQL by binary COPY, in time order as ingest writes them; builds the hourly and daily
rollups and the hour packs with storage.rollup_refresh.refresh_rollups (timed: the rollup
build cost); starts `stadspuls api` as a child process and measures, with sequential
requests (latency, not throughput):

  (a) one sensor, one year, daily avg/min/max (P1D, Europe/Brussels days; daily rollups)
  (b) 1,000 sensors, one day, hourly avg (PT1H; rollups)
  (c) lastN=100 for 100 entities (normalized; and temporalValues)
  (d) p85 speed per week of one segment over a year (P1W; percentile extension: raw rows)

The baseline of the same run is a naive SQL GROUP BY over the raw rows for (a), (b) (and,
for information, percentile_cont for (d)), issued with psycopg as many times as the API
request was (sequentially, every row fetched). Each query is timed --requests times (100)
after --warmup, or for --seconds (20) once 20 requests are done, whichever ends first.
Every answer is checked (status, number of entities and periods, no nulls) and compared
value by value with the naive query's, so an error path cannot be measured by mistake.
Prints a table and writes bench/results/temporal.json with the targets and `passed` flags.
Everything runs on 127.0.0.1 and stops by itself; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import psutil
import psycopg
from psycopg import sql

from bench.api import running_api
from bench.cpu import busy_seconds
from ngsi.aggregate import period_edges
from ngsi.temporal_params import parse_duration
from ngsi.vocabulary import IngestVocabulary
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import drop_database
from storage.entities import STAGING_TABLE as ENTITY_STAGING
from storage.entities import write_entities
from storage.partitions import MonthlyPartitions, partition_name
from storage.records import EntityFragment
from storage.rollup_refresh import refresh_rollups
from storage.rollups import record_pending
from storage.writer import _OBSERVATION_COLUMNS

RESULTS = Path(__file__).resolve().parent / "results"
TRANSPORTATION = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld"
)
LINK = {"Link": f'<{TRANSPORTATION}>; rel="http://www.w3.org/ns/json-ld#context"'}
ZONE_NAME = "Europe/Brussels"
ZONE = ZoneInfo(ZONE_NAME)
#: The data ends at local midnight on Monday 23 November 2026 (a fixed end keeps runs
#: comparable); the year before it holds both daylight-saving changes, the 30 days the
#: 25-hour day of 25 October.
END = datetime(2026, 11, 23, tzinfo=ZONE).astimezone(UTC)
KIND = "TrafficFlowObserved"
LOOP_ID = "urn:ngsi-ld:TrafficFlowObserved:gent-loop-{:04d}"
SEGMENT_ID = "urn:ngsi-ld:TrafficFlowObserved:gent-ring-R40N"  # sorts after the loops
#: The plain PostgreSQL rollups the build writes (hourly, daily, hour packs).
ROLLUP_TABLES = ("observation_rollups", "observation_daily_rollups", "observation_hour_packs")
TARGETS = {"a_p95_ms": 50.0, "b_p95_ms": 300.0, "rollup_speedup_over_naive": 10.0}
PG_SETTINGS = (
    "server_version",
    "jit",
    "shared_buffers",
    "work_mem",
    "max_parallel_workers_per_gather",
)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in Unix microseconds
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def iso(moment: datetime) -> str:
    """An instant as the query parameters take it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_us(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Plan:
    """What is loaded: names (expanded as ingest expands them) and time ranges."""

    sensors: int
    days: int
    loop_step_minutes: int = 5
    segment_step_minutes: int = 15

    @property
    def loop_ids(self) -> list[str]:
        return [LOOP_ID.format(n) for n in range(self.sensors)]

    @property
    def loop_start(self) -> datetime:
        return END - timedelta(days=self.days)

    @property
    def year_start(self) -> datetime:
        return END - timedelta(days=365)

    def iri(self, term: str) -> str:
        return IngestVocabulary().attribute(KIND, term)

    @property
    def type_iri(self) -> str:
        return IngestVocabulary().entity_type(KIND)


# --- realistic values -------------------------------------------------------------------------


def _local_clock(times_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of the day (fractional) and weekday (Monday 0) in Brussels of Unix µs times."""
    hours = times_us // 3_600_000_000
    unique = np.unique(hours)
    offsets = np.array([_utc_offset_seconds(int(h) * 3600) for h in unique])
    local = times_us / 1e6 + offsets[np.searchsorted(unique, hours)]
    return (local % 86400) / 3600, ((local // 86400).astype(np.int64) + 3) % 7


def _utc_offset_seconds(unix_seconds: int) -> float:
    offset = datetime.fromtimestamp(unix_seconds, UTC).astimezone(ZONE).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def traffic_profile(times_us: np.ndarray) -> np.ndarray:
    """Relative traffic (about 0.05 at night, 1 at the evening peak of a weekday)."""
    hours, weekday = _local_clock(times_us)
    weekdays = 0.05 + 0.45 * _bump(hours, 12.5, 3.5) + 0.8 * _bump(hours, 8.0, 1.0)
    weekdays += 0.9 * _bump(hours, 17.2, 1.4)
    weekends = 0.05 + 0.55 * _bump(hours, 14.0, 3.5)
    return np.where(weekday >= 5, weekends, weekdays)


def summer_dip(times_us: np.ndarray) -> np.ndarray:
    """Less traffic in the summer holidays (July and August)."""
    day_of_year = (times_us // _DAY_US) % 365.25
    return 1.0 - 0.2 * _bump(day_of_year, 205.0, 22.0)


# --- binary COPY rows -------------------------------------------------------------------------


def encode_rows(
    ids: np.ndarray,
    entity_type: str,
    attribute: str,
    times_us: np.ndarray,
    values: np.ndarray,
    unit: str | None,
) -> bytes:
    """Observation rows (tenant '', default dataset, no value_json) as binary COPY tuples, in
    `_OBSERVATION_COLUMNS` order; `ids` is an array of equally long ASCII ids, one per row."""
    id_len = ids.dtype.itemsize
    type_b, attribute_b = entity_type.encode(), attribute.encode()
    fields: list[tuple[str, str]] = [
        ("fields", ">i2"),
        ("tenant_len", ">i4"),
        ("id_len", ">i4"),
        ("id", f"S{id_len}"),
        ("type_len", ">i4"),
        ("type", f"S{len(type_b)}"),
        ("attribute_len", ">i4"),
        ("attribute", f"S{len(attribute_b)}"),
        ("dataset_len", ">i4"),
        ("time_len", ">i4"),
        ("time", ">i8"),
        ("number_len", ">i4"),
        ("number", ">f8"),
        ("json_len", ">i4"),
        ("unit_len", ">i4"),
    ]
    if unit:
        fields.append(("unit", f"S{len(unit)}"))
    rows = np.empty(len(times_us), dtype=fields)
    rows["fields"] = 9
    rows["tenant_len"] = 0
    rows["id_len"] = id_len
    rows["id"] = ids
    rows["type_len"] = len(type_b)
    rows["type"] = type_b
    rows["attribute_len"] = len(attribute_b)
    rows["attribute"] = attribute_b
    rows["dataset_len"] = 0
    rows["time_len"] = 8
    rows["time"] = times_us - _PG_EPOCH_US
    rows["number_len"] = 8
    rows["number"] = values
    rows["json_len"] = -1
    rows["unit_len"] = len(unit) if unit else -1
    if unit:
        rows["unit"] = unit.encode()
    return rows.tobytes()


def _grid(origin_us: int, step_us: int, low_us: int, high_us: int) -> np.ndarray:
    """Times origin + k*step within [low, high)."""
    first = max(0, -(-(low_us - origin_us) // step_us))
    last = -(-(high_us - origin_us) // step_us)
    return origin_us + np.arange(first, last, dtype=np.int64) * step_us


def _utc_days(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights (a chunk never spans two monthly partitions)."""
    low = start
    while low < end:
        midnight = low.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        high = min(midnight, end)
        yield low, high
        low = high


class Loader:
    """Generates the readings chunk by chunk (a UTC day) in time order, as ingest writes them."""

    def __init__(self, plan: Plan, seed: int = 42) -> None:
        self.plan = plan
        self.rng = np.random.default_rng(seed)
        #: Vehicles per 5 minutes of each loop at relative traffic 1.
        self.scales = self.rng.lognormal(np.log(35.0), 0.6, plan.sensors)
        self.loop_ids = np.array([i.encode() for i in plan.loop_ids])
        self.latest: dict[str, tuple[int, float]] = {}  # attribute term -> (time, value)
        self.latest_loops: tuple[int, np.ndarray] | None = None

    def chunk(self, low: datetime, high: datetime) -> tuple[bytes, int]:
        """The COPY tuples of [low, high) and their count: the loops' readings time-major
        (every loop at one instant, then the next instant), then the segment's."""
        plan, low_us, high_us = self.plan, unix_us(low), unix_us(high)
        parts: list[bytes] = []
        count = 0
        loop_times = _grid(
            unix_us(plan.loop_start), plan.loop_step_minutes * _MINUTE_US, low_us, high_us
        )
        loop_times = loop_times[loop_times >= unix_us(plan.loop_start)]
        if len(loop_times):
            expected = np.outer(traffic_profile(loop_times), self.scales)
            values = self.rng.poisson(expected).astype(np.float64)
            ids = np.tile(self.loop_ids, len(loop_times))
            times = np.repeat(loop_times, plan.sensors)
            parts.append(
                encode_rows(ids, plan.type_iri, plan.iri("intensity"), times, values.ravel(), None)
            )
            count += values.size
            self.latest_loops = (int(loop_times[-1]), values[-1])
        seg_times = _grid(
            unix_us(plan.year_start), plan.segment_step_minutes * _MINUTE_US, low_us, high_us
        )
        if len(seg_times):
            profile = traffic_profile(seg_times) * summer_dip(seg_times)
            intensity = self.rng.poisson(300.0 * profile).astype(np.float64)
            congestion = np.clip(profile - 0.45, 0, None) ** 1.3
            noise = self.rng.normal(0.0, 3.5, len(seg_times))
            speed = np.round(np.clip(49.0 - 45.0 * congestion + noise, 4.0, 75.0), 1)
            ids = np.full(len(seg_times), SEGMENT_ID.encode())
            for term, values, unit in (
                ("intensity", intensity, None),
                ("averageVehicleSpeed", speed, "KMH"),
            ):
                parts.append(
                    encode_rows(ids, plan.type_iri, plan.iri(term), seg_times, values, unit)
                )
                count += len(values)
                self.latest[term] = (int(seg_times[-1]), float(values[-1]))
        return b"".join(parts), count


def load_observations(database_url: str, plan: Plan) -> tuple[dict[str, Any], Loader]:
    """Binary COPY of every reading into its monthly partition, one transaction per month,
    and the loaded range recorded in rollup_pending (as every writer does)."""
    loader = Loader(plan)
    generate = copy = 0.0
    rows = 0
    meter = CpuMeter(None, database_url.rsplit("/", 1)[1])
    began = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        months = sorted({(day.year, day.month) for day, _ in _utc_days(plan.year_start, END)})
        MonthlyPartitions().ensure(conn, [*months, _next(months[-1])])
        by_month: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}
        for low, high in _utc_days(plan.year_start, END):
            by_month.setdefault((low.year, low.month), []).append((low, high))
        columns = _OBSERVATION_COLUMNS
        for month, days in by_month.items():
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(partition_name(month)), sql.SQL(columns)
            )
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as out:
                out.write(_COPY_SIGNATURE)
                for low, high in days:
                    t0 = time.perf_counter()
                    data, count = loader.chunk(low, high)
                    t1 = time.perf_counter()
                    out.write(data)
                    copy += time.perf_counter() - t1
                    generate += t1 - t0
                    rows += count
                out.write(_COPY_TRAILER)
            print(f"  {partition_name(month)}: {rows:,} rows so far", flush=True)
        with conn.transaction(), conn.cursor() as cursor:
            record_pending(cursor, [("", plan.year_start, END)])
        backend = backend_cpu_seconds(conn)
    seconds = time.perf_counter() - began
    cores = with_backend(meter.cores(), backend, seconds)
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_second": round(rows / seconds),
        "client_generate_seconds": round(generate, 1),
        "copy_seconds": round(copy, 1),
        "postgres_backend_cpu_seconds": backend,
        "cores": cores,
        "partitions": len(by_month),
    }, loader


def backend_cpu_seconds(conn: psycopg.Connection[Any]) -> float:
    """CPU seconds the connection's PostgreSQL backend has used (it ends with the connection,
    before a CpuMeter could see it)."""
    times = psutil.Process(conn.info.backend_pid).cpu_times()
    return round(times.user + times.system, 1)


def with_backend(cores: dict[str, float], backend_cpu: float, seconds: float) -> dict[str, float]:
    """A meter's figures with the phase's own backend (gone before the meter looked) put
    under postgres instead of everything_else."""
    postgres = round(backend_cpu / seconds, 2)
    rest = cores["everything_else"] - postgres + cores["postgres"]
    return cores | {"postgres": postgres, "everything_else": round(max(0.0, rest), 2)}


def _next(month: tuple[int, int]) -> tuple[int, int]:
    return (month[0] + 1, 1) if month[1] == 12 else (month[0], month[1] + 1)


def load_entities(database_url: str, plan: Plan, loader: Loader) -> int:
    """The latest state of every sensor in `entities`, written as ingest writes it."""
    rng = np.random.default_rng(7)
    iri = plan.iri
    fragments = []

    def stamp(micros: int) -> tuple[datetime, str]:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        return moment, moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def point() -> dict[str, Any]:
        lon, lat = rng.uniform(3.66, 3.79), rng.uniform(51.00, 51.10)
        return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}

    assert loader.latest_loops is not None
    loop_time, loop_values = loader.latest_loops
    observed, text = stamp(loop_time)
    for n, entity_id in enumerate(plan.loop_ids):
        attributes = {
            iri("intensity"): {
                "type": "Property",
                "value": float(loop_values[n]),
                "observedAt": text,
            },
            iri("location"): {"type": "GeoProperty", "value": point()},
            iri("laneId"): {"type": "Property", "value": n % 3 + 1},
            iri("refRoadSegment"): {
                "type": "Relationship",
                "object": f"urn:ngsi-ld:RoadSegment:gent-{n // 3:04d}",
            },
        }
        fragments.append(
            EntityFragment("", entity_id, plan.type_iri, attributes, observed, observed)
        )
    segment: dict[str, Any] = {iri("location"): {"type": "GeoProperty", "value": point()}}
    times = []
    for term, (micros, value) in loader.latest.items():
        moment, text = stamp(micros)
        times.append(moment)
        segment[iri(term)] = {"type": "Property", "value": value, "observedAt": text}
        if term == "averageVehicleSpeed":
            segment[iri(term)]["unitCode"] = "KMH"
    fragments.append(EntityFragment("", SEGMENT_ID, plan.type_iri, segment, min(times), max(times)))
    with psycopg.connect(database_url) as conn, conn.transaction(), conn.cursor() as cursor:
        cursor.execute(ENTITY_STAGING)
        return write_entities(cursor, fragments)


def postgres_settings(database_url: str) -> dict[str, str]:
    """The server's version and the settings that shape these plans."""
    found = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in PG_SETTINGS:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            found[name] = str(row[0]) if row else ""
    return found


def vacuum(database_url: str, table: str) -> float:
    """VACUUM ANALYZE (what autovacuum does to a settled table: statistics, BRIN summaries,
    visibility map); its seconds."""
    began = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    return round(time.perf_counter() - began, 1)


def build_rollups(database_url: str) -> dict[str, Any]:
    """refresh_rollups until nothing is pending (settle 0: the load is over, no hour is busy;
    otherwise the defaults the ingest worker uses: 24 hours per call and tenant)."""
    calls = 0
    meter = CpuMeter(None, database_url.rsplit("/", 1)[1])
    began = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        while refresh_rollups(conn, settle=timedelta(0)):
            calls += 1
        seconds = time.perf_counter() - began
        pending = conn.execute("SELECT count(*) FROM rollup_pending").fetchone()
        rollups = conn.execute("SELECT count(*) FROM observation_rollups").fetchone()
        days = conn.execute("SELECT count(*) FROM observation_daily_rollups").fetchone()
        packs = conn.execute("SELECT count(*) FROM observation_hour_packs").fetchone()
        conn.rollback()
        backend = backend_cpu_seconds(conn)
    if pending != (0,):
        raise RuntimeError(f"rollup ranges still pending after the refresh: {pending}")
    return {
        "seconds": round(seconds, 1),
        "refresh_calls": calls,
        "postgres_backend_cpu_seconds": backend,
        "cores": with_backend(meter.cores(), backend, seconds),
        "rollup_rows": rollups[0] if rollups else 0,
        "daily_rollup_rows": days[0] if days else 0,
        "hour_pack_rows": packs[0] if packs else 0,
    }


# --- measuring --------------------------------------------------------------------------------


class CpuMeter:
    """Cores used over a phase: the API server (with its workers), this database's PostgreSQL
    backends, the benchmark's own process, and everything else on the machine (other
    databases' backends, PostgreSQL's background processes, other engineers' work)."""

    KINDS = ("server", "postgres", "bench_client")

    def __init__(self, server_pid: int | None, database: str) -> None:
        self.server_pid, self.database = server_pid, database
        self.start = self._sample()
        self.busy = busy_seconds()
        self.began = time.monotonic()

    def _sample(self) -> dict[int, tuple[str, float]]:
        server: set[int] = set()
        if self.server_pid is not None:
            root = psutil.Process(self.server_pid)
            server = {root.pid, *(c.pid for c in root.children(recursive=True))}
        found = {}
        for process in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
            pid, name, cmdline, times = (
                process.info[k] for k in ("pid", "name", "cmdline", "cpu_times")
            )
            if times is None:
                continue
            if pid == os.getpid():
                kind = "bench_client"
            elif pid in server:
                kind = "server"
            elif (name or "").startswith("postgres") and self.database in " ".join(cmdline or ()):
                kind = "postgres"
            else:
                continue
            found[pid] = (kind, times.user + times.system)
        return found

    def cores(self) -> dict[str, float]:
        """Average cores each used since the meter started."""
        seconds = time.monotonic() - self.began
        totals = dict.fromkeys(self.KINDS, 0.0)
        for pid, (kind, used) in self._sample().items():
            before = self.start.get(pid)
            totals[kind] += used - (before[1] if before and before[0] == kind else 0.0)
        machine = busy_seconds() - self.busy
        totals["everything_else"] = max(0.0, machine - sum(totals.values()))
        totals["machine"] = machine
        return {kind: round(used / seconds, 2) for kind, used in totals.items()}


def _stats(seconds: list[float]) -> dict[str, Any]:
    ms = np.array(seconds) * 1000
    return {
        "runs": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "min_ms": round(float(ms.min()), 2),
        "max_ms": round(float(ms.max()), 2),
    }


@dataclass(frozen=True)
class Budget:
    """How often each query is timed: `requests` times after `warmup`, but stopping after
    `seconds` once `min_requests` are done (a slow query must not stretch the run)."""

    requests: int
    warmup: int
    seconds: float
    min_requests: int = 20

    def same_as(self, stats: dict[str, Any]) -> Budget:
        """Exactly as many timed calls as a phase that ran with this budget made."""
        return Budget(stats["runs"], self.warmup, float("inf"), stats["runs"])

    def timed(self, call: Callable[[], object]) -> list[float]:
        """Seconds of each timed call."""
        for _ in range(self.warmup):
            call()
        seconds: list[float] = []
        deadline = time.perf_counter() + self.seconds
        while len(seconds) < self.requests:
            began = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - began)
            if len(seconds) >= self.min_requests and began > deadline:
                break
        return seconds


def http_phase(
    client: httpx.Client, url: str, budget: Budget, meter: Callable[[], CpuMeter]
) -> tuple[dict[str, Any], Any]:
    """Sequential GETs of `url`; latency client-side (to the last byte) and the first
    answer's JSON for checking. Every measured answer must be a 200 of the same size."""
    first = client.get(url)
    if first.status_code != 200:
        raise RuntimeError(f"{url}: {first.status_code} {first.text[:500]}")
    sizes = set()

    def call() -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:500]}")
        sizes.add(len(response.content))

    cpu = meter()
    seconds = budget.timed(call)
    stats = _stats(seconds) | {"response_bytes": len(first.content), "cores": cpu.cores()}
    if sizes != {len(first.content)}:
        raise RuntimeError(f"{url}: answers of sizes {sorted(sizes)}, checked {stats}")
    return stats, first.json()


def sql_phase(
    conn: psycopg.Connection[Any],
    statement: str,
    params: dict[str, Any],
    budget: Budget,
    meter: Callable[[], CpuMeter],
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The naive statement, timed as the API is (every row fetched to the client)."""
    rows = conn.execute(statement, params).fetchall()
    cpu = meter()
    seconds = budget.timed(lambda: conn.execute(statement, params).fetchall())
    return _stats(seconds) | {"rows": len(rows), "cores": cpu.cores()}, rows


NAIVE_DAILY = """
SELECT date_trunc('day', observed_at, %(zone)s) AS day,
       avg(value_num), min(value_num), max(value_num)
FROM observations
WHERE tenant = '' AND entity_id = %(id)s AND attribute = %(attribute)s AND dataset_id = ''
  AND observed_at >= %(start)s AND observed_at < %(end)s
GROUP BY day ORDER BY day
"""
NAIVE_HOURLY = """
SELECT entity_id, date_trunc('hour', observed_at, %(zone)s) AS hour, avg(value_num)
FROM observations
WHERE tenant = '' AND entity_id = ANY(%(ids)s) AND attribute = %(attribute)s
  AND dataset_id = '' AND observed_at >= %(start)s AND observed_at < %(end)s
GROUP BY entity_id, hour ORDER BY entity_id, hour
"""
NAIVE_WEEKLY_P85 = """
SELECT date_trunc('week', observed_at, %(zone)s) AS week,
       percentile_cont(0.85) WITHIN GROUP (ORDER BY value_num)
FROM observations
WHERE tenant = '' AND entity_id = %(id)s AND attribute = %(attribute)s AND dataset_id = ''
  AND observed_at >= %(start)s AND observed_at < %(end)s
GROUP BY week ORDER BY week
"""


def _periods(start: datetime, end: datetime, duration: str) -> int:
    return len(period_edges(start, end, parse_duration(duration), ZONE)) - 1


def _series(entity: dict[str, Any], attribute: str, method: str, periods: int) -> np.ndarray:
    """One aggregated series of an answer, checked: every period there and none null."""
    triples = entity[attribute][method]
    if len(triples) != periods:
        raise RuntimeError(f"{entity['id']} {method}: {len(triples)} periods, not {periods}")
    values = [value for value, _, _ in triples]
    if any(value is None for value in values):
        raise RuntimeError(f"{entity['id']} {method}: a period without a value")
    return np.array(values, dtype=np.float64)


def _same(name: str, api: np.ndarray, naive: np.ndarray, decimals: int = 9) -> None:
    if api.shape != naive.shape or not np.allclose(api, naive, rtol=10**-decimals, atol=1e-9):
        difference = np.abs(api - naive).max() if api.shape == naive.shape else "shape"
        raise RuntimeError(f"{name}: the API and the naive SQL disagree ({difference})")


def _url(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params, safe=':,', quote_via=quote)}"


def measure(database_url: str, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """The four queries over HTTP and the naive baselines, interleaved per query."""
    database = database_url.rsplit("/", 1)[1]
    year = {"timerel": "between", "timeAt": iso(plan.year_start), "endTimeAt": iso(END)}
    day_start = END - timedelta(days=1)
    day = {"timerel": "between", "timeAt": iso(day_start), "endTimeAt": iso(END)}
    aggregated = {"options": "aggregatedValues"}
    queries = {
        "a_year_daily_avg_min_max": _url(
            f"/ngsi-ld/v1/temporal/entities/{SEGMENT_ID}",
            attrs="intensity",
            **aggregated,
            aggrMethods="avg,min,max",
            aggrPeriodDuration="P1D",
            **year,
        ),
        "b_1000_sensors_day_hourly_avg": _url(
            "/ngsi-ld/v1/temporal/entities",
            type=KIND,
            attrs="intensity",
            **aggregated,
            aggrMethods="avg",
            aggrPeriodDuration="PT1H",
            **day,
            limit=str(min(plan.sensors, 1000)),
        ),
        "c_lastN_100_of_100_entities": _url(
            "/ngsi-ld/v1/temporal/entities",
            type=KIND,
            id=",".join(plan.loop_ids[:: max(1, plan.sensors // 100)][:100]),
            attrs="intensity",
            lastN="100",
            limit="100",
        ),
        "d_year_weekly_p85_speed": _url(
            f"/ngsi-ld/v1/temporal/entities/{SEGMENT_ID}",
            attrs="averageVehicleSpeed",
            **aggregated,
            aggrMethods="p85",
            aggrPeriodDuration="P1W",
            **year,
        ),
    }
    queries["c_lastN_100_of_100_entities_temporalValues"] = (
        queries["c_lastN_100_of_100_entities"] + "&options=temporalValues"
    )
    results: dict[str, Any] = {"requests": queries}
    idle = CpuMeter(None, database)
    time.sleep(3.0)
    results["cores_before_measuring"] = idle.cores()  # nothing of ours runs: others' load

    def meter_for(pid: int | None) -> Callable[[], CpuMeter]:
        return lambda: CpuMeter(pid, database)

    budget = Budget(args.requests, args.warmup, args.seconds)
    naive_conn = psycopg.connect(database_url, autocommit=True)
    common: dict[str, Any] = {"zone": ZONE_NAME, "start": plan.year_start, "end": END}
    with (
        naive_conn,
        running_api(database_url, args.workers, Settings().api_max_body_bytes) as (base, pid),
        httpx.Client(base_url=base, headers=LINK, timeout=120) as client,
    ):
        api_meter, sql_meter = meter_for(pid), meter_for(None)

        # (a) one sensor, one year, daily avg/min/max
        name = "a_year_daily_avg_min_max"
        print(f"{name} ...", flush=True)
        api, answer = http_phase(client, queries[name], budget, api_meter)
        params = common | {"id": SEGMENT_ID, "attribute": plan.iri("intensity")}
        naive, rows = sql_phase(naive_conn, NAIVE_DAILY, params, budget.same_as(api), sql_meter)
        periods = _periods(plan.year_start, END, "P1D")
        for column, method in enumerate(("avg", "min", "max"), start=1):
            _same(
                f"{name} {method}",
                _series(answer, "intensity", method, periods),
                np.array([row[column] for row in rows], dtype=np.float64),
            )
        results[name] = {"api": api, "naive_sql": naive, "periods": periods}

        # (b) 1,000 sensors, one day, hourly avg
        name = "b_1000_sensors_day_hourly_avg"
        print(f"{name} ...", flush=True)
        api, answer = http_phase(client, queries[name], budget, api_meter)
        params = common | {
            "ids": plan.loop_ids[:1000],
            "attribute": plan.iri("intensity"),
            "start": day_start,
        }
        naive, rows = sql_phase(naive_conn, NAIVE_HOURLY, params, budget.same_as(api), sql_meter)
        periods = _periods(day_start, END, "PT1H")
        ids = [entity["id"] for entity in answer]
        if ids != plan.loop_ids[:1000]:
            raise RuntimeError(f"{name}: {len(ids)} entities, not the {plan.sensors} loops")
        api_values = np.concatenate([_series(e, "intensity", "avg", periods) for e in answer])
        naive_values = np.array([row[2] for row in rows], dtype=np.float64)
        _same(name, api_values, naive_values)
        results[name] = {
            "api": api,
            "naive_sql": naive,
            "entities": len(answer),
            "periods": periods,
        }

        # (c) lastN=100 of 100 entities (normalized, then temporalValues)
        for name in ("c_lastN_100_of_100_entities", "c_lastN_100_of_100_entities_temporalValues"):
            print(f"{name} ...", flush=True)
            api, answer = http_phase(client, queries[name], budget, api_meter)
            check_last_n(name, answer, plan)
            results[name] = {"api": api, "entities": len(answer), "instances_per_entity": 100}

        # (d) p85 of speed per week over a year, one segment
        name = "d_year_weekly_p85_speed"
        print(f"{name} ...", flush=True)
        api, answer = http_phase(client, queries[name], budget, api_meter)
        params = common | {"id": SEGMENT_ID, "attribute": plan.iri("averageVehicleSpeed")}
        naive, rows = sql_phase(
            naive_conn, NAIVE_WEEKLY_P85, params, budget.same_as(api), sql_meter
        )
        periods = _periods(plan.year_start, END, "P1W")
        _same(
            name,
            _series(answer, "averageVehicleSpeed", "p85", periods),
            np.array([row[1] for row in rows], dtype=np.float64),
        )
        results[name] = {"api": api, "naive_sql": naive, "periods": periods}
        results["statements"] = {
            "a": NAIVE_DAILY.strip(),
            "b": NAIVE_HOURLY.strip(),
            "d": NAIVE_WEEKLY_P85.strip(),
        }
    return results


def check_last_n(name: str, answer: list[dict[str, Any]], plan: Plan) -> None:
    """100 entities, each with its 100 newest readings of intensity, oldest first."""
    newest = END - timedelta(minutes=plan.loop_step_minutes)
    if len(answer) != 100:
        raise RuntimeError(f"{name}: {len(answer)} entities, not 100")
    for entity in answer:
        attribute = entity["intensity"]
        if isinstance(attribute, dict):  # temporalValues
            pairs = attribute["values"]
            values, stamps = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            values = [i["value"] for i in attribute]
            stamps = [i["observedAt"] for i in attribute]
        if len(values) != 100 or any(v is None for v in values):
            raise RuntimeError(f"{name}: {entity['id']} has {len(values)} instances, not 100")
        last = datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
        if last != newest or stamps != sorted(stamps):
            raise RuntimeError(f"{name}: {entity['id']} does not end with the newest reading")


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios naive/API and pass/fail per target."""
    ratios = {}
    for name in ("a_year_daily_avg_min_max", "b_1000_sensors_day_hourly_avg"):
        api, naive = results[name]["api"], results[name]["naive_sql"]
        ratios[name] = {
            "p50_naive_over_api": round(naive["p50_ms"] / api["p50_ms"], 2),
            "p95_naive_over_api": round(naive["p95_ms"] / api["p95_ms"], 2),
        }
    d = results["d_year_weekly_p85_speed"]
    ratios["d_year_weekly_p85_speed (no rollup applies)"] = {
        "p50_naive_over_api": round(d["naive_sql"]["p50_ms"] / d["api"]["p50_ms"], 2),
        "p95_naive_over_api": round(d["naive_sql"]["p95_ms"] / d["api"]["p95_ms"], 2),
    }
    a, b = results["a_year_daily_avg_min_max"], results["b_1000_sensors_day_hourly_avg"]
    speedup = TARGETS["rollup_speedup_over_naive"]
    passed = {
        "a_p95_under_50_ms": a["api"]["p95_ms"] < TARGETS["a_p95_ms"],
        "b_p95_under_300_ms": b["api"]["p95_ms"] < TARGETS["b_p95_ms"],
        "a_10x_faster_than_naive_p50": ratios["a_year_daily_avg_min_max"]["p50_naive_over_api"]
        >= speedup,
        "b_10x_faster_than_naive_p50": ratios["b_1000_sensors_day_hourly_avg"]["p50_naive_over_api"]
        >= speedup,
    }
    return {"ratios": ratios, "passed": passed}


def report(results: dict[str, Any], out: Path) -> None:
    """Print the table and write the JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("\nTemporal API benchmark")
    print(f"  load: {json.dumps(results['load'])}")
    print(f"  rollup build: {json.dumps(results['rollup_build'])}")
    print(f"  PostgreSQL: {json.dumps(results['postgres'])}")
    print(
        f"  cores used by others before measuring: {results['queries']['cores_before_measuring']}"
    )
    header = f"  {'query':<44} {'API p50':>9} {'API p95':>9} {'SQL p50':>9} {'SQL p95':>9}"
    print(header + f" {'SQL/API':>8}  cores (server / postgres / else)")
    for name, figures in results["queries"].items():
        if not isinstance(figures, dict) or "api" not in figures:
            continue
        api, naive = figures["api"], figures.get("naive_sql")
        line = f"  {name:<44} {api['p50_ms']:>9.1f} {api['p95_ms']:>9.1f}"
        if naive:
            ratio = naive["p50_ms"] / api["p50_ms"]
            line += f" {naive['p50_ms']:>9.1f} {naive['p95_ms']:>9.1f} {ratio:>8.1f}"
        else:
            line += f" {'':>9} {'':>9} {'':>8}"
        cores = api["cores"]
        line += f"  {cores['server']} / {cores['postgres']} / {cores['everything_else']}"
        print(line)
    print(f"  targets: {json.dumps(results['targets'])}")
    print(f"  passed: {json.dumps(results['passed'])}")
    print(f"written to {out}")


def main() -> None:
    """Load, build the rollups, measure, and report; the scratch database is always dropped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000, help="5-minute traffic loops")
    parser.add_argument("--days", type=int, default=30, help="of 5-minute data per loop")
    parser.add_argument("--requests", type=int, default=100, help="measured per query")
    parser.add_argument("--warmup", type=int, default=5, help="requests before measuring")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="per query: stop after this (20 at least)"
    )
    parser.add_argument(
        "--pg-options",
        default="",
        help='PGOPTIONS for every connection, API included (e.g. "-c jit=off"); default: none',
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the API")
    parser.add_argument("--out", type=Path, default=RESULTS / "temporal.json")
    args = parser.parse_args()
    if args.sensors < 100:
        sys.exit("--sensors must be at least 100 (query c reads 100 of them)")

    maintenance = os.environ.get(
        "STADSPULS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_url = f"{maintenance.rsplit('/', 1)[0]}/stadspuls_bench_temporal_{os.getpid()}"
    if args.pg_options:
        os.environ["PGOPTIONS"] = args.pg_options  # libpq: this process and the API's
    plan = Plan(args.sensors, args.days)
    began = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "data": {
            "loops": plan.sensors,
            "loop_days": plan.days,
            "loop_step_minutes": plan.loop_step_minutes,
            "segment_days": 365,
            "segment_step_minutes": plan.segment_step_minutes,
            "end": iso(END),
            "time_zone": ZONE_NAME,
            "entity_type": plan.type_iri,
        },
        "settings": {
            "api_workers": args.workers,
            "requests": args.requests,
            "warmup": args.warmup,
            "seconds_per_query": args.seconds,
            "pg_options": args.pg_options,
        },
        "targets": TARGETS,
    }
    try:
        backend = prepare_database(Settings(database_url=database_url, metrics_port=0))
        if backend.name != "postgres":
            sys.exit("bench.temporal loads monthly partitions: it needs plain PostgreSQL")
        results["postgres"] = postgres_settings(database_url)
        print(f"loading {plan.sensors} loops x {plan.days} days + one segment x 365 days ...")
        results["load"], loader = load_observations(database_url, plan)
        results["load"]["entities"] = load_entities(database_url, plan, loader)
        results["load"]["vacuum_analyze_seconds"] = vacuum(database_url, "observations")
        print(f"  {results['load']}", flush=True)
        print("building the hourly and daily rollups (refresh_rollups until none is pending) ...")
        results["rollup_build"] = build_rollups(database_url)
        results["rollup_build"]["vacuum_analyze_seconds"] = sum(
            vacuum(database_url, table)
            for table in ROLLUP_TABLES  # what autovacuum would do after the build
        )
        print(f"  {results['rollup_build']}", flush=True)
        results["queries"] = measure(database_url, plan, args)
        results.update(verdict(results["queries"]))
    finally:
        drop_database(database_url)
    results["total_seconds"] = round(time.perf_counter() - began, 1)
    report(results, args.out)


if __name__ == "__main__":
    main()
