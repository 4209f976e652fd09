"""The /iot provisioning API with the IoT Agent's own payloads, against the real PostgreSQL.

A device provisioned here then sends an IoT Agent JSON measure, which the real pipeline
(BatchBuilder) and writer (BatchWriter) turn into an entity with the mapped names and units.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from ngsi.routers import iot
from stadspuls.api import create_app
from storage.backend import detect_backend
from storage.database import connect
from storage.writer import BatchWriter, load_registry
from tests.support.api import api_settings

pytestmark = pytest.mark.integration
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def with_iot_router(app: FastAPI) -> FastAPI:
    """The app with the /iot routes, whether or not create_app mounts them yet."""
    if not any(getattr(route, "path", "").startswith("/iot/") for route in app.routes):
        app.include_router(iot.router)
    return app


@pytest.fixture
def client(api_database: str, tenant: str) -> Iterator[TestClient]:
    """An in-process client speaking for `tenant` as its Fiware-Service."""
    with TestClient(with_iot_router(create_app(api_settings(api_database)))) as test_client:
        test_client.headers["Fiware-Service"] = tenant
        test_client.headers["Fiware-ServicePath"] = "/"
        yield test_client


@pytest.fixture
def apikey() -> str:
    """An apikey of this test only (apikeys are unique across services)."""
    return f"key{uuid.uuid4().hex[:16]}"


def tutorial_group(apikey: str) -> dict:
    """The config group of the FIWARE "IoT over MQTT" tutorial, with units added."""
    return {
        "apikey": apikey,
        "cbroker": "http://orion:1026",
        "entity_type": "AirQualityObserved",
        "resource": "/iot/json",
        "attributes": [
            {
                "object_id": "n",
                "name": "no2",
                "type": "Number",
                "metadata": {"unitCode": {"type": "Text", "value": "GQ"}},
            },
            {"object_id": "t", "name": "temperature", "type": "Number"},
        ],
        "static_attributes": [{"name": "owner", "type": "Text", "value": "Stad Gent"}],
    }


def test_groups_are_created_listed_changed_and_removed(client: TestClient, apikey: str):
    created = client.post("/iot/services", json={"services": [tutorial_group(apikey)]})
    assert created.status_code == 201, created.text
    listed = client.get("/iot/groups").json()
    assert listed["count"] == 1
    assert listed["groups"][0]["apikey"] == apikey
    assert listed["groups"][0]["attributes"][0]["metadata"]["unitCode"]["value"] == "GQ"
    assert client.get("/iot/services").json()["services"][0]["entity_type"] == "AirQualityObserved"
    changed = client.put(
        "/iot/groups",
        params={"resource": "/iot/json", "apikey": apikey},
        json={"entity_type": "WeatherObserved"},
    )
    assert changed.status_code == 204, changed.text
    assert client.get("/iot/groups").json()["groups"][0]["entity_type"] == "WeatherObserved"
    removed = client.delete("/iot/groups", params={"resource": "/iot/json", "apikey": apikey})
    assert removed.status_code == 204
    assert client.get("/iot/groups").json() == {"count": 0, "groups": []}


@pytest.mark.parametrize(
    ("body", "status", "name", "detail"),
    [
        ({"services": [{"entity_type": "Thing"}]}, 400, "WRONG_SYNTAX", "services[0].apikey"),
        ({"devices": []}, 400, "WRONG_SYNTAX", "expected a 'groups' or 'services' array"),
    ],
)
def test_bad_group_payloads_are_problem_details_with_the_iot_agent_name(
    client: TestClient, body, status, name, detail
):
    answer = client.post("/iot/groups", json=body)
    assert answer.status_code == status
    problem = answer.json()
    assert problem["name"] == name and detail in problem["detail"]
    assert problem["type"].endswith("/BadRequestData")
    assert problem["message"] == problem["detail"]


def test_a_second_group_with_the_same_apikey_is_a_duplicate(client: TestClient, apikey: str):
    assert client.post("/iot/groups", json={"groups": [tutorial_group(apikey)]}).status_code == 201
    again = client.post("/iot/groups", json={"groups": [tutorial_group(apikey)]})
    assert again.status_code == 409
    assert again.json()["name"] == "DUPLICATE_GROUP"


def test_devices_are_provisioned_read_changed_and_removed(client: TestClient, apikey: str):
    client.post("/iot/groups", json={"groups": [tutorial_group(apikey)]})
    body = {
        "devices": [
            {
                "device_id": "sensor01",
                "entity_name": "urn:ngsi-ld:AirQualityObserved:gent-kouter",
                "entity_type": "AirQualityObserved",
                "protocol": "PDI-IoTA-JSON",
                "transport": "MQTT",
                "attributes": [{"object_id": "h", "name": "relativeHumidity", "type": "Number"}],
            },
            {"device_id": "sensor02", "apikey": apikey},
        ]
    }
    created = client.post("/iot/devices", json=body)
    assert created.status_code == 201, created.text
    listed = client.get("/iot/devices", params={"limit": 1}).json()
    assert listed["count"] == 2 and [d["device_id"] for d in listed["devices"]] == ["sensor01"]
    device = client.get("/iot/devices/sensor01").json()
    assert device["entity_name"] == "urn:ngsi-ld:AirQualityObserved:gent-kouter"
    assert device["apikey"] == apikey
    duplicate = client.post("/iot/devices", json={"devices": [{"device_id": "sensor01"}]})
    assert duplicate.status_code == 409 and duplicate.json()["name"] == "DUPLICATE_DEVICE_ID"
    changed = client.put("/iot/devices/sensor01", json={"attributes": []})
    assert changed.status_code == 204
    assert client.get("/iot/devices/sensor01").json()["attributes"] == []
    in_use = client.delete("/iot/groups", params={"apikey": apikey})
    assert in_use.status_code == 409 and in_use.json()["name"] == "GROUP_IN_USE"
    assert client.delete("/iot/devices/sensor01").status_code == 204
    missing = client.get("/iot/devices/sensor01")
    assert missing.status_code == 404 and missing.json()["name"] == "DEVICE_NOT_FOUND"
    assert (
        client.delete("/iot/groups", params={"apikey": apikey, "device": "true"}).status_code == 204
    )
    assert client.get("/iot/devices").json()["count"] == 0


def test_services_do_not_see_each_other(client: TestClient, apikey: str):
    client.post("/iot/groups", json={"groups": [tutorial_group(apikey)]})
    client.post("/iot/devices", json={"devices": [{"device_id": "d1"}]})
    other = {"Fiware-Service": f"other{uuid.uuid4().hex[:8]}"}
    assert client.get("/iot/devices", headers=other).json()["count"] == 0
    assert client.get("/iot/devices/d1", headers=other).status_code == 404
    foreign = client.post(
        "/iot/devices", headers=other, json={"devices": [{"device_id": "d9", "apikey": apikey}]}
    )
    assert foreign.status_code == 404 and foreign.json()["name"] == "DEVICE_GROUP_NOT_FOUND"


def test_a_provisioned_device_feeds_an_entity_with_mapped_names_and_units(
    client: TestClient, apikey: str, api_database: str, tenant: str
):
    client.post("/iot/groups", json={"groups": [tutorial_group(apikey)]})
    client.post(
        "/iot/devices",
        json={"devices": [{"device_id": "no2-kouter", "entity_name": "kouter"}]},
    )
    with connect(api_database) as conn:
        devices, groups = load_registry(conn)
        backend = detect_backend(conn, "auto")
        registry = DeviceRegistry(devices, groups)
        builder = BatchBuilder(lambda: registry, 256 * 1024)
        message = RawMessage(
            f"/json/{apikey}/no2-kouter/attrs",
            b'{"n": 21.5, "t": 19.0, "TimeInstant": "2025-05-01T08:00:00Z"}',
            1,
            1,
            datetime.now(UTC),
            0.0,
        )
        built = builder.build([message])
        assert built.batch.dead_letters == []
        BatchWriter(backend).write(conn, built.batch)
    answer = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:kouter",
        headers={"NGSILD-Tenant": tenant, "Link": LINK},
    )
    assert answer.status_code == 200, answer.text
    entity = answer.json()
    assert entity["no2"]["value"] == 21.5 and entity["no2"]["unitCode"] == "GQ"
    assert entity["temperature"]["value"] == 19.0
    owner = [value for name, value in entity.items() if name.endswith("owner")]
    assert owner == [{"type": "Property", "value": "Stad Gent"}]


def test_the_iot_routes_need_admin_access(api_database: str):
    app = with_iot_router(create_app(api_settings(api_database, auth_enabled=True)))
    with TestClient(app) as anonymous:
        answer = anonymous.get("/iot/devices", headers={"Fiware-Service": "gent"})
    assert answer.status_code == 401
    assert "admin access on tenant 'gent'" in answer.json()["detail"]
