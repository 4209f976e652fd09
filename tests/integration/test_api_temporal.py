"""The NGSI-LD temporal API over HTTP (in-process), against the real PostgreSQL."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

import ngsi.temporal_history as temporal_history
from devices.model import Decoded, DeviceConfig, Reading
from ngsi.errors import error_uri
from ngsi.mapping import BatchMapper
from stadspuls.api import create_app
from storage.backend import detect_backend
from storage.database import connect
from storage.records import Batch
from storage.rollup_refresh import refresh_rollups
from storage.writer import BatchWriter
from tests.support.api import api_settings

pytestmark = pytest.mark.integration

ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
TEMPORAL = "/ngsi-ld/v1/temporal/entities"
STATION = "urn:ngsi-ld:AirQualityObserved:gent-1"
OTHER = "urn:ngsi-ld:AirQualityObserved:gent-2"
#: Saturday 2026-03-28 00:00 UTC; Brussels moves to summer time on Sunday 29 at 01:00 UTC.
T0 = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)
HOURS = 72


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def z(moment: datetime) -> str:
    """A moment as the API writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reading(value: Any, moment: datetime, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": z(moment), **extra}


def hourly(count: int = HOURS, start: datetime = T0) -> list[dict[str, Any]]:
    """pm25 every hour: value i at hour i (a few equal values, so distinctCount differs)."""
    return [reading(float(i % 50), start + timedelta(hours=i), unitCode="GQ") for i in range(count)]


def problem(response, status: int, error: str) -> dict:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == error_uri(error), body
    assert body["title"] and body["detail"]
    return body


def post(api: TestClient, entity: dict, **headers: str):
    return api.post(TEMPORAL, json=entity, headers={"Link": LINK, **headers})


def station(entity_id: str = STATION, **attributes: Any) -> dict[str, Any]:
    return {"id": entity_id, "type": "AirQualityObserved", **attributes}


def get(api: TestClient, entity_id: str = STATION, **params: Any):
    return api.get(f"{TEMPORAL}/{entity_id}", params=params, headers={"Link": LINK})


def query(api: TestClient, **params: Any):
    return api.get(TEMPORAL, params=params, headers={"Link": LINK})


def times(attribute: list[dict[str, Any]]) -> list[str]:
    return [instance["observedAt"] for instance in attribute]


@contextmanager
def client(api_database: str, tenant: str, **settings: Any) -> Iterator[TestClient]:
    """A client of an app with other settings, for this test's tenant."""
    with TestClient(create_app(api_settings(api_database, **settings))) as made:
        made.headers["NGSILD-Tenant"] = tenant
        yield made


@pytest.fixture
def stored(api) -> TestClient:
    """STATION with 72 hourly pm25 readings and a few no2 readings in two datasets."""
    no2 = [
        reading(40.0, at(1), unitCode="GP"),
        reading(42.0, at(2), unitCode="GP"),
        reading(41.0, at(1), unitCode="GP", datasetId="urn:ngsi-ld:Dataset:raw"),
    ]
    assert post(api, station(pm25=hourly(), no2=no2)).status_code == 201
    return api


# --- writes and the normalized representation ---------------------------------------------


def test_create_then_retrieve_the_normalized_temporal_representation(api):
    created = post(api, station(pm25=hourly(3)))
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{TEMPORAL}/urn%3Angsi-ld%3AAirQualityObserved%3Agent-1"
    body = get(api).json()
    assert body["id"] == STATION and body["type"] == "AirQualityObserved"
    assert [i["value"] for i in body["pm25"]] == [0.0, 1.0, 2.0]
    first = body["pm25"][0]
    assert first["type"] == "Property" and first["unitCode"] == "GQ"
    assert first["observedAt"] == z(T0)
    assert first["instanceId"].startswith("urn:ngsi-ld:instance:")
    # Adding to an existing temporal entity is 204; the latest state follows the newest.
    assert post(api, station(pm25=[reading(99.0, at(10))])).status_code == 204
    assert len(get(api).json()["pm25"]) == 4
    latest = api.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"Link": LINK}).json()
    assert latest["pm25"]["value"] == 99.0
    # An older instance never overwrites a newer latest state.
    assert post(api, station(pm25=[reading(-1.0, at(-5))])).status_code == 204
    latest = api.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"Link": LINK}).json()
    assert latest["pm25"]["value"] == 99.0


