"""storage/temporal_reads.py, rollup_reads.py and temporal_writes.py against hand-made history."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from storage import rollup_reads, temporal_reads
from storage.backend import Backend
from storage.database import connect
from storage.records import ObservationRow
from storage.rollup_reads import fetch_rollup_table, fetch_rollups, fetch_tiers
from storage.rollup_refresh import refresh_rollups
from storage.rollups import MICROSECOND
from storage.temporal_reads import _fetch_raw_whole, fetch_last_n, fetch_raw
from storage.temporal_series import Series, instance_id, instance_ids, parse_instance_id
from storage.temporal_writes import (
    delete_attribute_history,
    delete_entity_history,
    delete_instance,
    insert_instances,
    update_instance,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
TYPE = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
PM25 = "https://smartdatamodels.org/dataModel.Environment/pm25"
NO2 = "https://smartdatamodels.org/dataModel.Environment/no2"
STATE = "https://example.org/state"
DATASET = "urn:ngsi-ld:Dataset:raw"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aconn(database_url: str, backend: Backend) -> AsyncIterator[psycopg.AsyncConnection]:
    """An async connection to the migrated session database."""
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        yield connection


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def us(*minutes: float) -> np.ndarray:
    """Times as fetch_raw gives them: datetime64[us], naive UTC."""
    return np.array([at(m).replace(tzinfo=None) for m in minutes], dtype="datetime64[us]")


def row(tenant: str, entity: str, attribute: str, minutes: float, value: Any, **extra: Any):
    number = value if type(value) in (int, float) else None
    return ObservationRow(
        tenant,
        entity,
        TYPE,
        attribute,
        extra.get("dataset", ""),
        at(minutes),
        number,
        None if number is not None else value,
        extra.get("unit", "GQ"),
    )


def entities(tenant: str) -> tuple[str, str]:
    return (
        f"urn:ngsi-ld:AirQualityObserved:{tenant}-a",
        f"urn:ngsi-ld:AirQualityObserved:{tenant}-b",
    )


def history(tenant: str) -> list[ObservationRow]:
    """Entity a: pm25 in two hours, no2 in two datasets, a text state; entity b: pm25."""
    a, b = entities(tenant)
    return [
        row(tenant, a, PM25, 0, 10.0),
        row(tenant, a, PM25, 20, 12.5),
        row(tenant, a, PM25, 59.5, 7),
        row(tenant, a, PM25, 60, 3.0, unit=None),
        row(tenant, a, PM25, 90, 1.0),
        row(tenant, a, NO2, 5, 40.0, unit="GP"),
        row(tenant, a, NO2, 6, 41.0, dataset=DATASET, unit="GP"),
        row(tenant, a, STATE, 10, "ok", unit=None),
        row(tenant, a, STATE, 11, 3.5, unit=None),
        row(tenant, a, STATE, 12, {"code": 2}, unit=None),
        row(tenant, b, PM25, 30, 99.0),
    ]


@pytest.fixture
async def stored(aconn, tenant: str) -> str:
    """This test's tenant with `history`, plus a neighbour tenant that must never show."""
    async with aconn.transaction():
        assert await insert_instances(aconn, tenant, history(tenant)) == 11
        await insert_instances(aconn, f"{tenant}-x", history(f"{tenant}-x"))
    return tenant


def refresh(database_url: str) -> None:
    with connect(database_url) as conn:
        refresh_rollups(conn, settle=timedelta(0))


