"""The NGSI-LD entity operations over HTTP (in-process), against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from devices.model import Decoded, DeviceConfig, Reading
from ngsi.errors import error_uri
from ngsi.mapping import BatchMapper
from storage.database import connect
from storage.entities import STAGING_TABLE, write_entities

pytestmark = pytest.mark.integration

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
STATION = {
    "id": "urn:ngsi-ld:AirQualityObserved:gent-1",
    "type": "AirQualityObserved",
    "pm25": {
        "type": "Property",
        "value": 12.5,
        "unitCode": "GQ",
        "observedAt": "2026-11-29T08:00:00Z",
    },
    "name": {"type": "LanguageProperty", "languageMap": {"nl": "Sint-Pieters", "en": "St Peter"}},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:dl-1"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.71, 51.03]}},
}


def create(api: TestClient, entity: dict, **headers: str):
    """POST an entity with the Environment context; the response."""
    return api.post("/ngsi-ld/v1/entities", json=entity, headers={"Link": LINK, **headers})


def problem(response, status: int, error: str) -> dict:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == error_uri(error), body
    assert body["title"] and body["detail"]
    return body


def get(api: TestClient, entity_id: str, **params: str):
    return api.get(f"/ngsi-ld/v1/entities/{entity_id}", params=params, headers={"Link": LINK})


def test_create_then_retrieve_normalized_with_the_callers_context(api):
    response = create(api, STATION)
    assert response.status_code == 201
    assert response.headers["Location"] == (
        "/ngsi-ld/v1/entities/urn%3Angsi-ld%3AAirQualityObserved%3Agent-1"
    )
    body = get(api, STATION["id"]).json()
    assert body["type"] == "AirQualityObserved"
    assert body["pm25"] == {
        "type": "Property",
        "value": 12.5,
        "unitCode": "GQ",
        "observedAt": "2026-11-29T08:00:00.000000Z",
    }
    assert body["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:dl-1"}
    assert body["location"]["value"]["coordinates"] == [3.71, 51.03]


def test_without_the_context_names_come_back_as_iris(api):
    create(api, STATION)
    body = api.get(f"/ngsi-ld/v1/entities/{STATION['id']}").json()
    assert body["type"] == "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    assert "https://smartdatamodels.org/dataModel.Environment/pm25" in body
    assert "location" in body  # a core term compacts with the core context alone


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"options": "keyValues"}, {"pm25": 12.5, "refDevice": "urn:ngsi-ld:Device:dl-1"}),
        ({"format": "simplified"}, {"pm25": 12.5}),
        ({"options": "concise"}, {"refDevice": {"object": "urn:ngsi-ld:Device:dl-1"}}),
        ({"options": "keyValues", "lang": "en"}, {"name": "St Peter"}),
        ({"lang": "nl"}, {"name": {"type": "Property", "value": "Sint-Pieters", "lang": "nl"}}),
    ],
)
def test_representations(api, params, expected):
    create(api, STATION)
    body = get(api, STATION["id"], **params).json()
    for key, value in expected.items():
        assert body[key] == value, (key, body)


def test_concise_keeps_metadata_and_drops_types(api):
    create(api, STATION)
    body = get(api, STATION["id"], options="concise").json()
    assert body["pm25"] == {
        "value": 12.5,
        "unitCode": "GQ",
        "observedAt": body["pm25"]["observedAt"],
    }
    assert body["location"] == {"type": "Point", "coordinates": [3.71, 51.03]}


def test_sys_attrs_attrs_pick_and_omit(api):
    create(api, STATION)
    with_sys = get(api, STATION["id"], options="sysAttrs").json()
    assert with_sys["createdAt"].endswith("Z") and with_sys["modifiedAt"].endswith("Z")
    assert "createdAt" in with_sys["pm25"]
    assert "createdAt" not in get(api, STATION["id"]).json()["pm25"]
    assert set(get(api, STATION["id"], attrs="pm25").json()) == {"id", "type", "pm25"}
    assert set(get(api, STATION["id"], pick="id,pm25").json()) == {"id", "pm25"}
    assert "pm25" not in get(api, STATION["id"], omit="pm25,type").json()
    problem(get(api, STATION["id"], pick="id", omit="pm25"), 400, "BadRequestData")


def test_json_ld_and_geojson_responses(api):
    create(api, STATION)
    url = f"/ngsi-ld/v1/entities/{STATION['id']}"
    ld = api.get(url, headers={"Link": LINK, "Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert ld.json()["@context"] == ENVIRONMENT
    plain = api.get(url, headers={"Link": LINK})
    assert ENVIRONMENT in plain.headers["Link"]
    geo = api.get(url, headers={"Link": LINK, "Accept": "application/geo+json"}).json()
    assert geo["type"] == "Feature" and geo["geometry"]["type"] == "Point"
    assert geo["properties"]["pm25"]["value"] == 12.5
    problem(api.get(url, headers={"Accept": "text/csv"}), 406, "NotAcceptable")


def test_create_errors(api):
    assert create(api, STATION).status_code == 201
    problem(create(api, STATION), 409, "AlreadyExists")
    problem(create(api, {**STATION, "id": "not a uri"}), 400, "BadRequestData")
    problem(create(api, {"id": "urn:x:1"}), 400, "BadRequestData")
    bad_geo = {**STATION, "id": "urn:x:2", "location": {"type": "GeoProperty", "value": [1, 2]}}
    problem(create(api, bad_geo), 400, "BadRequestData")
    bad_rel = {**STATION, "id": "urn:x:3", "refDevice": {"type": "Relationship", "object": 5}}
    problem(create(api, bad_rel), 400, "BadRequestData")
    bad_time = {**STATION, "id": "urn:x:4", "pm25": {"value": 1, "observedAt": "yesterday"}}
    problem(create(api, bad_time), 400, "BadRequestData")


def test_context_rules_of_clause_6_3_5(api):
    url = "/ngsi-ld/v1/entities"
    with_context = {**STATION, "@context": ENVIRONMENT}
    json_ld = {"Content-Type": "application/ld+json"}
    problem(api.post(url, json=with_context), 400, "BadRequestData")  # @context in plain JSON
    problem(
        api.post(url, json=with_context, headers={**json_ld, "Link": LINK}), 400, "BadRequestData"
    )
    problem(api.post(url, json=STATION, headers=json_ld), 400, "BadRequestData")  # none at all
    assert api.post(url, json=with_context, headers=json_ld).status_code == 201
    assert get(api, STATION["id"]).json()["type"] == "AirQualityObserved"


def test_body_errors(api):
    url = "/ngsi-ld/v1/entities"
    problem(
        api.post(url, content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "InvalidRequest",
    )
    problem(
        api.post(url, content=b"<a/>", headers={"Content-Type": "text/xml"}),
        415,
        "UnsupportedMediaType",
    )
    huge = {**STATION, "blob": {"type": "Property", "value": "x" * (9 * 1024 * 1024)}}
    problem(api.post(url, json=huge), 413, "PayloadTooLarge")


def test_unknown_context_url_is_ld_context_not_available(api):
    link = '<http://127.0.0.1:9/nothing.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
    problem(
        api.post("/ngsi-ld/v1/entities", json=STATION, headers={"Link": link}),
        503,
        "LdContextNotAvailable",
    )


def test_unknown_entity_and_tenant(api):
    problem(get(api, "urn:ngsi-ld:X:none"), 404, "NonexistentTenant")  # nothing created yet
    create(api, STATION)
    problem(get(api, "urn:ngsi-ld:X:none"), 404, "ResourceNotFound")
    problem(get(api, "not-a-uri"), 400, "BadRequestData")
    response = api.get(
        f"/ngsi-ld/v1/entities/{STATION['id']}", headers={"NGSILD-Tenant": "no-such-tenant"}
    )
    problem(response, 404, "NonexistentTenant")


def test_replace_merge_and_delete_entity(api):
    create(api, STATION)
    url = f"/ngsi-ld/v1/entities/{STATION['id']}"
    replaced = {"type": "AirQualityObserved", "no2": {"type": "Property", "value": 40}}
    assert api.put(url, json=replaced, headers={"Link": LINK}).status_code == 204
    assert set(get(api, STATION["id"]).json()) == {"id", "type", "no2"}
    merge = {"pm10": {"value": 20}, "no2": {"type": "Property", "value": "urn:ngsi-ld:null"}}
    assert api.patch(url, json=merge, headers={"Link": LINK}).status_code == 204
    assert set(get(api, STATION["id"]).json()) == {"id", "type", "pm10"}
    problem(api.put(url, json={**replaced, "id": "urn:x:other"}), 400, "BadRequestData")
    assert api.delete(url).status_code == 204
    problem(api.delete(url), 404, "ResourceNotFound")


def test_append_with_no_overwrite_answers_207(api):
    create(api, STATION)
    url = f"/ngsi-ld/v1/entities/{STATION['id']}/attrs"
    body = {"pm25": {"value": 99}, "no2": {"value": 30}}
    response = api.post(url, json=body, params={"options": "noOverwrite"}, headers={"Link": LINK})
    assert response.status_code == 207
    assert response.json() == {
        "updated": ["no2"],
        "notUpdated": [
            {"attributeName": "pm25", "reason": response.json()["notUpdated"][0]["reason"]}
        ],
    }
    assert get(api, STATION["id"], options="keyValues").json()["pm25"] == 12.5
    assert api.post(url, json={"pm25": {"value": 99}}, headers={"Link": LINK}).status_code == 204
    assert get(api, STATION["id"], options="keyValues").json()["pm25"] == 99


def test_update_attributes_reports_missing_ones(api):
    create(api, STATION)
    url = f"/ngsi-ld/v1/entities/{STATION['id']}/attrs"
    response = api.patch(
        url, json={"pm25": {"value": 1}, "pm10": {"value": 2}}, headers={"Link": LINK}
    )
    assert response.status_code == 207
    assert response.json()["updated"] == ["pm25"]
    assert response.json()["notUpdated"][0]["attributeName"] == "pm10"
    assert get(api, STATION["id"], options="keyValues").json()["pm25"] == 1


def test_dataset_instances_patch_put_and_delete(api):
    speeds = [
        {"type": "Property", "value": 50, "datasetId": "urn:ngsi-ld:Dataset:lane-1"},
        {"type": "Property", "value": 60, "datasetId": "urn:ngsi-ld:Dataset:lane-2"},
    ]
    create(api, {**STATION, "speed": speeds})
    attr = f"/ngsi-ld/v1/entities/{STATION['id']}/attrs/speed"
    patch = {"value": 55, "datasetId": "urn:ngsi-ld:Dataset:lane-1"}
    assert api.patch(attr, json=patch, headers={"Link": LINK}).status_code == 204
    values = {i["datasetId"]: i["value"] for i in get(api, STATION["id"]).json()["speed"]}
    assert values == {"urn:ngsi-ld:Dataset:lane-1": 55, "urn:ngsi-ld:Dataset:lane-2": 60}
    missing = {"value": 1, "datasetId": "urn:ngsi-ld:Dataset:lane-9"}
    problem(api.patch(attr, json=missing, headers={"Link": LINK}), 404, "ResourceNotFound")
    replacement = {"type": "Property", "value": 70, "datasetId": "urn:ngsi-ld:Dataset:lane-2"}
    assert api.put(attr, json=replacement, headers={"Link": LINK}).status_code == 204
    response = api.delete(
        attr, params={"datasetId": "urn:ngsi-ld:Dataset:lane-1"}, headers={"Link": LINK}
    )
    assert response.status_code == 204
    left = get(api, STATION["id"]).json()["speed"]
    assert left["value"] == 70 and left["datasetId"] == "urn:ngsi-ld:Dataset:lane-2"
    assert api.delete(attr, params={"deleteAll": "true"}, headers={"Link": LINK}).status_code == 204
    problem(api.delete(attr, headers={"Link": LINK}), 404, "ResourceNotFound")


def test_query_by_type_id_pattern_attrs_with_count_and_paging(api):
    for number in range(5):
        station = {**STATION, "id": f"urn:ngsi-ld:AirQualityObserved:s{number}"}
        if number == 4:
            del station["pm25"]
        create(api, station)
    url = "/ngsi-ld/v1/entities"
    headers = {"Link": LINK}
    everything = api.get(
        url, params={"type": "AirQualityObserved", "count": "true"}, headers=headers
    )
    assert everything.headers["NGSILD-Results-Count"] == "5"
    assert [e["id"][-2:] for e in everything.json()] == ["s0", "s1", "s2", "s3", "s4"]
    page = api.get(
        url, params={"type": "AirQualityObserved", "limit": 2, "offset": 2}, headers=headers
    )
    assert [e["id"][-2:] for e in page.json()] == ["s2", "s3"]
    with_pm = api.get(url, params={"attrs": "pm25", "count": "true"}, headers=headers)
    assert with_pm.headers["NGSILD-Results-Count"] == "4"
    pattern = api.get(url, params={"idPattern": ".*:s[13]$"}, headers=headers)
    assert [e["id"][-2:] for e in pattern.json()] == ["s1", "s3"]
    ids = api.get(url, params={"id": "urn:ngsi-ld:AirQualityObserved:s4"}, headers=headers)
    assert len(ids.json()) == 1
    only_count = api.get(url, params={"type": "AirQualityObserved", "limit": 0, "count": "true"})
    assert only_count.json() == [] and only_count.headers["NGSILD-Results-Count"] == "0"
    features = api.get(
        url,
        params={"type": "AirQualityObserved"},
        headers={**headers, "Accept": "application/geo+json"},
    ).json()
    assert features["type"] == "FeatureCollection" and len(features["features"]) == 5


def test_query_errors(api):
    url = "/ngsi-ld/v1/entities"
    create(api, STATION)
    problem(api.get(url), 400, "BadRequestData")
    problem(api.get(url, params={"type": "X", "limit": 100000}), 403, "TooManyResults")
    problem(api.get(url, params={"type": "X", "limit": 0}), 400, "BadRequestData")
    problem(api.get(url, params={"type": "X", "limit": -1}), 400, "BadRequestData")
    problem(api.get(url, params={"type": "(A;"}), 400, "InvalidRequest")
    problem(api.get(url, params={"idPattern": "(unclosed"}), 400, "BadRequestData")
    problem(api.get(url, params={"id": "not a uri"}), 400, "BadRequestData")
    problem(
        api.get(url, params={"type": "X", "options": "keyValues,concise"}), 400, "BadRequestData"
    )


def test_type_selection_language(api):
    both = {"id": "urn:x:both", "type": ["A", "B"], "p": {"value": 1}}
    only_a = {"id": "urn:x:a", "type": "A", "p": {"value": 1}}
    only_c = {"id": "urn:x:c", "type": "C", "p": {"value": 1}}
    for entity in (both, only_a, only_c):
        assert api.post("/ngsi-ld/v1/entities", json=entity).status_code == 201

    def ids(selection: str) -> list[str]:
        found = api.get("/ngsi-ld/v1/entities", params={"type": selection}).json()
        return [e["id"] for e in found]

    assert ids("A") == ["urn:x:a", "urn:x:both"]
    assert ids("B") == ["urn:x:both"]  # B is a further type of urn:x:both
    assert ids("A;B") == ["urn:x:both"]
    assert ids("B,C") == ["urn:x:both", "urn:x:c"]
    assert ids("(A;B)|C") == ["urn:x:both", "urn:x:c"]
    second_b = {"id": "urn:x:b0", "type": "B", "p": {"value": 2}}
    assert api.post("/ngsi-ld/v1/entities", json=second_b).status_code == 201
    pages = [
        [
            e["id"]
            for e in api.get(
                "/ngsi-ld/v1/entities", params={"type": "B", "limit": 1, "offset": offset}
            ).json()
        ]
        for offset in range(3)
    ]
    assert pages == [["urn:x:b0"], ["urn:x:both"], []]  # one id order across both branches


def test_entities_written_by_ingest_are_visible(api, api_database, tenant):
    device = DeviceConfig(device_id="dl-9", profile="ttn-v3", tenant=tenant, location=(3.7, 51.0))
    moment = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    mapper = BatchMapper()
    reading = Reading("AirQualityObserved", "dl-9", "pm25", 7.5, moment, "GQ")
    mapper.add(device, Decoded([reading]), moment)
    with connect(api_database) as conn, conn.cursor() as cursor:
        cursor.execute(STAGING_TABLE)
        write_entities(cursor, mapper.fragments())
        conn.commit()
    body = get(api, "urn:ngsi-ld:AirQualityObserved:dl-9", options="keyValues").json()
    assert body["type"] == "AirQualityObserved"
    assert body["pm25"] == 7.5
    assert body["refDevice"] == "urn:ngsi-ld:Device:dl-9"
    assert body["location"]["coordinates"] == [3.7, 51.0]


def test_a_trailing_slash_is_the_same_resource(api):
    response = api.post("/ngsi-ld/v1/entities/", json=STATION, headers={"Link": LINK})
    assert response.status_code == 201 and not response.history
    assert api.get(f"/ngsi-ld/v1/entities/{STATION['id']}/", headers={"Link": LINK}).json()["id"]