def test_attribute_types_round_trip(api):
    entity = station(
        refDevice=[
            {"type": "Relationship", "object": "urn:ngsi-ld:Device:a", "observedAt": z(at(0))},
            {"type": "Relationship", "object": "urn:ngsi-ld:Device:b", "observedAt": z(at(1))},
        ],
        name=[{"type": "LanguageProperty", "languageMap": {"nl": "Zuid", "en": "South"},
               "observedAt": z(at(0))}],
        location=[{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.7, 51.0]},
                   "observedAt": z(at(0))}],
        status=[reading("ok", at(0)), reading(True, at(1)), reading({"code": 2}, at(2))],
    )  # fmt: skip
    assert post(api, entity).status_code == 201
    body = get(api).json()
    assert [i["object"] for i in body["refDevice"]] == [
        "urn:ngsi-ld:Device:a",
        "urn:ngsi-ld:Device:b",
    ]
    assert body["refDevice"][0]["type"] == "Relationship"
    assert body["name"][0]["languageMap"] == {"nl": "Zuid", "en": "South"}
    assert body["location"][0]["type"] == "GeoProperty"
    assert [i["value"] for i in body["status"]] == ["ok", True, {"code": 2}]
    simple = get(api, options="temporalValues", lang="en").json()
    assert simple["refDevice"] == {
        "type": "Relationship",
        "objects": [["urn:ngsi-ld:Device:a", z(at(0))], ["urn:ngsi-ld:Device:b", z(at(1))]],
    }
    assert simple["name"] == {"type": "Property", "values": [["South", z(at(0))]]}


def test_ingest_history_is_served(api, api_database, tenant):
    device = DeviceConfig(device_id="dl-9", profile="ttn-v3", tenant=tenant, location=(3.7, 51.0))
    mapper = BatchMapper()
    for hour in range(3):
        moment = at(hour)
        mapper.add(device, Decoded([Reading("AirQualityObserved", "dl-9", "pm25", 7.5 + hour,
                                            moment, "GQ")]), moment)  # fmt: skip
    with connect(api_database) as conn:
        backend = detect_backend(conn, "auto")
        BatchWriter(backend).write(
            conn, Batch(observations=mapper.observations, entities=mapper.fragments())
        )
    body = get(api, "urn:ngsi-ld:AirQualityObserved:dl-9", options="temporalValues").json()
    assert body["pm25"]["values"] == [[7.5, z(at(0))], [8.5, z(at(1))], [9.5, z(at(2))]]
    by_type = query(api, type="AirQualityObserved", attrs="pm25", lastN=1).json()
    assert by_type[0]["pm25"][0]["value"] == 9.5


def test_datasets_are_listed_apart(stored):
    body = get(stored, attrs="no2").json()
    assert [(i.get("datasetId"), i["value"]) for i in body["no2"]] == [
        (None, 40.0),
        (None, 42.0),
        ("urn:ngsi-ld:Dataset:raw", 41.0),
    ]
    simple = get(stored, attrs="no2", format="temporalValues").json()
    assert simple["no2"] == [
        {"type": "Property", "values": [[40.0, z(at(1))], [42.0, z(at(2))]]},
        {"type": "Property", "values": [[41.0, z(at(1))]], "datasetId": "urn:ngsi-ld:Dataset:raw"},
    ]


# --- the temporal query -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"timerel": "before", "timeAt": z(at(3))}, [0, 1, 2]),
        ({"timerel": "after", "timeAt": z(at(69))}, [69, 70, 71]),
        ({"timerel": "between", "timeAt": z(at(10)), "endTimeAt": z(at(13))}, [10, 11, 12]),
        ({"timerel": "after", "timeAt": "2026-03-30T22:00:00+02:00"}, [68, 69, 70, 71]),
        ({"lastN": "2"}, [70, 71]),
        ({"lastN": "2", "timerel": "before", "timeAt": z(at(5))}, [3, 4]),
    ],
)
def test_time_windows_and_last_n(stored, params, expected):
    body = get(stored, attrs="pm25", **params).json()
    assert times(body["pm25"]) == [z(at(h)) for h in expected]
    assert "no2" not in body


def test_query_selects_entities_by_type_q_attrs_and_pages(api):
    post(api, station(pm25=hourly(3)))
    post(api, station(OTHER, pm25=[reading(80.0, at(0))], no2=[reading(5.0, at(0))]))
    other_type = {"id": "urn:ngsi-ld:WaterQualityObserved:1", "type": "WaterQualityObserved",
                  "temperature": [reading(12.0, at(0))]}  # fmt: skip
    post(api, other_type)
    found = query(api, type="AirQualityObserved", count="true")
    assert found.headers["NGSILD-Results-Count"] == "2"
    assert [e["id"] for e in found.json()] == [STATION, OTHER]
    assert [e["id"] for e in query(api, q="pm25>50").json()] == [OTHER]
    assert [e["id"] for e in query(api, attrs="no2").json()] == [OTHER]
    page = query(api, type="AirQualityObserved", limit=1, offset=1).json()
    assert [e["id"] for e in page] == [OTHER]
    assert set(page[0]) == {"id", "type", "pm25", "no2"}
    assert set(query(api, type="AirQualityObserved", attrs="no2").json()[0]) == {
        "id",
        "type",
        "no2",
    }