async def test_fetch_raw_gives_sorted_arrays_per_series(aconn, stored):
    a, b = entities(stored)
    found = await fetch_raw(aconn, stored, [a, b, "urn:ngsi-ld:X:none"], None, None, None)
    assert sorted(found) == sorted(
        [(a, PM25, ""), (a, NO2, ""), (a, NO2, DATASET), (a, STATE, ""), (b, PM25, "")]
    )
    pm25 = found[(a, PM25, "")]
    assert pm25.entity_type == TYPE
    assert pm25.times.dtype == np.dtype("datetime64[us]")
    np.testing.assert_array_equal(pm25.times, us(0, 20, 59.5, 60, 90))
    np.testing.assert_array_equal(pm25.values, [10.0, 12.5, 7.0, 3.0, 1.0])
    assert pm25.others is None
    assert (pm25.unit_code, pm25.unit_codes) == (None, ["GQ", "GQ", "GQ", None, "GQ"])
    assert (found[(a, NO2, DATASET)].unit_code, found[(a, NO2, DATASET)].unit_codes) == ("GP", None)
    state = found[(a, STATE, "")]
    assert np.isnan(state.values[0]) and state.values[1] == 3.5 and np.isnan(state.values[2])
    assert state.others == ["ok", None, {"code": 2}]


@pytest.mark.parametrize(
    ("attributes", "start", "end", "expected"),
    [
        ([PM25], at(20), at(60), [20, 59.5]),  # start inclusive, end exclusive
        ([PM25], None, at(1), [0]),
        ([PM25], at(60), None, [60, 90]),
        ([NO2], None, None, []),  # entity a's pm25 not asked for
    ],
)
async def test_fetch_raw_windows(aconn, stored, attributes, start, end, expected):
    a, _ = entities(stored)
    found = await fetch_raw(aconn, stored, [a], attributes, start, end)
    times = found[(a, PM25, "")].times if (a, PM25, "") in found else np.empty(0, "datetime64[us]")
    np.testing.assert_array_equal(times, us(*expected))


@pytest.mark.parametrize("attributes", [None, [PM25], [STATE, NO2]])
async def test_fetch_raw_in_two_statements_equals_one(aconn, stored, attributes):
    """Other values and unit codes fetched only where needed, as the one-statement read."""
    a, b = entities(stored)
    split = await fetch_raw(aconn, stored, [a, b], attributes, None, at(80))
    whole = await _fetch_raw_whole(aconn, stored, [a, b], attributes, None, at(80))
    assert list(split) == list(whole)
    for key, series in whole.items():
        got = split[key]
        np.testing.assert_array_equal(got.times, series.times)
        np.testing.assert_array_equal(got.values, series.values)
        assert (got.entity_type, got.others) == (series.entity_type, series.others)
        assert (got.unit_code, got.unit_codes) == (series.unit_code, series.unit_codes)


