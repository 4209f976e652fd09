"""The SQL of every panel of the shipped Grafana dashboards, run against a real database.

No Grafana server runs on these machines, so the tests do what Grafana's PostgreSQL data
source does before it runs a panel's rawSql: `expand` (tests/integration/grafana_macros.py)
interpolates the dashboard variables and the macros as Grafana does, for a fixed time range.
The database holds data written by the real ingest path: simulator messages through
BatchBuilder and BatchWriter, on every storage backend available here.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from stadspuls.grafana import AIR_QUALITY_LIMITS, load_dashboards, shipped_dashboards
from stadspuls.simulator import (
    Message,
    message_stream,
    sample_devices,
    sample_groups,
    telraam_report,
)
from storage.database import connect
from storage.records import Batch, ObservationRow
from storage.writer import BatchWriter
from tests.integration.grafana_macros import QueryContext, expand

pytestmark = pytest.mark.integration

# --- the macro expander itself ---------------------------------------------------------------

FIXED_RANGE = QueryContext(
    datetime(2024, 5, 1, tzinfo=UTC),
    datetime(2024, 5, 3, tzinfo=UTC),
    timedelta(hours=1),
    {"tenant": "o'brien"},
)


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        (
            "WHERE $__timeFilter(o.observed_at)",
            "WHERE o.observed_at BETWEEN '2024-05-01T00:00:00Z' AND '2024-05-03T00:00:00Z'",
        ),
        ("$__timeFrom() $__timeTo()", "'2024-05-01T00:00:00Z' '2024-05-03T00:00:00Z'"),
        (
            "SELECT $__timeGroupAlias(t, 1h)",
            'SELECT floor(extract(epoch from t)/3600)*3600 AS "time"',
        ),
        (
            "SELECT $__timeGroupAlias(t, $__interval)",
            'SELECT floor(extract(epoch from t)/3600)*3600 AS "time"',
        ),
        ("GROUP BY $__timeGroup(t, 1d)", "GROUP BY floor(extract(epoch from t)/86400)*86400"),
        (
            "SELECT $__timeGroup(t, '5m'), v",
            'SELECT floor(extract(epoch from t)/300)*300 AS "time", v',
        ),
        ("tenant = ${tenant:sqlstring}", "tenant = 'o''brien'"),
        ("${tenant} $tenant $unknown", "o'brien o'brien $unknown"),
    ],
)
def test_expand_follows_grafana(sql, expanded):
    assert expand(sql, FIXED_RANGE) == expanded


def test_expand_uses_time_bucket_where_the_data_source_says_timescaledb():
    context = QueryContext(**{**FIXED_RANGE.__dict__, "timescaledb": True})
    assert expand("$__timeGroupAlias(t, 1h)", context) == "time_bucket('3600.000s',t) AS \"time\""


@pytest.mark.parametrize(
    ("sql", "message"),
    [("$__unixEpochFilter(t)", "unknown macro"), ("$__timeGroup(t, 1h, 0)", "fill mode")],
)
def test_expand_refuses_what_it_does_not_implement(sql, message):
    with pytest.raises(ValueError, match=message):
        expand(sql, FIXED_RANGE)


# --- the data: two days of simulator messages through the real ingest path -------------------

START = FIXED_RANGE.time_from
HOURS = 48
#: A Telraam counter that reports for the first three hours only, then falls silent.
SILENT_SEGMENT = 348999
BAD_PAYLOADS = 3
TRANSPORT = "https://smartdatamodels.org/dataModel.Transportation/"
ENVIRONMENT = "https://smartdatamodels.org/dataModel.Environment/"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
MODES = {"pedestrian": "pedestrian", "bike": "bicycle", "car": "car", "heavy": "lorry"}


@dataclass
class Dataset:
    """What was ingested for the panels, and how to run a panel's SQL on it."""

    tenant: str
    database_url: str
    timescaledb: bool
    messages: list[Message]
    batch: Batch

    @property
    def rows(self) -> list[ObservationRow]:
        return [ObservationRow(*row) for row in self.batch.observations]

    @property
    def entities(self) -> dict[str, dict[str, Any]]:
        return {fragment.entity_id: fragment.attributes for fragment in self.batch.entities}

    def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        context = QueryContext(
            FIXED_RANGE.time_from,
            FIXED_RANGE.time_to,
            FIXED_RANGE.interval,
            {"tenant": self.tenant},
            self.timescaledb,
        )
        with connect(self.database_url) as conn:
            cursor = conn.execute(expand(sql, context))
            assert cursor.description is not None
            return [column.name for column in cursor.description], cursor.fetchall()


