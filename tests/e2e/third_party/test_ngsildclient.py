"""A real third-party NGSI-LD client (ngsildclient) drives `stadspuls api` over a socket.

The client runs in a virtual environment of its own (it needs Python >= 3.12; made once in
`.cache/ngsild-client-venv`); the test skips, saying why, where that cannot be made. The
driver script creates, retrieves, queries, updates and deletes Smart Data Models entities
with the client and reports each step; the test checks the report, then the database and
the API directly. Once with access control off on the default tenant, once with API keys
from `stadspuls keys create` on a tenant of its own.

pyngsildclient (0.6.5, the Hyvilo fork of the same code) is not used: it cannot be imported
on Python 3.12 or 3.13, its modules annotate with names imported only under TYPE_CHECKING
and without `from __future__ import annotations`, which only Python 3.14 tolerates.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import connect, drop_database
from tests.e2e.third_party.harness import (
    ClientUnavailable,
    client_python,
    log_tail,
    running_api,
    stadspuls_command,
)
from tests.support.fixtures import scratch_database_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DRIVER = Path(__file__).with_name("drive_ngsildclient.py")
DRIVER_TIMEOUT = 90
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
DEVICE_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)
VOCAB = "https://smartdatamodels.org/dataModel.Environment/"
STATION = "urn:ngsi-ld:AirQualityObserved:e2e-1"
DELETED = "urn:ngsi-ld:AirQualityObserved:e2e-2"
#: What the driver leaves behind: station 2 and the batch entities are deleted.
REMAINING = {"urn:ngsi-ld:AirQualityObserved:e2e-1", "urn:ngsi-ld:AirQualityObserved:e2e-3"}
REMAINING |= {"urn:ngsi-ld:Device:e2e-dl-1"}
#: The client's connection check queries the tenant, and a tenant nobody wrote to does not
#: exist (404 NonexistentTenant); its fallback needs batch upsert. So a write makes it.
SEED = {"id": "urn:ngsi-ld:Device:e2e-seed", "type": "Device"}


def link(url: str) -> str:
    """A JSON-LD context Link header value."""
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


@pytest.fixture(scope="session")
def client_venv_python() -> Path:
    """The client's python; the tests skip, with the reason, when it cannot be had."""
    try:
        return client_python()
    except ClientUnavailable as reason:
        pytest.skip(f"third-party NGSI-LD client unavailable: {reason}")


@pytest.fixture
def database() -> Iterator[str]:
    """A migrated database of this test's own; dropped afterwards."""
    url = scratch_database_url("stadspuls_e2e")
    prepare_database(Settings(database_url=url, metrics_port=0))
    yield url
    drop_database(url)


def drive(python: Path, base_url: str, tenant: str | None, **keys: str) -> dict[str, Any]:
    """Run the driver with the client's python; its JSON summary."""
    command = [str(python), str(DRIVER), "--port", base_url.rsplit(":", 1)[1]]
    if tenant is not None:
        command += ["--tenant", tenant]
    for option, key in keys.items():
        command += [f"--{option.replace('_', '-')}", key]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DRIVER_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def failures(summary: dict[str, Any]) -> str:
    """The failed steps of a summary, readably."""
    failed = {name: summary["steps"][name] for name in summary["failed"]}
    return json.dumps(failed, indent=1)


def check_summary(summary: dict[str, Any], paths: dict[str, Any], log: Path) -> None:
    """Every step held; batch and POST query were used exactly when the server offers them."""
    assert summary["client"]["version"] == "0.5.2"
    assert summary["failed"] == [], failures(summary) + "\n" + log_tail(log)
    steps = summary["steps"]
    offers_batch = "/ngsi-ld/v1/entityOperations/create" in paths
    assert steps["batch"]["supported"] is offers_batch, steps["batch"]
    offers_query = "/ngsi-ld/v1/entityOperations/query" in paths
    assert steps["query_by_post"]["supported"] is offers_query, steps["query_by_post"]
    server_errors = [e for e in summary["exchanges"] if int(e.rsplit(" ", 1)[1]) >= 500]
    assert server_errors == [], server_errors


