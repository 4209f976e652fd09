"""Unknown devices: their messages are quarantined with payloads, and adoption stores them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from devices.iota_provisioning import parse_groups
from devices.model import DeviceGroup
from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from stadspuls.api import create_app
from storage.backend import Backend, detect_backend
from storage.database import connect
from storage.quarantine import adopt, device_for_group, list_quarantine, quarantined_messages
from storage.writer import BatchWriter, load_registry, write_registry
from tests.integration.test_api_iot import with_iot_router
from tests.support.api import api_settings

pytestmark = pytest.mark.integration
RECEIVED = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def conn(api_database: str) -> Iterator[psycopg.Connection]:
    """A connection of this test to the module's migrated database."""
    with connect(api_database) as connection:
        yield connection


@pytest.fixture
def backend(conn: psycopg.Connection) -> Backend:
    """The database's storage backend."""
    found = detect_backend(conn, "auto")
    conn.commit()
    return found


@pytest.fixture
def closed_group(conn: psycopg.Connection, tenant: str) -> DeviceGroup:
    """An IoT Agent group of this test that does not autoprovision: strangers are quarantined."""
    body = {
        "groups": [
            {
                "apikey": f"q{uuid.uuid4().hex[:16]}",
                "entity_type": "AirQualityObserved",
                "autoprovision": False,
                "attributes": [
                    {
                        "object_id": "n",
                        "name": "no2",
                        "type": "Number",
                        "metadata": {"unitCode": {"type": "Text", "value": "GQ"}},
                    }
                ],
            }
        ]
    }
    (group,) = parse_groups(body, tenant)
    write_registry(conn, [], [group])
    conn.commit()
    return group


def ingest(conn: psycopg.Connection, backend: Backend, messages: list[RawMessage]) -> None:
    """Run messages through the real pipeline and writer, as a worker would."""
    devices, groups = load_registry(conn)
    conn.commit()
    registry = DeviceRegistry(devices, groups)
    BatchWriter(backend).write(
        conn, BatchBuilder(lambda: registry, 256 * 1024).build(messages).batch
    )


def measure(group: DeviceGroup, device_id: str, payload: bytes, minutes: int = 0) -> RawMessage:
    """An IoT Agent JSON measure of `device_id` under the group's apikey."""
    received = RECEIVED + timedelta(minutes=minutes)
    return RawMessage(f"/json/{group.apikey}/{device_id}/attrs", payload, 1, 1, received, 0.0)


def observations(conn: psycopg.Connection, tenant: str) -> list[tuple[str, float, str]]:
    """(entity id, value, unit) of this tenant's stored observations."""
    rows = conn.execute(
        "SELECT entity_id, value_num, unit_code FROM observations WHERE tenant = %s"
        " ORDER BY observed_at",
        [tenant],
    ).fetchall()
    conn.commit()
    return [tuple(row) for row in rows]


def test_an_unknown_device_is_quarantined_with_what_it_sent(conn, backend, closed_group, tenant):
    ingest(conn, backend, [measure(closed_group, "stranger", b'{"n": 12.5}')])
    key = f"{closed_group.apikey}/stranger"
    (found,) = [d for d in list_quarantine(conn) if d.device_key == key]
    assert (found.profile, found.messages, found.latest_payload) == (
        "iotagent-json",
        1,
        b'{"n": 12.5}',
    )
    assert found.group == closed_group
    assert [d.device_key for d in list_quarantine(conn, tenant)] == [key]
    assert list_quarantine(conn, "someone-else") == []
    (message,) = quarantined_messages(conn, "iotagent-json", key)
    assert message.payload == b'{"n": 12.5}'
    assert observations(conn, tenant) == []


def test_adoption_registers_the_device_and_stores_its_readings(conn, backend, closed_group, tenant):
    messages = [
        measure(closed_group, "stranger", b'{"n": 12.5}'),
        measure(closed_group, "stranger", b'{"n": 14.0}', minutes=10),
        measure(closed_group, "stranger", b"not json", minutes=20),
    ]
    ingest(conn, backend, messages)
    key = f"{closed_group.apikey}/stranger"
    adoption = adopt(conn, backend, "iotagent-json", key, device_for_group(closed_group, key))
    assert (adoption.replayed, adoption.observations_inserted) == (3, 2)
    assert adoption.refused == {"invalid_json": 1}  # now a dead letter of the known device
    assert adoption.device.device_id == "stranger" and adoption.device.tenant == tenant
    entity = "urn:ngsi-ld:AirQualityObserved:stranger"
    assert observations(conn, tenant) == [(entity, 12.5, "GQ"), (entity, 14.0, "GQ")]
    assert quarantined_messages(conn, "iotagent-json", key) == []
    # Its next message is ingested like any other.
    ingest(conn, backend, [measure(closed_group, "stranger", b'{"n": 9.0}', minutes=30)])
    assert len(observations(conn, tenant)) == 3


def test_adoption_over_http(api_database, conn, backend, closed_group, tenant):
    ingest(conn, backend, [measure(closed_group, "s-9", b'{"n": 30.0}')])
    key = f"{closed_group.apikey}/s-9"
    app = with_iot_router(create_app(api_settings(api_database)))
    with TestClient(app, headers={"Fiware-Service": tenant}) as client:
        listed = client.get("/iot/quarantine").json()
        assert [(d["key"], d["payload"], d["group"]) for d in listed["devices"]] == [
            (key, '{"n": 30.0}', closed_group.name)
        ]
        sent = client.get(f"/iot/quarantine/iotagent-json/{key}").json()
        assert [m["payload"] for m in sent["messages"]] == ['{"n": 30.0}']
        adopted = client.post(
            f"/iot/quarantine/iotagent-json/{key}/adopt", json={"entity_name": "veldstraat"}
        )
        assert adopted.status_code == 200, adopted.text
        assert adopted.json()["observationsInserted"] == 1
        assert client.get("/iot/devices/s-9").json()["entity_name"].endswith(":veldstraat")
        assert client.get("/iot/quarantine").json()["count"] == 0
        gone = client.get(f"/iot/quarantine/iotagent-json/{key}")
        assert gone.status_code == 404 and gone.json()["name"] == "QUARANTINE_NOT_FOUND"
    assert observations(conn, tenant)[0][:2] == ("urn:ngsi-ld:AirQualityObserved:veldstraat", 30.0)
