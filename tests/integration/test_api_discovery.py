"""/ngsi-ld/v1/types and /ngsi-ld/v1/attributes over HTTP (in-process), against the real
PostgreSQL, on entities created through the API."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from ngsi.errors import error_uri

pytestmark = pytest.mark.integration

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
SDM = "https://smartdatamodels.org/dataModel.Environment/"
AIR = SDM + "AirQualityObserved"
STATION = {
    "id": "urn:ngsi-ld:AirQualityObserved:gent-1",
    "type": "AirQualityObserved",
    "pm25": {"type": "Property", "value": 12.5},
    "name": {"type": "LanguageProperty", "languageMap": {"nl": "Sint-Pieters"}},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:dl-1"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.71, 51.03]}},
}
#: Two types, and an attribute with two instances (datasetIds).
KIOSK = {
    "id": "urn:ngsi-ld:AirQualityObserved:kiosk-2",
    "type": ["AirQualityObserved", "Kiosk"],
    "pm25": [
        {"type": "Property", "value": 9.0, "datasetId": "urn:ngsi-ld:Dataset:a"},
        {"type": "Property", "value": 9.5, "datasetId": "urn:ngsi-ld:Dataset:b"},
    ],
    "no2": {"type": "Property", "value": 31},
}


def problem(response: Any, status: int, error: str) -> dict[str, Any]:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == error_uri(error), body
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def create(api: TestClient, *entities: dict[str, Any], tenant: str | None = None) -> None:
    """Create entities with the Environment context (in `tenant`, else the test's own)."""
    headers = {"Link": LINK} | ({"NGSILD-Tenant": tenant} if tenant else {})
    for entity in entities:
        response = api.post("/ngsi-ld/v1/entities", json=entity, headers=headers)
        assert response.status_code == 201, response.text


def get(api: TestClient, path: str, *, context: bool = True, **params: str) -> Any:
    """GET a discovery resource (with the Environment context by default); the JSON body."""
    headers = {"Link": LINK} if context else {}
    response = api.get("/ngsi-ld/v1" + path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_types_are_compacted_with_the_callers_context(api):
    create(api, STATION, KIOSK)
    listed = get(api, "/types")
    assert listed["type"] == "EntityTypeList"
    assert listed["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert sorted(listed["typeList"]) == ["AirQualityObserved", "Kiosk"]
    expanded = get(api, "/types", context=False)
    # Kiosk is in no context: it expands under the core @vocab and compacts back under it.
    assert sorted(expanded["typeList"]) == ["Kiosk", AIR]


def test_types_with_details(api):
    create(api, STATION, KIOSK)
    details = {item["typeName"]: item for item in get(api, "/types", details="true")}
    assert set(details) == {"AirQualityObserved", "Kiosk"}
    air = details["AirQualityObserved"]
    assert air["id"] == AIR and air["type"] == "EntityType"
    assert sorted(air["attributeNames"]) == ["location", "name", "no2", "pm25", "refDevice"]
    assert sorted(details["Kiosk"]["attributeNames"]) == ["no2", "pm25"]
    assert details["Kiosk"]["id"] == "https://uri.etsi.org/ngsi-ld/default-context/Kiosk"


def test_entity_type_information(api):
    create(api, STATION, KIOSK)
    info = get(api, "/types/AirQualityObserved")
    assert info["id"] == AIR
    assert info["type"] == "EntityTypeInfo"
    assert info["typeName"] == "AirQualityObserved"
    assert info["entityCount"] == 2
    attributes = {item["attributeName"]: item for item in info["attributeDetails"]}
    assert attributes["pm25"] == {
        "id": SDM + "pm25",
        "type": "Attribute",
        "attributeName": "pm25",
        "attributeTypes": ["Property"],
    }
    assert attributes["refDevice"]["attributeTypes"] == ["Relationship"]
    assert attributes["location"]["attributeTypes"] == ["GeoProperty"]
    assert attributes["name"]["attributeTypes"] == ["LanguageProperty"]
    kiosk = get(api, "/types/Kiosk")
    assert kiosk["entityCount"] == 1
    assert {a["attributeName"] for a in kiosk["attributeDetails"]} == {"no2", "pm25"}
    # By IRI in the path, without any context: the same type.
    by_iri = get(api, "/types/" + quote(AIR, safe=""), context=False)
    assert by_iri["typeName"] == AIR and by_iri["entityCount"] == 2


def test_attributes(api):
    create(api, STATION, KIOSK)
    listed = get(api, "/attributes")
    assert listed["type"] == "AttributeList"
    assert listed["id"].startswith("urn:ngsi-ld:AttributeList:")
    assert sorted(listed["attributeList"]) == ["location", "name", "no2", "pm25", "refDevice"]
    expanded = get(api, "/attributes", context=False)["attributeList"]
    assert SDM + "pm25" in expanded and "location" in expanded  # a core term stays short


def test_attributes_with_details_count_instances(api):
    create(api, STATION, KIOSK)
    details = {item["attributeName"]: item for item in get(api, "/attributes", details="true")}
    assert details["pm25"] == {
        "id": SDM + "pm25",
        "type": "Attribute",
        "attributeName": "pm25",
        "attributeCount": 3,  # one instance on the station, two on the kiosk
        "attributeTypes": ["Property"],
        "typeNames": ["AirQualityObserved", "Kiosk"],
    }
    assert details["refDevice"]["attributeCount"] == 1
    assert details["refDevice"]["typeNames"] == ["AirQualityObserved"]
    one = get(api, "/attributes/pm25")
    assert one == details["pm25"]
    by_iri = get(api, "/attributes/" + quote(SDM + "no2", safe=""), context=False)
    assert by_iri["attributeName"] == SDM + "no2"
    assert by_iri["typeNames"] == ["Kiosk", AIR]


def test_json_ld_answers_carry_the_context(api):
    create(api, STATION)
    response = api.get("/ngsi-ld/v1/types", headers={"Link": LINK, "Accept": "application/ld+json"})
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.json()["@context"] == ENVIRONMENT
    plain = api.get("/ngsi-ld/v1/attributes", headers={"Link": LINK})
    assert ENVIRONMENT in plain.headers["Link"]
    problem(api.get("/ngsi-ld/v1/types", headers={"Accept": "text/csv"}), 406, "NotAcceptable")


def test_unknown_type_or_attribute_is_not_found(api):
    create(api, STATION)
    problem(api.get("/ngsi-ld/v1/types/Bicycle", headers={"Link": LINK}), 404, "ResourceNotFound")
    problem(api.get("/ngsi-ld/v1/attributes/speed"), 404, "ResourceNotFound")
    # Without the Environment context, pm25 is another IRI (the default vocabulary).
    problem(api.get("/ngsi-ld/v1/attributes/pm25"), 404, "ResourceNotFound")


def test_an_empty_tenant_has_empty_lists(api):
    create(api, STATION)
    api.delete(f"/ngsi-ld/v1/entities/{STATION['id']}")
    assert get(api, "/types")["typeList"] == []
    assert get(api, "/types", details="true") == []
    assert get(api, "/attributes")["attributeList"] == []
    assert get(api, "/attributes", details="true") == []


def test_tenants_never_see_each_others_types_or_attributes(api, tenant):
    other = f"test-{uuid.uuid4().hex[:10]}"
    create(api, STATION)
    bus_stop = {"id": "urn:ngsi-ld:BusStop:1", "type": "BusStop", "shelter": {"value": True}}
    create(api, bus_stop, tenant=other)
    mine = {"NGSILD-Tenant": tenant, "Link": LINK}
    theirs = {"NGSILD-Tenant": other, "Link": LINK}
    assert api.get("/ngsi-ld/v1/types", headers=mine).json()["typeList"] == ["AirQualityObserved"]
    assert api.get("/ngsi-ld/v1/types", headers=theirs).json()["typeList"] == ["BusStop"]
    their_attributes = api.get("/ngsi-ld/v1/attributes", headers=theirs).json()
    assert their_attributes["attributeList"] == ["shelter"]
    my_details = api.get("/ngsi-ld/v1/attributes", params={"details": "true"}, headers=mine)
    assert "shelter" not in {item["attributeName"] for item in my_details.json()}
    problem(api.get("/ngsi-ld/v1/types/BusStop", headers=mine), 404, "ResourceNotFound")
    problem(api.get("/ngsi-ld/v1/attributes/shelter", headers=mine), 404, "ResourceNotFound")
    problem(
        api.get("/ngsi-ld/v1/types/AirQualityObserved", headers=theirs), 404, "ResourceNotFound"
    )
    problem(api.get("/ngsi-ld/v1/attributes/pm25", headers=theirs), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "path", ["/types", "/types/AirQualityObserved", "/attributes", "/attributes/pm25"]
)
def test_an_unknown_tenant_is_nonexistent_tenant(api, path):
    response = api.get(
        "/ngsi-ld/v1" + path, headers={"NGSILD-Tenant": f"nobody-{uuid.uuid4().hex[:8]}"}
    )
    problem(response, 404, "NonexistentTenant")
