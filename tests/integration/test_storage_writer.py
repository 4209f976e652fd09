"""BatchWriter against the real PostgreSQL: idempotent observations, merged state, counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devices.model import AttributeMapping, DeviceConfig, DeviceGroup
from storage.partitions import MonthlyPartitions, months_of, partition_name
from storage.records import Batch, ObservationRow
from storage.writer import BatchWriter, WriteResult, load_registry, write_registry

pytestmark = pytest.mark.integration

START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
T1 = "2030-03-01T10:00:00Z"
T1_HALF = "2030-03-01T10:00:00.500000Z"
T2 = "2030-03-01T11:00:00.000000Z"


def count(conn: psycopg.Connection, query: str, *params: object) -> int:
    value = conn.execute(query, params).fetchone()[0]
    conn.commit()
    return int(value)


def stored_observations(conn: psycopg.Connection, tenant: str) -> int:
    return count(conn, "SELECT count(*) FROM observations WHERE tenant = %s", tenant)


def stored_entity(conn: psycopg.Connection, entity_id: str) -> dict:
    entity = conn.execute("SELECT entity FROM entities WHERE id = %s", [entity_id]).fetchone()[0]
    conn.commit()
    return entity


def pm25(value: float, observed_at: str | None, dataset_id: str | None = None) -> dict:
    instance: dict = {"type": "Property", "value": value}
    if observed_at is not None:
        instance["observedAt"] = observed_at
    if dataset_id is not None:
        instance["datasetId"] = dataset_id
    return instance


# --- observations ---------------------------------------------------------------------------


def test_a_batch_written_twice_is_stored_once(conn, backend, records):
    writer = BatchWriter(backend)
    batch = Batch(observations=records.observations(50, START, entities=5))
    first = writer.write(conn, batch)
    second = writer.write(conn, batch)
    assert (first.observations_inserted, second.observations_inserted) == (50, 0)
    assert (writer.fast_path_batches, writer.slow_path_batches) == (1, 1)
    assert stored_observations(conn, records.tenant) == 50


def test_duplicates_inside_one_batch_are_stored_once(conn, backend, records):
    rows = records.observations(20, START)
    result = BatchWriter(backend).write(conn, Batch(observations=rows + rows[:7] + rows[3:5]))
    assert result.observations_inserted == 20
    assert stored_observations(conn, records.tenant) == 20


def test_a_batch_half_redelivered_inserts_only_the_new_half(conn, backend, records):
    rows = records.observations(40, START)
    writer = BatchWriter(backend)
    writer.write(conn, Batch(observations=rows[:20]))
    assert writer.write(conn, Batch(observations=rows)).observations_inserted == 20
    assert stored_observations(conn, records.tenant) == 40


def test_plain_tuples_in_row_order_are_written_like_observation_rows(conn, backend, records):
    rows = [tuple(row) for row in records.observations(10, START)]
    assert BatchWriter(backend).write(conn, Batch(observations=rows)).observations_inserted == 10
    assert stored_observations(conn, records.tenant) == 10


def test_values_units_and_dataset_ids_round_trip(conn, backend, records):
    entity = records.entity_id()
    values = [3.5, None, {"a": [1, 2]}, "congested", True]
    rows = [
        ObservationRow(records.tenant, entity, "T", f"attribute{i}", f"ds{i}", START, *pair, "C62")
        for i, pair in enumerate(
            (value, None) if isinstance(value, float) else (None, value) for value in values
        )
    ]
    BatchWriter(backend).write(conn, Batch(observations=rows))
    stored = conn.execute(
        "SELECT value_num, value_json FROM observations WHERE tenant = %s AND unit_code = 'C62'"
        " ORDER BY attribute",
        [records.tenant],
    ).fetchall()
    assert stored == [(3.5, None), (None, None), (None, {"a": [1, 2]}), (None, "congested"),
                      (None, True)]  # fmt: skip


# --- partitions (plain PostgreSQL) ----------------------------------------------------------


def partitions_of_observations(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT relid::text FROM pg_partition_tree('observations') WHERE isleaf"
    ).fetchall()
    conn.commit()
    return {name for (name,) in rows}


BRUSSELS_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("times", "months"),
    [
        ([datetime(2030, 5, 2, tzinfo=UTC)], [(2030, 5), (2030, 6)]),
        (
            [datetime(2031, 12, 31, 23, tzinfo=UTC), datetime(2032, 1, 1, tzinfo=UTC)],
            [(2031, 12), (2032, 1), (2032, 2)],
        ),
        # Months are UTC months: 00:30 in Brussels on 1 January is still December in UTC.
        ([datetime(2032, 1, 1, 0, 30, tzinfo=BRUSSELS_WINTER)], [(2031, 12), (2032, 1)]),
        (
            [datetime(2001, 1, 5, tzinfo=UTC), datetime(2033, 5, 5, tzinfo=UTC)],
            [(2001, 1), (2033, 5), (2033, 6)],
        ),
        ([], []),
    ],
    ids=["one month", "year boundary", "local time", "bad clock", "empty"],
)
def test_months_of_a_batch(times, months):
    rows = [("t", "e", "T", "a", "", moment, 1.0, None, None) for moment in times]
    assert months_of(rows) == months


@pytest.fixture
def plain_backend(backend):
    if backend.name != "postgres":
        pytest.skip("monthly partitions belong to the plain PostgreSQL backend")
    return backend


def test_partitions_are_made_for_months_across_a_year_boundary(conn, plain_backend, records):
    new_year = datetime(2031, 12, 31, 22, 0, tzinfo=UTC)
    rows = records.observations(6, new_year, step=timedelta(hours=1))
    BatchWriter(plain_backend).write(conn, Batch(observations=rows))
    placed = conn.execute(
        "SELECT tableoid::regclass::text, count(*) FROM observations WHERE tenant = %s"
        " GROUP BY 1 ORDER BY 1",
        [records.tenant],
    ).fetchall()
    assert placed == [("observations_y2031m12", 2), ("observations_y2032m01", 4)]
    # The month after the newest reading is made ahead of time.
    assert "observations_y2032m02" in partitions_of_observations(conn)


def test_a_reading_from_a_bad_clock_does_not_create_every_month_in_between(
    conn, plain_backend, records
):
    rows = records.observations(1, datetime(2001, 1, 5, tzinfo=UTC))
    rows += records.observations(1, datetime(2033, 5, 5, tzinfo=UTC))
    BatchWriter(plain_backend).write(conn, Batch(observations=rows))
    partitions = partitions_of_observations(conn)
    assert {"observations_y2001m01", "observations_y2033m05"} <= partitions
    assert "observations_y2017m06" not in partitions


def test_two_workers_creating_the_same_partition_at_once_both_succeed(
    conn, database_url, plain_backend, run_together
):
    month = (2045, 6)
    created = run_together(database_url, 4, lambda c: MonthlyPartitions().ensure(c, [month]))
    assert sorted(created) == [[], [], [], [partition_name(month)]]
    assert partition_name(month) in partitions_of_observations(conn)


# --- entity merge (the SQL function, table-driven) ------------------------------------------

MERGE_CASES = [
    ("newer replaces older",
     {"pm25": pm25(1, T1)}, {"pm25": pm25(2, T2)}, {"pm25": pm25(2, T2)}),
    ("late data is ignored",
     {"pm25": pm25(2, T2)}, {"pm25": pm25(1, T1)}, {"pm25": pm25(2, T2)}),
    ("equal time: incoming wins",
     {"pm25": pm25(1, T1)}, {"pm25": pm25(9, T1)}, {"pm25": pm25(9, T1)}),
    ("fraction beats whole second",
     {"pm25": pm25(1, T1_HALF)}, {"pm25": pm25(2, T1)}, {"pm25": pm25(1, T1_HALF)}),
    ("context property is replaced",
     {"name": {"type": "Property", "value": "old"}},
     {"name": {"type": "Property", "value": "new"}},
     {"name": {"type": "Property", "value": "new"}}),
    ("observation replaces one without time",
     {"pm25": pm25(1, None)}, {"pm25": pm25(2, T1)}, {"pm25": pm25(2, T1)}),
    ("absent attributes are kept",
     {"pm25": pm25(1, T1), "no2": pm25(7, T1)}, {"pm25": pm25(2, T2)},
     {"pm25": pm25(2, T2), "no2": pm25(7, T1)}),
    ("no current state",
     None, {"pm25": pm25(1, T1)}, {"pm25": pm25(1, T1)}),
    ("datasetIds merge one by one",
     {"pm25": [pm25(1, T2, "urn:a"), pm25(2, T1, "urn:b")]},
     {"pm25": [pm25(3, T1, "urn:a"), pm25(4, T2, "urn:b")]},
     {"pm25": [pm25(1, T2, "urn:a"), pm25(4, T2, "urn:b")]}),
    ("a new datasetId joins the default instance",
     {"pm25": pm25(1, T1)}, {"pm25": pm25(2, T1, "urn:c")},
     {"pm25": [pm25(1, T1), pm25(2, T1, "urn:c")]}),
    ("single datasetId instance stays an array",
     {}, {"pm25": pm25(5, T1, "urn:a")}, {"pm25": [pm25(5, T1, "urn:a")]}),
    ("one default instance in an array becomes an object",
     {}, {"pm25": [pm25(5, T1)]}, {"pm25": pm25(5, T1)}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [case[1:] for case in MERGE_CASES],
    ids=[case[0] for case in MERGE_CASES],
)
def test_merge_attributes(conn, current, incoming, expected):
    merged = conn.execute(
        "SELECT stadspuls_merge_attributes(%s, %s)",
        [None if current is None else Jsonb(current), Jsonb(incoming)],
    ).fetchone()[0]
    assert merged == expected


# --- entities through the writer ------------------------------------------------------------


def test_late_entity_data_never_overwrites_newer_state(conn, backend, records):
    writer = BatchWriter(backend)
    writer.write(conn, Batch(entities=[records.fragment({"pm25": pm25(2, T2)})]))
    result = writer.write(
        conn, Batch(entities=[records.fragment({"pm25": pm25(1, T1), "name": {"value": "x"}})])
    )
    assert result.entities_upserted == 1
    assert stored_entity(conn, records.entity_id()) == {
        "pm25": pm25(2, T2),
        "name": {"value": "x"},
    }


def test_an_update_keeps_created_at_and_moves_modified_at(conn, backend, records):
    writer = BatchWriter(backend)
    writer.write(conn, Batch(entities=[records.fragment({"pm25": pm25(1, T1)})]))
    writer.write(conn, Batch(entities=[records.fragment({"pm25": pm25(2, T2)})]))
    created, modified, entity_type = conn.execute(
        "SELECT created_at, modified_at, type FROM entities WHERE id = %s", [records.entity_id()]
    ).fetchone()
    assert modified > created
    assert entity_type == "AirQualityObserved"


def test_several_fragments_of_one_entity_in_a_batch_are_folded_in_order(conn, backend, records):
    fragments = [
        records.fragment({"pm25": pm25(2, T2)}),
        records.fragment({"pm25": pm25(1, T1), "no2": pm25(5, T1)}),
        records.fragment({"name": {"value": "first"}}),
        records.fragment({"name": {"value": "second"}}),
        records.fragment({"pm25": pm25(3, T1)}, number=1),
    ]
    result = BatchWriter(backend).write(conn, Batch(entities=fragments))
    assert result.entities_upserted == 2
    assert stored_entity(conn, records.entity_id()) == {
        "pm25": pm25(2, T2),
        "no2": pm25(5, T1),
        "name": {"value": "second"},
    }


# --- dead letters and activity --------------------------------------------------------------


def test_a_redelivered_dead_letter_is_one_row_counted_each_time(conn, backend, records):
    writer = BatchWriter(backend)
    bad = records.dead_letter(b"{not json", START)
    again = records.dead_letter(b"{not json", START + timedelta(minutes=5))
    other_reason = records.dead_letter(b"{not json", START, reason="unknown_device")
    assert writer.write(conn, Batch(dead_letters=[bad, again, other_reason])).dead_letters == 3
    writer.write(
        conn, Batch(dead_letters=[records.dead_letter(b"{not json", START - timedelta(1))])
    )
    rows = conn.execute(
        "SELECT reason, times_received, first_received_at, last_received_at, payload"
        " FROM dead_letters WHERE tenant = %s ORDER BY reason",
        [records.tenant],
    ).fetchall()
    assert rows == [
        ("invalid_json", 3, START - timedelta(1), START + timedelta(minutes=5), b"{not json"),
        ("unknown_device", 1, START, START, b"{not json"),
    ]


def test_device_activity_adds_up_within_and_across_batches(conn, backend, records):
    writer = BatchWriter(backend)
    later = START + timedelta(minutes=10)
    writer.write(conn, Batch(activity=[records.activity("a", 2, 10, later),
                                       records.activity("a", 1, 4, START)]))  # fmt: skip
    writer.write(conn, Batch(activity=[records.activity("a", 3, 6, START + timedelta(minutes=1)),
                                       records.activity("b", 1, 1, START)]))  # fmt: skip
    rows = conn.execute(
        "SELECT device_id, messages, readings, first_message_at, last_message_at"
        " FROM device_activity WHERE tenant = %s ORDER BY device_id",
        [records.tenant],
    ).fetchall()
    assert rows == [("a", 6, 20, START, later), ("b", 1, 1, START, START)]


# --- one transaction ------------------------------------------------------------------------


def test_a_failing_batch_leaves_nothing_behind(conn, backend, records):
    broken = records.fragment({"pm25": pm25(1, T1)})
    broken.entity_type = None  # violates entities.type NOT NULL, after the observations went in
    batch = Batch(
        observations=records.observations(10, START),
        entities=[broken],
        activity=[records.activity("a", 1, 10, START)],
    )
    with pytest.raises(psycopg.errors.NotNullViolation):
        BatchWriter(backend).write(conn, batch)
    assert stored_observations(conn, records.tenant) == 0
    assert (
        count(conn, "SELECT count(*) FROM device_activity WHERE tenant = %s", records.tenant) == 0
    )


def test_the_writer_refuses_a_connection_inside_a_transaction(conn, backend):
    conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="outside any transaction"):
        BatchWriter(backend).write(conn, Batch())


def test_an_empty_batch_writes_nothing(conn, backend):
    assert BatchWriter(backend).write(conn, Batch()) == WriteResult(0, 0, 0)


# --- registry -------------------------------------------------------------------------------


def test_registry_round_trips_and_updates_in_place(conn, backend, tenant):
    attributes = MappingProxyType({"pm2_5": AttributeMapping("pm2_5", "pm25", "GQ", "Number", 0.1)})
    group = DeviceGroup(f"{tenant}-model", "ttn-v3", f"{tenant}/", tenant, "AirQualityObserved",
                        attributes, MappingProxyType({"name": "x"}), None, "key", True)  # fmt: skip
    device = DeviceConfig(f"{tenant}-dev", "ttn-v3", tenant, model=group.name,
                          location=(3.72, 51.05), attributes=attributes)  # fmt: skip
    write_registry(conn, [(f"{tenant}/dev", device)], [group])
    moved = DeviceConfig(device.device_id, "ttn-v3", tenant, location=(4.4, 50.8))
    write_registry(conn, [(f"{tenant}/dev", moved)], [])
    devices, groups = load_registry(conn)
    assert [(key, d) for key, d in devices if d.tenant == tenant] == [(f"{tenant}/dev", moved)]
    assert [g for g in groups if g.tenant == tenant] == [group]


# --- the latest-state shortcut (fragments that say how old their attributes are) ------------


def stamped(fragment):
    """The fragment with oldest/newest observedAt set, as the NGSI-LD mapper sends it."""
    values = fragment.attributes.values()
    instances = [i for v in values for i in (v if isinstance(v, list) else [v])]
    times = [datetime.fromisoformat(i["observedAt"]) for i in instances if "observedAt" in i]
    fragment.oldest_observed_at, fragment.newest_observed_at = min(times), max(times)
    return fragment


LFT, RGT = "urn:ngsi-ld:Dataset:lft", "urn:ngsi-ld:Dataset:rgt"


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(
            {"pm25": pm25(2, T2)}, {"pm25": pm25(1, T1)}, {"pm25": pm25(2, T2)}, id="late-data"
        ),
        pytest.param(
            {"pm25": pm25(2, T2), "name": {"type": "Property", "value": "newer"}},
            {"pm25": pm25(1, T1), "name": {"type": "Property", "value": "older"}},
            {"pm25": pm25(2, T2), "name": {"type": "Property", "value": "newer"}},
            id="late-context-is-not-applied",
        ),
        pytest.param(
            {"pm25": pm25(1, T1), "no2": pm25(7, T1)},
            {"pm25": pm25(2, T2)},
            {"pm25": pm25(2, T2), "no2": pm25(7, T1)},
            id="newer-single-instance",
        ),
        pytest.param(
            {"pm25": [pm25(1, T1), pm25(3, T1, LFT), pm25(4, T1, RGT)]},
            {"pm25": [pm25(2, T2), pm25(5, T2, LFT), pm25(6, T2, RGT)]},
            {"pm25": [pm25(2, T2), pm25(5, T2, LFT), pm25(6, T2, RGT)]},
            id="newer-all-instances",
        ),
        pytest.param(
            {"pm25": [pm25(1, T1), pm25(3, T1, LFT), pm25(4, T1, RGT)]},
            {"pm25": [pm25(5, T2, LFT)]},
            {"pm25": [pm25(1, T1), pm25(5, T2, LFT), pm25(4, T1, RGT)]},
            id="newer-one-instance-keeps-the-others",
        ),
        pytest.param(
            {"pm25": pm25(1, T1)},
            {"pm25": [pm25(5, T2, LFT)]},
            {"pm25": [pm25(1, T1), pm25(5, T2, LFT)]},
            id="newer-instance-keeps-a-stored-default",
        ),
        pytest.param(
            {"pm25": [pm25(5, T2, LFT), pm25(6, T2, RGT)]},
            {"pm25": [pm25(1, T1, LFT), pm25(2, T1, RGT)]},
            {"pm25": [pm25(5, T2, LFT), pm25(6, T2, RGT)]},
            id="late-instances",
        ),
    ],
)
def test_stamped_fragments_merge_like_the_full_merge(
    conn, backend, records, first, second, expected
):
    writer = BatchWriter(backend)
    writer.write(conn, Batch(entities=[stamped(records.fragment(first))]))
    writer.write(conn, Batch(entities=[stamped(records.fragment(second))]))
    stored = stored_entity(conn, records.entity_id())
    canonical = {
        name: sorted(value, key=lambda i: i.get("datasetId", ""))
        if isinstance(value, list)
        else value
        for name, value in stored.items()
    }
    assert canonical == {
        name: sorted(value, key=lambda i: i.get("datasetId", ""))
        if isinstance(value, list)
        else value
        for name, value in expected.items()
    }