async def test_fetch_raw_reads_again_after_a_write_between_its_statements(
    aconn, stored, database_url, monkeypatch
):
    a, _ = entities(stored)
    original = temporal_reads.fetch_arrays
    calls = 0

    async def write_after_the_first(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        found = await original(*args)
        if calls == 1:
            connecting = psycopg.AsyncConnection.connect(database_url)
            async with await connecting as other, other.transaction():
                await insert_instances(other, stored, [row(stored, a, STATE, 13, "new")])
        return found

    monkeypatch.setattr(temporal_reads, "fetch_arrays", write_after_the_first)
    found = await fetch_raw(aconn, stored, [a], [STATE], None, None)
    assert calls == 3
    assert found[(a, STATE, "")].others == ["ok", None, {"code": 2}, "new"]
    np.testing.assert_array_equal(found[(a, STATE, "")].times, us(10, 11, 12, 13))


async def test_fetch_rollups_matches_the_hand_computed_hours(aconn, stored, database_url, backend):
    refresh(database_url)
    a, b = entities(stored)
    found = await fetch_rollups(aconn, backend.name, stored, [a], [PM25, STATE], None, None)
    assert sorted(found) == sorted([(a, PM25, ""), (a, STATE, "")])
    pm25 = found[(a, PM25, "")]
    np.testing.assert_array_equal(pm25.buckets, us(0, 60))
    np.testing.assert_array_equal(pm25.observation_counts, [3, 2])
    np.testing.assert_array_equal(pm25.value_counts, [3, 2])
    np.testing.assert_array_equal(pm25.sums, [29.5, 4.0])
    np.testing.assert_array_equal(pm25.sum_squares, [100 + 156.25 + 49, 10.0])
    np.testing.assert_array_equal(pm25.mins, [7.0, 1.0])
    np.testing.assert_array_equal(pm25.maxs, [12.5, 3.0])
    state = found[(a, STATE, "")]
    np.testing.assert_array_equal(state.observation_counts, [3])
    np.testing.assert_array_equal(state.value_counts, [1])
    later = await fetch_rollups(aconn, backend.name, stored, [a, b], [PM25], at(60), at(120))
    assert sorted(later) == [(a, PM25, "")]
    np.testing.assert_array_equal(later[(a, PM25, "")].buckets, us(60))


async def test_rollup_table_regrouped_per_hour_is_the_same(
    aconn, stored, database_url, backend, monkeypatch
):
    """The TimescaleDB statement (grouped again per hour) gives the same table when it reads
    `observation_rollups`, which already has one row per series and hour."""
    if backend.name != "postgres":
        pytest.skip("needs observation_rollups")
    refresh(database_url)
    a, b = entities(stored)
    args = (stored, [a, b], None, None, None)
    plain = await fetch_rollup_table(aconn, "postgres", *args)
    monkeypatch.setitem(rollup_reads._ROLLUP_TABLES, "timescaledb", "observation_rollups")
    regrouped = await fetch_rollup_table(aconn, "timescaledb", *args)
    assert plain.keys == regrouped.keys == sorted(plain.keys)
    assert plain.keys == regrouped.keys
    for name in ("series", "buckets", "observation_counts", "value_counts", "sums", "mins"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(regrouped, name))
    empty = await fetch_rollup_table(
        aconn, "postgres", stored, ["urn:ngsi-ld:X:none"], None, None, None
    )
    assert (empty.keys, len(empty.series), empty.buckets.dtype) == ([], 0, "datetime64[us]")


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (at(60), None), (None, at(60)), (at(-600), at(600))]
)
async def test_rollup_table_of_named_attributes_is_the_same(
    aconn, stored, database_url, backend, start, end
):
    """Named attributes are read from the hour packs and numbered from the request's lists
    (storage/hour_packs.py); the table is the one the generic statement reads from the
    hourly rows, datasets, duplicates and windows included."""
    if backend.name != "postgres":
        pytest.skip("hour packs are kept on plain PostgreSQL only")
    refresh(database_url)
    a, b = entities(stored)
    window = (start, end)
    generic = await fetch_rollup_table(aconn, "postgres", stored, [a, b], None, *window)
    named = await fetch_rollup_table(
        aconn, "postgres", stored, [b, a, b], [STATE, NO2, PM25, NO2, TYPE], *window
    )
    assert named.keys == generic.keys == sorted(generic.keys)
    assert named.keys  # every window holds some hours
    for name in ("series", "buckets", "observation_counts", "value_counts", "sums", "maxs"):
        np.testing.assert_array_equal(getattr(named, name), getattr(generic, name))
    one = await fetch_rollup_table(aconn, "postgres", stored, [a], [NO2], *window)
    if start is None:
        assert one.keys == [(a, NO2, ""), (a, NO2, DATASET)]
        assert one.series.tolist() == [0, 1]
    nothing = await fetch_rollup_table(aconn, "postgres", stored, [b], [NO2], *window)
    assert (nothing.keys, len(nothing.buckets)) == ([], 0)


async def test_fetch_rollups_marks_hours_without_numbers(aconn, stored, database_url, backend):
    a, _ = entities(stored)
    async with aconn.transaction():
        await insert_instances(aconn, stored, [row(stored, a, STATE, 200, "late")])
    refresh(database_url)
    found = await fetch_rollups(aconn, backend.name, stored, [a], [STATE], at(180), None)
    hour = found[(a, STATE, "")]
    assert (hour.observation_counts.tolist(), hour.value_counts.tolist()) == ([1], [0])
    assert all(math.isnan(x[0]) for x in (hour.sums, hour.sum_squares, hour.mins, hour.maxs))