def test_query_by_post_with_a_temporal_query(stored):
    body = {
        "type": "Query",
        "entities": [{"type": "AirQualityObserved"}],
        "attrs": ["pm25"],
        "temporalQ": {"timerel": "between", "timeAt": z(at(1)), "endTimeAt": z(at(3))},
    }
    answer = stored.post(
        "/ngsi-ld/v1/temporal/entityOperations/query", json=body, headers={"Link": LINK}
    )
    assert answer.status_code == 200, answer.text
    assert times(answer.json()[0]["pm25"]) == [z(at(1)), z(at(2))]
    aggregated = {
        **body,
        "temporalQ": {**body["temporalQ"], "aggrMethods": ["sum", "max"]},
    }
    answer = stored.post(
        "/ngsi-ld/v1/temporal/entityOperations/query",
        json=aggregated,
        params={"options": "aggregatedValues"},
        headers={"Link": LINK},
    )
    assert answer.json()[0]["pm25"]["sum"] == [[3.0, z(at(1)), z(at(3))]]


def test_pick_omit_sys_attrs_and_json_ld(stored):
    assert set(get(stored, pick="id,pm25").json()) == {"id", "pm25"}
    assert set(get(stored, omit="pm25").json()) == {"id", "type", "no2"}
    with_sys = get(stored, options="sysAttrs", attrs="pm25", lastN=1).json()
    assert with_sys["createdAt"].endswith("Z") and with_sys["modifiedAt"].endswith("Z")
    ld = stored.get(
        f"{TEMPORAL}/{STATION}",
        params={"lastN": 1},
        headers={"Link": LINK, "Accept": "application/ld+json"},
    )
    assert ld.json()["@context"] == ENVIRONMENT


# --- aggregatedValues -----------------------------------------------------------------------