def check_state(database_url: str, base_url: str, tenant: str, headers: dict[str, str]) -> None:
    """What the client did, as the database and the API see it."""
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, type, entity FROM entities WHERE tenant = %s ORDER BY id", (tenant,)
        ).fetchall()
    documents = {entity_id: (entity_type, entity) for entity_id, entity_type, entity in rows}
    assert set(documents) - {SEED["id"]} == REMAINING
    entity_type, station = documents[STATION]
    assert entity_type == VOCAB + "AirQualityObserved"
    assert station[VOCAB + "pm25"]["value"] == 55.0
    assert station[VOCAB + "pm10"]["value"] == 25.0
    assert station[VOCAB + "o3"]["value"] == 60.0
    assert VOCAB + "no2" not in station and VOCAB + "temperature" not in station
    assert station[VOCAB + "refDevice"]["object"] == "urn:ngsi-ld:Device:e2e-dl-1"

    headers = {**headers, "Link": link(ENVIRONMENT), "Accept": "application/json"}
    with httpx.Client(base_url=f"{base_url}/ngsi-ld/v1", headers=headers, timeout=10) as api:
        body = api.get(f"/entities/{STATION}").json()
        assert body["pm25"]["value"] == 55.0 and body["o3"]["unitCode"] == "GQ"
        assert body["location"]["value"] == {"type": "Point", "coordinates": [3.71, 51.03]}
        gone = api.get(f"/entities/{DELETED}")
        assert gone.status_code == 404
        assert gone.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
        counted = api.get("/entities", params={"type": "AirQualityObserved", "count": "true"})
        assert counted.headers["NGSILD-Results-Count"] == "2"


def test_the_client_drives_an_open_server_on_the_default_tenant(
    client_venv_python, database, tmp_path
):
    log = tmp_path / "api.log"
    with running_api(database, log, auth_enabled=False) as base_url:
        summary = drive(client_venv_python, base_url, None)
        paths = httpx.get(f"{base_url}/openapi.json", timeout=10).json()["paths"]
        check_summary(summary, paths, log)
        check_state(database, base_url, "", {})


def test_the_client_drives_a_server_with_api_keys_on_a_tenant(
    client_venv_python, database, tmp_path
):
    tenant = "gent-e2e"
    write_key = stadspuls_command(
        database, "keys", "create", "--tenant", tenant, "--role", "write", "--name", "e2e"
    ).strip()
    read_key = stadspuls_command(
        database, "keys", "create", "--tenant", tenant, "--role", "read", "--name", "e2e-ro"
    ).strip()
    headers = {"NGSILD-Tenant": tenant, "X-API-Key": write_key}
    log = tmp_path / "api.log"
    with running_api(database, log, auth_enabled=True) as base_url:
        seeded = httpx.post(
            f"{base_url}/ngsi-ld/v1/entities",
            json=SEED,
            headers={**headers, "Link": link(DEVICE_CONTEXT)},
            timeout=10,
        )
        assert seeded.status_code == 201, seeded.text
        summary = drive(client_venv_python, base_url, tenant, api_key=write_key, read_key=read_key)
        paths = httpx.get(f"{base_url}/openapi.json", timeout=10).json()["paths"]
        check_summary(summary, paths, log)
        assert summary["steps"]["anonymous_refused"]["status"] == 401
        assert summary["steps"]["read_key_cannot_write"]["create"]["status"] == 403
        check_state(database, base_url, tenant, headers)
        anonymous = httpx.get(
            f"{base_url}/ngsi-ld/v1/entities/{STATION}",
            headers={"NGSILD-Tenant": tenant},
            timeout=10,
        )
        assert anonymous.status_code == 401