def _simulated(hour: int) -> list[tuple[Message, datetime]]:
    moment = START + timedelta(hours=hour)
    messages = list(message_stream(10, moment, devices_per_profile=2))
    if hour < 3:
        messages.append(telraam_report(SILENT_SEGMENT, moment, random.Random(hour)))
    return [(message, moment + timedelta(minutes=1)) for message in messages]


@pytest.fixture(scope="module")
def dataset(database_url, backend) -> Iterator[Dataset]:
    """Two days of every profile's messages (and a few bad ones) for a tenant of this module."""
    tenant = f"grafana-{uuid.uuid4().hex[:12]}"
    received = [pair for hour in range(HOURS) for pair in _simulated(hour)]
    bad_at = START + timedelta(hours=5)
    raw = [RawMessage(m.topic, m.payload, 0, 1, at, 0.0) for m, at in received] + [
        RawMessage("telraam/348917/traffic", b"{not json %d" % n, 0, 1, bad_at, 0.0)
        for n in range(BAD_PAYLOADS)
    ]
    registry = DeviceRegistry(sample_devices(tenant), sample_groups(tenant))
    batch = BatchBuilder(lambda: registry, 256 * 1024).build(raw).batch
    assert len(batch.dead_letters) == BAD_PAYLOADS
    with connect(database_url) as conn:
        BatchWriter(backend).write(conn, batch)
    yield Dataset(
        tenant, database_url, backend.name == "timescaledb", [m for m, _ in received], batch
    )


# --- what each panel must answer ------------------------------------------------------------


def epoch(value: Any) -> float:
    """A time column as Unix seconds, whether Grafana's floor() form or time_bucket()."""
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def series(rows: list[tuple[Any, ...]]) -> dict[tuple[float, str], float]:
    """(time, metric) → value of a time/metric/value result."""
    return {(epoch(time), metric): float(value) for time, metric, value in rows}


def short(entity_id: str) -> str:
    return re.sub(r"^urn:ngsi-ld:[A-Za-z]+:", "", entity_id)


def bucket(moment: datetime, seconds: int) -> float:
    return math.floor(moment.timestamp() / seconds) * seconds


def telraam_records(data: Dataset) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in data.messages if m.profile == "telraam"]