def reference(method: str, values: list[float]) -> Any:
    """What one period of `values` should give, computed the plain way."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len(set(values))
    if not values:
        return None
    if method == "stddev":
        return statistics.stdev(values) if len(values) > 1 else None
    if method.startswith("p"):
        ordered = sorted(values)
        position = float(method[1:]) / 100 * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return {
        "sum": sum,
        "avg": statistics.fmean,
        "min": min,
        "max": max,
        "sumsq": lambda v: sum(x * x for x in v),
    }[method](values)


def same_periods(got: list[list[Any]], expected: list[list[Any]]) -> bool:
    """Period bounds equal, values equal up to rounding (None where either has none)."""
    assert [p[1:] for p in got] == [p[1:] for p in expected]
    values = [p[0] for p in got]
    wanted = [p[0] for p in expected]
    assert [v is None for v in values] == [w is None for w in wanted], (values, wanted)
    pairs = [(v, w) for v, w in zip(values, wanted, strict=True) if v is not None]
    return all(v == pytest.approx(w) for v, w in pairs)


def expected_periods(method: str, edges: list[float]) -> list[list[Any]]:
    """[value, startAt, endAt] per period of the `stored` pm25 (value h % 50 at hour h)."""
    return [
        [reference(method, [float(h % 50) for h in range(math.ceil(a), math.ceil(b))]),
         z(at(a)), z(at(b))]
        for a, b in zip(edges, edges[1:], strict=False)
    ]  # fmt: skip


METHODS = ["totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq", "p50"]
#: (aggrPeriodDuration, window in hours from T0, period edges in hours from T0).
DURATIONS = [
    ("PT1H", (10, 13), [10, 11, 12, 13]),
    ("PT3H", (10, 17), [10, 13, 16, 17]),
    ("PT0S", (0, 72), [0, 72]),
    # Brussels days: 2026-03-29 is 23 h long (01:00 UTC becomes 03:00 local).
    ("P1D", (0, 72), [0, 23, 46, 70, 72]),
    ("PT90M", (0, 6), [0, 1.5, 3, 4.5, 6]),
]


def aggregated(api: TestClient, methods: str, duration: str, window: tuple[float, float], **extra):
    return get(
        api,
        attrs="pm25",
        options="aggregatedValues",
        aggrMethods=methods,
        aggrPeriodDuration=duration,
        timerel="between",
        timeAt=z(at(window[0])),
        endTimeAt=z(at(window[1])),
        **extra,
    )


@pytest.mark.parametrize(("duration", "window", "edges"), DURATIONS)
def test_each_method_over_several_durations(stored, duration, window, edges):
    response = aggregated(stored, ",".join(METHODS), duration, window)
    assert response.status_code == 200, response.text
    body = response.json()["pm25"]
    assert body["type"] == "Property"
    for method in METHODS:
        assert same_periods(body[method], expected_periods(method, edges)), method


def test_calendar_months_follow_the_zone(api):
    daily = [reading(float(d), datetime(2026, 1, 15, 12, tzinfo=UTC) + timedelta(days=d))
             for d in range(54)]  # fmt: skip
    post(api, station(pm25=daily))
    body = get(
        api,
        options="aggregatedValues",
        aggrMethods="totalCount,sum",
        aggrPeriodDuration="P1M",
        timerel="between",
        timeAt="2026-01-15T00:00:00Z",
        endTimeAt="2026-03-10T00:00:00Z",
    ).json()["pm25"]
    # Brussels months begin at 23:00 UTC the day before (CET, UTC+1).
    assert body["totalCount"] == [
        [17, "2026-01-15T00:00:00.000000Z", "2026-01-31T23:00:00.000000Z"],
        [28, "2026-01-31T23:00:00.000000Z", "2026-02-28T23:00:00.000000Z"],
        [9, "2026-02-28T23:00:00.000000Z", "2026-03-10T00:00:00.000000Z"],
    ]
    assert [p[0] for p in body["sum"]] == [sum(range(17)), sum(range(17, 45)), sum(range(45, 54))]
    utc = get(
        api,
        options="aggregatedValues",
        aggrMethods="totalCount",
        aggrPeriodDuration="P1M",
        timerel="between",
        timeAt="2026-01-15T00:00:00Z",
        endTimeAt="2026-03-10T00:00:00Z",
        timezone="UTC",
    ).json()["pm25"]
    assert utc["totalCount"][0][2] == "2026-02-01T00:00:00.000000Z"


def test_the_autumn_day_is_25_hours_long(api):
    start = datetime(2026, 10, 24, 22, tzinfo=UTC)  # Sunday 25 October, 00:00 in Brussels
    post(api, station(pm25=hourly(26, start)))
    body = get(
        api,
        options="aggregatedValues",
        aggrMethods="totalCount",
        aggrPeriodDuration="P1D",
        timerel="between",
        timeAt=z(start),
        endTimeAt=z(start + timedelta(hours=26)),
    ).json()["pm25"]
    assert body["totalCount"] == [
        [25, "2026-10-24T22:00:00.000000Z", "2026-10-25T23:00:00.000000Z"],
        [1, "2026-10-25T23:00:00.000000Z", "2026-10-26T00:00:00.000000Z"],
    ]


def spy_on_rollups(monkeypatch) -> list[str]:
    """Record the path each aggregation takes."""
    paths: list[str] = []
    original = temporal_history.read_aggregated

    async def recording(*args, **kwargs):
        answer = await original(*args, **kwargs)
        paths.append(answer.path)
        return answer

    monkeypatch.setattr("ngsi.routers.temporal.read_aggregated", recording)
    return paths


def test_rollup_path_and_raw_path_give_the_same_answer(stored, api_database, monkeypatch):
    paths = spy_on_rollups(monkeypatch)
    methods = "totalCount,sum,avg,min,max,stddev,sumsq"

    def ask() -> dict[str, Any]:
        return aggregated(stored, methods, "P1D", (0, 72)).json()["pm25"]

    pending = ask()  # nothing refreshed yet: every hour is read raw through rollup_hours
    with connect(api_database) as conn:
        refresh_rollups(conn, settle=timedelta(0))
    from_rollups = ask()
    # A late reading: its hour is pending again and read raw, the others from rollups.
    post(stored, station(pm25=[reading(1000.0, at(30.5))]))
    late = ask()
    monkeypatch.setattr(temporal_history, "rollups_usable", lambda *args: False)
    raw = ask()
    assert paths == ["rollups", "rollups", "rollups", "raw"]
    assert from_rollups == pending
    for method in methods.split(","):
        assert same_periods(late[method], raw[method]), method
    assert late["max"][1][0] == 1000.0
    assert late["totalCount"][1][0] == 24


def test_daily_rollups_answer_whole_local_days(api, api_database, monkeypatch):
    """Days of the daily rollups (Brussels, across the 23-hour day) give the answer the
    hourly rollups and the raw rows give; a day with a late reading is read by the hour."""
    paths = spy_on_rollups(monkeypatch)
    start = datetime(2026, 3, 26, 23, tzinfo=UTC)  # Friday 27 March, 00:00 in Brussels
    values = [reading((i % 29) / 4, start + timedelta(minutes=40 * i)) for i in range(5 * 36)]
    assert post(api, station(pm25=values)).status_code == 201
    with connect(api_database) as conn:
        while refresh_rollups(conn, settle=timedelta(0)):  # 24 hours a call
            pass
    days_read: list[int] = []
    original = temporal_history.fetch_tiers

    async def counting(*args: Any) -> Any:
        days_read.append(len(args[6]))
        return await original(*args)

    monkeypatch.setattr(temporal_history, "fetch_tiers", counting)
    methods = "totalCount,sum,avg,min,max,stddev,sumsq"

    def ask(period: str = "P1D", **extra: Any) -> dict[str, Any]:
        response = get(
            api,
            attrs="pm25",
            options="aggregatedValues",
            aggrMethods=methods,
            aggrPeriodDuration=period,
            timerel="between",
            timeAt=z(start + timedelta(hours=5)),  # the first day is cut: read by the hour
            endTimeAt=z(start + timedelta(days=5)),
            **extra,
        )
        assert response.status_code == 200, response.text
        return response.json()["pm25"]

    daily, weekly = ask(), ask("P1W")
    assert days_read == [1, 1]  # one run of whole days each time
    post(api, station(pm25=[reading(100.0, start + timedelta(days=2, hours=3))]))
    late, late_weekly = ask(), ask("P1W")
    assert days_read[2:] == [2, 2]  # the late reading's day is left out: two runs of days
    in_utc = ask(timezone="UTC")  # other days than the rollups': hours only
    assert days_read[4:] == [0]
    monkeypatch.setattr(temporal_history, "plan_tiers", lambda *args: None)
    hourly = ask()
    assert days_read[5:] == [0]
    monkeypatch.setattr(temporal_history, "rollups_usable", lambda *args: False)
    raw, raw_weekly, raw_utc = ask(), ask("P1W"), ask(timezone="UTC")
    assert paths == ["rollups"] * 6 + ["raw"] * 3
    assert [p[1] for p in daily["totalCount"]][1:3] == [
        "2026-03-27T23:00:00.000000Z",  # Saturday 28 March, 24 hours
        "2026-03-28T23:00:00.000000Z",  # Sunday 29 March, 23 hours
    ]
    for method in methods.split(","):
        assert same_periods(late_weekly[method], raw_weekly[method]), method
        assert same_periods(late[method], raw[method]), method
        assert same_periods(hourly[method], raw[method]), method
        assert same_periods(in_utc[method], raw_utc[method]), method
    assert late["max"][2][0] == 100.0
    assert daily["totalCount"][2][0] == late["totalCount"][2][0] - 1
    assert weekly["totalCount"][0][0] == late_weekly["totalCount"][0][0] - 1


@pytest.mark.parametrize("period", ["PT30M", "PT7M30S", "PT90M", "PT1H"])
def test_sql_date_bin_path_and_raw_path_give_the_same_answer(stored, monkeypatch, period):
    paths = spy_on_rollups(monkeypatch)
    methods = "totalCount,sum,avg,min,max,stddev,sumsq"
    window = {"timerel": "between", "timeAt": z(at(0.25)), "endTimeAt": z(at(9.5))}

    def ask() -> dict[str, Any]:
        response = get(stored, attrs="pm25", options="aggregatedValues", aggrMethods=methods,
                       aggrPeriodDuration=period, **window)  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()["pm25"]

    in_sql = ask()
    monkeypatch.setattr(temporal_history, "sql_bins_usable", lambda *args: False)
    raw = ask()
    assert paths == ["sql", "raw"]
    assert sum(count for count, *_ in in_sql["totalCount"]) > 5  # a real answer, not an empty one
    for method in methods.split(","):
        assert same_periods(in_sql[method], raw[method]), method


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"aggrMethods": "p95"}, "raw"),  # percentiles need the values
        ({"aggrMethods": "distinctCount"}, "raw"),
        ({"aggrMethods": "sum", "aggrPeriodDuration": "PT30M"}, "sql"),  # not whole hours
        ({"aggrMethods": "sum", "timeAt": z(at(0.5))}, "sql"),  # window not on whole hours
        ({"aggrMethods": "sum", "aggrPeriodDuration": "P1D", "timeAt": z(at(0.5))}, "raw"),
        ({"aggrMethods": "sum,avg"}, "rollups"),
    ],
)
def test_the_cheapest_correct_path_is_chosen(stored, monkeypatch, params, path):
    paths = spy_on_rollups(monkeypatch)
    values = {"timerel": "between", "timeAt": z(at(0)), "endTimeAt": z(at(6)),
              "aggrPeriodDuration": "PT1H", **params}  # fmt: skip
    response = get(stored, attrs="pm25", options="aggregatedValues", **values)
    assert response.status_code == 200, response.text
    assert paths == [path]


def test_open_windows_get_whole_hour_bounds(stored):
    body = get(
        stored,
        attrs="pm25",
        options="aggregatedValues",
        aggrMethods="totalCount",
        timerel="before",
        timeAt=z(at(5)),
    ).json()["pm25"]
    assert body["totalCount"] == [[5, z(at(0)), z(at(5))]]


def test_percentiles_and_gap_filling(api):
    sparse = [reading(10.0, at(0)), reading(20.0, at(0.5)), reading(40.0, at(3))]
    post(api, station(pm25=sparse))

    def ask(**extra: Any) -> dict[str, Any]:
        return aggregated(api, "avg,p50", "PT1H", (0, 4), **extra).json()["pm25"]

    plain = ask()
    assert [p[0] for p in plain["avg"]] == [15.0, None, None, 40.0]
    assert [p[0] for p in plain["p50"]] == [15.0, None, None, 40.0]
    assert [p[0] for p in ask(gapFill="previous")["avg"]] == [15.0, 15.0, 15.0, 40.0]
    # Linear between period midpoints: 15 at 00:30, 40 at 03:30.
    linear = [p[0] for p in ask(gapFill="linear")["avg"]]
    assert linear == pytest.approx([15.0, 15 + 25 / 3, 15 + 50 / 3, 40.0])
    assert [p[0] for p in ask(gapFill="null")["avg"]] == [15.0, None, None, 40.0]


def test_values_that_are_not_numbers(api):
    states = [reading("b", at(0)), reading("a", at(1)), reading("b", at(2))]
    flags = [reading(True, at(0)), reading(False, at(1)), reading(True, at(2))]
    post(api, station(state=states, flag=flags))
    body = get(
        api,
        options="aggregatedValues",
        aggrMethods="totalCount,distinctCount,min,max",
        timerel="between",
        timeAt=z(at(0)),
        endTimeAt=z(at(3)),
    ).json()
    assert body["state"]["min"][0][0] == "a" and body["state"]["max"][0][0] == "b"
    assert body["state"]["distinctCount"][0][0] == 2
    assert body["flag"]["min"][0][0] is False and body["flag"]["totalCount"][0][0] == 3
    refused = get(
        api,
        attrs="state",
        options="aggregatedValues",
        aggrMethods="avg",
        timerel="between",
        timeAt=z(at(0)),
        endTimeAt=z(at(3)),
    )
    problem(refused, 400, "InvalidRequest")


# --- 206 Partial Content ---------------------------------------------------------------------


def content_range(response) -> tuple[str, str, str]:
    unit, _, rest = response.headers["Content-Range"].partition(" ")
    assert unit == "date-time"
    bounds, _, size = rest.rpartition("/")
    start, end = bounds[: len(bounds) // 2], bounds[len(bounds) // 2 + 1 :]
    return start, end, size


def test_paging_forwards_through_everything(api_database, tenant):
    with client(api_database, tenant, temporal_max_instances=10) as api:
        post(api, station(pm25=hourly(), no2=[reading(1.0, at(h)) for h in range(0, 72, 3)]))
        seen: dict[str, list[str]] = {"pm25": [], "no2": []}
        params = {"timerel": "between", "timeAt": z(at(0)), "endTimeAt": z(at(100))}
        pages = 0
        while True:
            response = get(api, **params)
            pages += 1
            body = response.json()
            for name in seen:
                seen[name] += times(body.get(name, []))
            if response.status_code == 200:
                break
            assert response.status_code == 206
            start, end, size = content_range(response)
            assert (start, size) == (params["timeAt"], "*")
            assert end == max(times(body["pm25"]))
            assert len(body["pm25"]) == 10
            moved = datetime.fromisoformat(end.replace("Z", "+00:00")) + timedelta(microseconds=1)
            params["timeAt"] = z(moved)
        assert pages == 8
        assert seen["pm25"] == [z(at(h)) for h in range(72)]
        assert seen["no2"] == [z(at(h)) for h in range(0, 72, 3)]


def test_paging_backwards_with_last_n(api_database, tenant):
    with client(api_database, tenant, temporal_max_instances=10) as api:
        post(api, station(pm25=hourly(25)))
        first = get(api, lastN=15)
        assert first.status_code == 206
        assert times(first.json()["pm25"]) == [z(at(h)) for h in range(15, 25)]
        start, end, size = content_range(first)
        assert (start, end, size) == (z(at(24)), z(at(15)), "15")
        rest = get(api, lastN=5, timerel="before", timeAt=end)
        assert rest.status_code == 200
        assert times(rest.json()["pm25"]) == [z(at(h)) for h in range(10, 15)]
        assert get(api, lastN=10).status_code == 200


def test_paging_aggregated_periods(api_database, tenant):
    with client(api_database, tenant, temporal_max_instances=4) as api:
        post(api, station(pm25=hourly(10)))
        first = aggregated(api, "totalCount", "PT1H", (0, 10))
        assert first.status_code == 206
        assert content_range(first) == (z(at(0)), z(at(4)), "*")
        assert len(first.json()["pm25"]["totalCount"]) == 4
        rest = aggregated(api, "totalCount", "PT1H", (4, 10))
        assert rest.status_code == 206
        assert [p[1] for p in rest.json()["pm25"]["totalCount"]] == [z(at(h)) for h in range(4, 8)]


# --- instance and attribute writes ------------------------------------------------------------


def test_patch_and_delete_instances(stored):
    instances = get(stored, attrs="pm25", lastN=2).json()["pm25"]
    newest, before = instances[-1], instances[0]
    url = f"{TEMPORAL}/{STATION}/attrs/pm25/{newest['instanceId']}"
    patched = stored.patch(url, json={"value": 7.0, "unitCode": "GP"}, headers={"Link": LINK})
    assert patched.status_code == 204, patched.text
    again = get(stored, attrs="pm25", lastN=1).json()["pm25"][0]
    assert (again["value"], again["unitCode"]) == (7.0, "GP")
    latest = stored.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"Link": LINK}).json()
    assert latest["pm25"]["value"] == 7.0  # it was the instance the latest state holds
    moved = {"value": 8.0, "observedAt": z(at(100))}
    url = f"{TEMPORAL}/{STATION}/attrs/pm25/{before['instanceId']}"
    assert stored.patch(url, json=moved, headers={"Link": LINK}).status_code == 204
    assert times(get(stored, attrs="pm25", lastN=2).json()["pm25"]) == [z(at(71)), z(at(100))]
    assert stored.delete(url, headers={"Link": LINK}).status_code == 404  # it moved
    url = f"{TEMPORAL}/{STATION}/attrs/pm25/{newest['instanceId']}"
    assert stored.delete(url, headers={"Link": LINK}).status_code == 204
    assert len(get(stored, attrs="pm25").json()["pm25"]) == 71
    problem(stored.delete(url, headers={"Link": LINK}), 404, "ResourceNotFound")
    problem(
        stored.delete(f"{TEMPORAL}/{STATION}/attrs/no2/{newest['instanceId']}",
                      headers={"Link": LINK}),
        404,
        "ResourceNotFound",
    )  # fmt: skip
    problem(
        stored.patch(f"{TEMPORAL}/{STATION}/attrs/pm25/not-a-uri", json={"value": 1},
                     headers={"Link": LINK}),
        400,
        "BadRequestData",
    )  # fmt: skip


def test_delete_attribute_dataset_all_and_entity(stored):
    url = f"{TEMPORAL}/{STATION}/attrs/no2"
    raw = {"datasetId": "urn:ngsi-ld:Dataset:raw"}
    assert stored.delete(url, params=raw, headers={"Link": LINK}).status_code == 204
    assert [i.get("datasetId") for i in get(stored, attrs="no2").json()["no2"]] == [None, None]
    assert stored.delete(url, headers={"Link": LINK}).status_code == 204
    assert "no2" not in get(stored).json()
    problem(stored.delete(url, headers={"Link": LINK}), 404, "ResourceNotFound")
    post(stored, station(no2=[reading(1.0, at(0), datasetId="urn:ngsi-ld:Dataset:a"),
                              reading(2.0, at(0))]))  # fmt: skip
    assert (
        stored.delete(url, params={"deleteAll": "true"}, headers={"Link": LINK}).status_code == 204
    )
    assert "no2" not in get(stored).json()
    latest = stored.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"Link": LINK}).json()
    assert "no2" not in latest
    assert stored.delete(f"{TEMPORAL}/{STATION}").status_code == 204
    problem(get(stored), 404, "ResourceNotFound")
    problem(stored.delete(f"{TEMPORAL}/{STATION}"), 404, "ResourceNotFound")
    assert stored.get(f"/ngsi-ld/v1/entities/{STATION}").status_code == 404


def test_append_attribute_instances(stored):
    url = f"{TEMPORAL}/{STATION}/attrs"
    added = stored.post(url, json={"o3": [reading(3.0, at(1))]}, headers={"Link": LINK})
    assert added.status_code == 204, added.text
    assert get(stored, attrs="o3").json()["o3"][0]["value"] == 3.0
    missing = stored.post(f"{TEMPORAL}/urn:x:none/attrs", json={"o3": [reading(3.0, at(1))]})
    problem(missing, 404, "ResourceNotFound")
    no_time = stored.post(
        url, json={"o3": [{"type": "Property", "value": 1}]}, headers={"Link": LINK}
    )
    problem(no_time, 400, "BadRequestData")


def test_reads_and_writes_need_credentials(api_database, tenant):
    with client(api_database, tenant, auth_enabled=True) as api:
        problem(get(api), 401, "Unauthorized")
        problem(post(api, station(pm25=hourly(1))), 401, "Unauthorized")
        problem(api.delete(f"{TEMPORAL}/{STATION}"), 401, "Unauthorized")


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "P1X"},
         400, "BadRequestData"),
        ({"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "-PT1H"},
         400, "BadRequestData"),
        ({"options": "aggregatedValues", "aggrMethods": "median"}, 400, "BadRequestData"),
        ({"options": "aggregatedValues"}, 400, "BadRequestData"),
        ({"aggrMethods": "sum"}, 400, "BadRequestData"),
        ({"timerel": "after"}, 400, "BadRequestData"),
        ({"timeAt": z(at(1))}, 400, "BadRequestData"),
        ({"timerel": "during", "timeAt": z(at(1))}, 400, "BadRequestData"),
        ({"timerel": "between", "timeAt": z(at(2)), "endTimeAt": z(at(1))}, 400, "BadRequestData"),
        ({"timerel": "after", "timeAt": "yesterday"}, 400, "BadRequestData"),
        ({"lastN": "0"}, 400, "BadRequestData"),
        ({"lastN": "-3"}, 400, "BadRequestData"),
        ({"lastN": "many"}, 400, "BadRequestData"),
        ({"lastN": "100000"}, 403, "TooManyResults"),
        ({"options": "aggregatedValues", "aggrMethods": "sum", "lastN": "2"},
         400, "BadRequestData"),
        ({"options": "aggregatedValues", "aggrMethods": "sum", "timezone": "Mars/Olympus"},
         400, "BadRequestData"),
        ({"options": "aggregatedValues", "aggrMethods": "sum", "gapFill": "zero"},
         400, "BadRequestData"),
        ({"options": "keyValues"}, 400, "BadRequestData"),
        ({"timeproperty": "modifiedAt"}, 422, "OperationNotSupported"),
        ({"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "PT1S",
          "timerel": "between", "timeAt": z(at(0)), "endTimeAt": z(at(72))},
         403, "TooManyResults"),
    ],
)  # fmt: skip
def test_parameter_errors_are_problem_details(stored, params, status, error):
    problem(get(stored, **params), status, error)


def test_unknown_entity_tenant_and_bad_bodies(api):
    problem(get(api), 404, "NonexistentTenant")  # nothing written for this tenant yet
    post(api, station(pm25=hourly(1)))
    problem(get(api, "urn:ngsi-ld:AirQualityObserved:none"), 404, "ResourceNotFound")
    problem(get(api, "not a uri"), 400, "BadRequestData")
    unknown = api.get(f"{TEMPORAL}/{STATION}", headers={"NGSILD-Tenant": "no-such-tenant"})
    problem(unknown, 404, "NonexistentTenant")
    problem(query(api), 400, "BadRequestData")  # no entity selection at all
    problem(post(api, {"id": STATION}), 400, "BadRequestData")
    problem(post(api, station(pm25=[{"type": "Property", "value": 1}])), 400, "BadRequestData")
    problem(post(api, station(pm25=[])), 400, "BadRequestData")
    bad_query = api.post("/ngsi-ld/v1/temporal/entityOperations/query", json={"type": "Query",
                         "temporalQ": {"timerel": "soon"}})  # fmt: skip
    problem(bad_query, 400, "BadRequestData")
