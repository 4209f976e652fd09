"""Roadworks written through the NGSI-LD API raise, update and resolve their roadWorks Alert
(the notifier's periodic task, run here directly), as imported ones do."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from feeds.gipod_store import sync_roadwork_alerts
from storage.database import connect

pytestmark = pytest.mark.integration

TRANSPORTATION = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld"
)
ALERT = "https://smart-data-models.github.io/dataModel.Alert/context.jsonld"


def link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"'}


CITY_WORK = {
    "id": "urn:ngsi-ld:CityWork:mechelen:42",
    "type": "CityWork",
    "name": {"type": "Property", "value": "Bruul: new sewer"},
    "location": {
        "type": "GeoProperty",
        "value": {"type": "LineString", "coordinates": [[4.4777, 51.0286], [4.4801, 51.0279]]},
    },
    "startDate": {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": "2026-12-01T07:00:00Z"},
    },
    "workState": {"type": "Property", "value": "planned"},
    "closure": {"type": "Property", "value": "full"},
}


def alert(api: TestClient) -> dict:
    response = api.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Alert:CityWork:mechelen:42", headers=link(ALERT)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_api_roadworks_raise_and_resolve_their_alert(api: TestClient, api_database: str) -> None:
    created = api.post("/ngsi-ld/v1/entities", json=CITY_WORK, headers=link(TRANSPORTATION))
    assert created.status_code == 201, created.text
    with connect(api_database) as conn:
        assert sync_roadwork_alerts(conn) >= 1
        assert sync_roadwork_alerts(conn) == 0  # nothing changed since
    raised = alert(api)
    assert raised["subCategory"]["value"] == "roadWorks"
    assert raised["severity"]["value"] == "high"
    assert raised["alertState"]["value"] == "raised"
    assert raised["alertSource"]["object"] == CITY_WORK["id"]
    cancelled = api.patch(
        f"/ngsi-ld/v1/entities/{CITY_WORK['id']}/attrs",
        json={"workState": {"type": "Property", "value": "cancelled"}},
        headers=link(TRANSPORTATION),
    )
    assert cancelled.status_code == 204, cancelled.text
    with connect(api_database) as conn:
        assert sync_roadwork_alerts(conn) >= 1
    resolved = alert(api)
    assert resolved["alertState"]["value"] == "resolved"
    assert "validTo" in resolved
    assert resolved["dateIssued"] == raised["dateIssued"]