@pytest.mark.parametrize(
    ("n", "start", "end", "expected"),
    [
        (2, None, None, {PM25: [60, 90], NO2: [5]}),
        (10, None, None, {PM25: [0, 20, 59.5, 60, 90], NO2: [5]}),
        (2, None, at(60), {PM25: [20, 59.5], NO2: [5]}),
        (1, at(10), at(60), {PM25: [59.5]}),  # no2 has nothing in the window
    ],
)
async def test_fetch_last_n_gives_the_newest_oldest_first(aconn, stored, n, start, end, expected):
    a, _ = entities(stored)
    found = await fetch_last_n(aconn, stored, [a], [PM25, NO2], n, start, end)
    got = {key[1]: found[key].times for key in found if key[2] == ""}
    assert sorted(got) == sorted(expected)
    for attribute, minutes in expected.items():
        np.testing.assert_array_equal(got[attribute], us(*minutes))
    if n >= 2 and start is None and end is None:
        np.testing.assert_array_equal(found[(a, NO2, DATASET)].times, us(6))


async def test_fetch_last_n_of_every_attribute(aconn, stored):
    a, b = entities(stored)
    found = await fetch_last_n(aconn, stored, [a, b], None, 1, None, None)
    newest = {key: series.values.tolist() for key, series in found.items() if key[2] == ""}
    state = newest.pop((a, STATE, ""))
    assert newest == {(a, PM25, ""): [1.0], (a, NO2, ""): [40.0], (b, PM25, ""): [99.0]}
    assert len(state) == 1 and math.isnan(state[0])
    assert found[(a, STATE, "")].others == [{"code": 2}]


# --- writes -----------------------------------------------------------------------------------


async def pending(aconn, tenant: str) -> list[tuple[datetime, datetime]]:
    cursor = await aconn.execute(
        "SELECT from_ts, to_ts FROM rollup_pending WHERE tenant = %s ORDER BY 1", [tenant]
    )
    rows = await cursor.fetchall()
    await aconn.commit()
    return rows


async def raw_values(aconn, tenant: str, entity: str, attribute: str) -> Series | None:
    found = await fetch_raw(aconn, tenant, [entity], [attribute], None, None)
    await aconn.commit()
    return found.get((entity, attribute, ""))


async def test_insert_instances_replaces_a_corrected_value(aconn, stored, database_url, backend):
    a, _ = entities(stored)
    refresh(database_url)
    async with aconn.transaction():
        written = await insert_instances(
            aconn,
            stored,
            [row(stored, a, PM25, 20, 1000.0), row(stored, a, PM25, 20, 20.0)],  # last wins
        )
    assert written == 1
    assert await pending(aconn, stored) == [(at(20), at(20) + MICROSECOND)]
    series = await raw_values(aconn, stored, a, PM25)
    assert series is not None and series.values.tolist() == [10.0, 20.0, 7.0, 3.0, 1.0]
    refresh(database_url)
    found = await fetch_rollups(aconn, backend.name, stored, [a], [PM25], None, at(60))
    assert found[(a, PM25, "")].sums.tolist() == [37.0]


async def test_instances_are_updated_and_deleted_by_instance_id(aconn, stored, database_url):
    a, _ = entities(stored)
    refresh(database_url)
    series = await raw_values(aconn, stored, a, PM25)
    assert series is not None
    ids = instance_ids(a, PM25, "", series.times)
    assert ids[1] == instance_id(a, PM25, None, at(20))
    observed_at, dataset = parse_instance_id(ids[1], a, PM25)
    async with aconn.transaction():
        assert await update_instance(aconn, stored, a, PM25, observed_at, dataset, 5, "GP")
        assert not await update_instance(aconn, stored, a, PM25, at(21), dataset, 5)
    async with aconn.transaction():
        assert await delete_instance(aconn, stored, a, PM25, at(0), None)
        assert not await delete_instance(aconn, stored, a, PM25, at(0), None)
    assert await pending(aconn, stored) == [
        (at(0), at(0) + MICROSECOND),
        (at(20), at(20) + MICROSECOND),
    ]
    series = await raw_values(aconn, stored, a, PM25)
    assert series is not None
    assert series.values.tolist() == [5.0, 7.0, 3.0, 1.0]
    assert series.unit_codes == ["GP", "GQ", None, "GQ"]