def check_passers_hourly(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    expected: dict[tuple[float, str], float] = defaultdict(float)
    for record in telraam_records(data):
        hour = bucket(datetime.fromisoformat(record["date"]), 3600)
        for mode, label in MODES.items():
            expected[(hour, f"{label} left")] += record[f"{mode}_lft"]
            expected[(hour, f"{label} right")] += record[f"{mode}_rgt"]
    assert series(rows) == pytest.approx(dict(expected))
    assert len({time for time, _, _ in rows}) == HOURS


def check_passers_totals(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    expected: dict[tuple[str, str], float] = defaultdict(float)
    for record in telraam_records(data):
        for mode, label in MODES.items():
            expected[(label, "left")] += record[f"{mode}_lft"]
            expected[(label, "right")] += record[f"{mode}_rgt"]
    stored = {(mode, "left"): left for mode, left, _, _ in rows}
    stored.update({(mode, "right"): right for mode, _, right, _ in rows})
    assert stored == pytest.approx(dict(expected))
    assert all(total == pytest.approx(left + right) for _, left, right, total in rows)


def means(data: Dataset, attribute: str, seconds: int) -> dict[tuple[float, str], float]:
    """The mean of an AirQualityObserved attribute per bucket and station, from the batch."""
    groups: dict[tuple[float, str], list[float]] = defaultdict(list)
    for row in data.rows:
        if row.attribute == ENVIRONMENT + attribute and row.value_num is not None:
            groups[(bucket(row.observed_at, seconds), short(row.entity_id))].append(row.value_num)
    return {key: sum(values) / len(values) for key, values in groups.items()}


def check_pollutant(attribute: str, seconds: int) -> Callable[[Dataset, list], None]:
    def check(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
        expected = means(data, attribute, seconds)
        assert len({metric for _, metric in expected}) >= 2, "two stations at least"
        assert series(rows) == pytest.approx(expected)
        assert all(0 < value < 500 for _, _, value in rows), "µg/m³ within a plausible range"

    return check


def check_air_latest(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    for row in data.rows:
        key = (short(row.entity_id), row.attribute.rsplit("/", 1)[-1])
        if not row.entity_type.endswith("AirQualityObserved") or row.value_num is None:
            continue
        if key not in latest or latest[key][0] <= row.observed_at:
            latest[key] = (row.observed_at, row.value_num)
    stations = sorted({station for station, _ in latest})
    assert [row[0] for row in rows] == stations
    for station, pm25, pm10, no2, observed_at in rows:
        for attribute, value in (("pm25", pm25), ("pm10", pm10), ("no2", no2)):
            assert value == pytest.approx(latest.get((station, attribute), (None, None))[1])
        newest = max(at for (name, _), (at, _) in latest.items() if name == station)
        assert observed_at == newest


def measuring_point(data: Dataset, entity_id: str) -> str:
    attributes = data.entities[entity_id]
    for key in (DEFAULT + "refTrafficFlowObserved", TRANSPORT + "refRoadSegment"):
        if key in attributes:
            return short(attributes[key]["object"])
    return short(entity_id)


def vehicle_type(data: Dataset, entity_id: str) -> str | None:
    node = data.entities[entity_id].get(TRANSPORT + "vehicleType")
    return node["value"] if node else None


def flows(data: Dataset, key: Callable[[str], str]) -> dict[tuple[float, str], float]:
    """Hourly intensity sums of the vehicle classes (anyVehicle totals left out)."""
    sums: dict[tuple[float, str], float] = defaultdict(float)
    for row in data.rows:
        if (
            row.entity_type == TRANSPORT + "TrafficFlowObserved"
            and row.attribute == TRANSPORT + "intensity"
            and row.dataset_id == ""
            and vehicle_type(data, row.entity_id) != "anyVehicle"
        ):
            sums[(bucket(row.observed_at, 3600), key(row.entity_id))] += row.value_num or 0.0
    return dict(sums)


def check_flow_per_point(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    expected = flows(data, lambda entity: measuring_point(data, entity))
    assert series(rows) == pytest.approx(expected)
    points = {metric for _, metric, _ in rows}
    assert {"miv-0-H000L10", "telraam-348917", f"telraam-{SILENT_SEGMENT}"} <= points


def check_flow_per_type(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    expected = flows(data, lambda entity: vehicle_type(data, entity) or "")
    assert series(rows) == pytest.approx(expected)
    assert {"car", "lorry", "motorcycle"} <= {metric for _, metric, _ in rows}


def check_speed(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert {metric for _, metric, _ in rows} == {"miv-0-H000L10", "miv-1-H000L10"}
    # The simulator's loops measure 60 to 119 km/h; a weighted mean stays inside that.
    assert all(60 <= value <= 119 for _, _, value in rows)


def check_v85(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    expected: dict[tuple[float, str], list[float]] = defaultdict(list)
    for message in data.messages:
        if message.profile == "telraam":
            record = orjson.loads(message.payload)
            hour = bucket(datetime.fromisoformat(record["date"]), 3600)
            expected[(hour, f"telraam-{record['segment_id']}")].append(record["v85"])
    assert series(rows) == pytest.approx({k: sum(v) / len(v) for k, v in expected.items()})


def check_occupancy(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert {metric for _, metric, _ in rows} == {"miv-0-H000L10", "miv-1-H000L10"}
    assert all(0 <= value <= 0.4 for _, _, value in rows)  # the simulator's 0..39 %
    assert len({time for time, _, _ in rows}) == HOURS


def check_silent_devices(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert rows == [(1, len(data.batch.activity))]


def check_devices(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    activity = {a.device_id: (a.messages, a.readings) for a in data.batch.activity}
    assert {row[0]: (row[1], row[2]) for row in rows} == activity
    status = {row[0]: row[6] for row in rows}
    assert status.pop(str(SILENT_SEGMENT)) == "silent"
    assert set(status.values()) == {"reporting"}
    silent_for = {row[0]: float(row[5]) for row in rows}
    assert silent_for["348917"] == pytest.approx(59 * 60)  # last message 23:01, range ends 24:00


def check_readings(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert sum(value for _, _, value in rows) == len(data.rows)
    assert {metric for _, metric, _ in rows} == {
        row.entity_type.rsplit("/", 1)[-1] for row in data.rows
    }


def check_dead_letters_per_hour(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    hour = bucket(START + timedelta(hours=5), 3600)
    assert series(rows) == {(hour, "invalid_json"): BAD_PAYLOADS}


def check_dead_letter_list(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert len(rows) == BAD_PAYLOADS
    assert {(row[1], row[2], row[3], row[5]) for row in rows} == {
        ("invalid_json", "telraam/348917/traffic", "348917", 1)
    }


def check_battery(data: Dataset, rows: list[tuple[Any, ...]]) -> None:
    assert {metric for _, metric, _ in rows} == {"dl-pm-0", "dl-pm-1"}
    assert all(value == pytest.approx(3.1) for _, _, value in rows)


TIME_SERIES = ["time", "metric", "value"]
#: (dashboard uid, panel id) → (columns, check); every panel of every dashboard is listed.
PANELS: dict[tuple[str, int], tuple[list[str], Callable[[Dataset, list], None]]] = {
    ("stadspuls-passers-by", 1): (TIME_SERIES, check_passers_hourly),
    ("stadspuls-passers-by", 2): (["mode", "left", "right", "total"], check_passers_totals),
    ("stadspuls-air-quality", 1): (TIME_SERIES, check_pollutant("pm25", 86400)),
    ("stadspuls-air-quality", 2): (TIME_SERIES, check_pollutant("pm10", 86400)),
    ("stadspuls-air-quality", 3): (TIME_SERIES, check_pollutant("no2", 3600)),
    ("stadspuls-air-quality", 4): (
        ["station", "pm25", "pm10", "no2", "observed_at"],
        check_air_latest,
    ),
    ("stadspuls-traffic", 1): (TIME_SERIES, check_flow_per_point),
    ("stadspuls-traffic", 2): (TIME_SERIES, check_flow_per_type),
    ("stadspuls-traffic", 3): (TIME_SERIES, check_speed),
    ("stadspuls-traffic", 4): (TIME_SERIES, check_v85),
    ("stadspuls-traffic", 5): (TIME_SERIES, check_occupancy),
    ("stadspuls-device-health", 1): (["silent", "devices"], check_silent_devices),
    ("stadspuls-device-health", 2): (TIME_SERIES, check_readings),
    ("stadspuls-device-health", 3): (
        [
            "device",
            "messages",
            "readings",
            "first_message_at",
            "last_message_at",
            "silent_seconds",
            "status",
        ],
        check_devices,
    ),
    ("stadspuls-device-health", 4): (TIME_SERIES, check_dead_letters_per_hour),
    ("stadspuls-device-health", 5): (
        ["time", "reason", "topic", "device", "detail", "times_received"],
        check_dead_letter_list,
    ),
    ("stadspuls-device-health", 6): (TIME_SERIES, check_battery),
}


def shipped_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(board["uid"], panel) for board in load_dashboards() for panel in board["panels"]]


def test_every_shipped_panel_is_checked_here():
    assert {(uid, panel["id"]) for uid, panel in shipped_panels()} == set(PANELS)


@pytest.mark.parametrize(
    ("dashboard_uid", "panel"),
    shipped_panels(),
    ids=[f"{uid}-{panel['id']}" for uid, panel in shipped_panels()],
)
def test_panel_sql_answers_with_the_ingested_data(dataset, dashboard_uid, panel):
    columns, check = PANELS[(dashboard_uid, panel["id"])]
    (target,) = panel["targets"]
    assert "${tenant:sqlstring}" in target["rawSql"], "every panel shows one tenant only"
    names, rows = dataset.run(target["rawSql"])
    assert names == columns
    assert rows, f"{panel['title']} returned no rows"
    if target["format"] == "time_series":
        times = [epoch(row[0]) for row in rows]
        assert times == sorted(times), "Grafana wants time series sorted by time"
        assert all(START.timestamp() <= t < FIXED_RANGE.time_to.timestamp() for t in times)
        assert all(isinstance(row[2], float | int | Decimal) for row in rows)
    check(dataset, rows)


def test_tenant_variable_lists_the_tenants_with_their_labels(dataset):
    (board, *_) = load_dashboards()
    (variable,) = board["templating"]["list"]
    names, rows = dataset.run(variable["query"])
    assert names == ["__value", "__text"]
    assert (dataset.tenant, dataset.tenant) in rows
    assert ("", "(default)") in rows


def test_the_air_quality_panels_draw_the_eu_limits():
    (board,) = [b for b in shipped_dashboards() if b["uid"] == "stadspuls-air-quality"]
    panels = {panel["id"]: panel for panel in board["panels"]}
    for limit in AIR_QUALITY_LIMITS:
        panel = panels[limit.panel_id]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["thresholds"]["steps"][-1] == {"color": "red", "value": limit.limit}
        assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
        assert f"{ENVIRONMENT}{limit.attribute}'" in panel["targets"][0]["rawSql"]


def test_the_shipped_files_carry_the_current_limits():
    # Provisioning reads the files as they are: they must match what sync uploads.
    # After changing AIR_QUALITY_LIMITS, run `stadspuls grafana export`.
    assert load_dashboards() == shipped_dashboards()