async def test_deleting_history_removes_rows_and_rollups(aconn, stored, database_url, backend):
    a, b = entities(stored)
    refresh(database_url)
    async with aconn.transaction():
        assert await delete_attribute_history(aconn, stored, a, NO2, DATASET) == 1
    assert sorted(await fetch_raw(aconn, stored, [a], [NO2], None, None)) == [(a, NO2, "")]
    async with aconn.transaction():
        assert await delete_attribute_history(aconn, stored, a, NO2) == 1
        assert await delete_attribute_history(aconn, stored, a, PM25, delete_all=True) == 5
        assert await delete_entity_history(aconn, stored, b) == 1
        assert await delete_entity_history(aconn, stored, b) == 0
    refresh(database_url)
    found = await fetch_rollups(aconn, backend.name, stored, [a, b], None, None, None)
    assert sorted(found) == [(a, STATE, "")]
    assert sorted(await fetch_raw(aconn, stored, [a, b], None, None, None)) == [(a, STATE, "")]
    # The daily rollups lose the deleted series too.
    days = await fetch_tiers(
        aconn, backend.name, stored, [a, b], None, [], [(at(-2880), at(2880))], "Europe/Brussels"
    )
    assert days is not None and sorted(days.keys) == [(a, STATE, "")]
    # The neighbour tenant keeps everything.
    other = f"{stored}-x"
    assert len(await fetch_raw(aconn, other, list(entities(other)), None, None, None)) == 5


async def test_writes_create_the_partitions_they_need(aconn, tenant, backend):
    moment = datetime(2011, 7, 15, 12, 30, tzinfo=UTC)
    written = row(tenant, entities(tenant)[0], PM25, 0, 1.0)._replace(observed_at=moment)
    await insert_instances(aconn, tenant, [written])  # on an idle connection
    await aconn.rollback()
    # The partition was committed on its own; the rolled-back row is gone.
    cursor = await aconn.execute("SELECT to_regclass('observations_y2011m07') IS NOT NULL")
    assert (await cursor.fetchone())[0] is (backend.name == "postgres")
    assert await fetch_raw(aconn, tenant, [entities(tenant)[0]], None, None, None) == {}
    await aconn.rollback()
    async with aconn.transaction():
        assert await insert_instances(aconn, tenant, [written]) == 1
    assert len(await fetch_raw(aconn, tenant, [entities(tenant)[0]], None, None, None)) == 1
    await aconn.rollback()


# --- instanceId -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "observed_at"),
    [
        (None, datetime(2024, 3, 4, 10, 0, 0, 123456, tzinfo=UTC)),
        ("urn:ngsi-ld:Dataset:één", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
def test_instance_ids_round_trip(dataset, observed_at):
    instance = instance_id("urn:ngsi-ld:E:1", PM25, dataset, observed_at)
    assert instance.startswith("urn:ngsi-ld:instance:")
    assert parse_instance_id(instance, "urn:ngsi-ld:E:1", PM25) == (observed_at, dataset or "")
    assert instance != instance_id("urn:ngsi-ld:E:1", NO2, dataset, observed_at)


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ("urn:ngsi-ld:other:AAAA", "not an instanceId"),
        ("urn:ngsi-ld:instance:***", "malformed"),
        ("urn:ngsi-ld:instance:AAAA", "not an instance of"),
        (instance_id("urn:ngsi-ld:E:1", NO2, None, T0), "not an instance of"),
        (instance_id("urn:ngsi-ld:E:1", PM25, None, T0) + "=", "malformed"),
    ],
)
def test_instance_ids_of_something_else_are_refused(instance, message):
    with pytest.raises(ValueError, match=message):
        parse_instance_id(instance, "urn:ngsi-ld:E:1", PM25)
