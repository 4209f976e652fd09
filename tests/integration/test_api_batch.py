"""Batch entity operations and POST query over HTTP (in-process), against the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ngsi.errors import error_uri
from stadspuls.api import create_app
from tests.support.api import api_settings

pytestmark = pytest.mark.integration

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
OPERATIONS = "/ngsi-ld/v1/entityOperations/"
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def station(number: int, **attributes: Any) -> dict[str, Any]:
    """An AirQualityObserved in Ghent (Environment context terms)."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:gent-{number}",
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": 10 + number, "unitCode": "GQ"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [3.70 + number / 100, 51.05]},
        },
        **attributes,
    }


def post(api: TestClient, operation: str, body: Any, **params: str):
    """POST to /entityOperations/<operation> with the Environment context."""
    return api.post(OPERATIONS + operation, json=body, params=params, headers={"Link": LINK})


def get(api: TestClient, entity_id: str, **params: str):
    return api.get(f"/ngsi-ld/v1/entities/{entity_id}", params=params, headers={"Link": LINK})


def values(api: TestClient, entity_id: str) -> dict[str, Any]:
    """The entity in keyValues form."""
    response = get(api, entity_id, options="keyValues")
    assert response.status_code == 200, response.text
    return response.json()


def problem(response, status: int, error: str) -> dict:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == error_uri(error), body
    assert body["title"] and body["detail"]
    return body


def errors_of(response) -> dict[Any, str]:
    """The 207 BatchOperationResult's errors: entity id → error type name."""
    assert response.status_code == 207, response.text
    return {
        e["entityId"]: e["error"]["type"].removeprefix(ERRORS) for e in response.json()["errors"]
    }


# --- create ---


def test_create_answers_201_with_the_ids_in_array_order(api):
    response = post(api, "create", [station(2), station(1)])
    assert response.status_code == 201
    assert response.json() == [station(2)["id"], station(1)["id"]]
    assert values(api, station(1)["id"])["pm25"] == 11
    assert get(api, station(2)["id"]).json()["pm25"]["unitCode"] == "GQ"


def test_create_fails_each_bad_entity_alone_with_207(api):
    assert post(api, "create", [station(1)]).status_code == 201
    batch = [
        station(1),  # exists
        station(2),
        {"id": "urn:ngsi-ld:AirQualityObserved:gent-3", "pm25": {"value": 1}},  # no type
        {**station(4), "id": "not a uri"},
        {**station(5), "location": {"type": "GeoProperty", "value": [1, 2]}},
        "urn:ngsi-ld:AirQualityObserved:gent-6",  # not an object
        {**station(2), "pm25": {"value": 99}},  # second occurrence of gent-2
    ]
    response = post(api, "create", batch)
    assert response.json()["success"] == [station(2)["id"]]
    assert errors_of(response) == {
        station(1)["id"]: "AlreadyExists",
        "urn:ngsi-ld:AirQualityObserved:gent-3": "BadRequestData",
        "not a uri": "BadRequestData",
        station(5)["id"]: "BadRequestData",
        "urn:ngsi-ld:AirQualityObserved:gent-6": "BadRequestData",
        station(2)["id"]: "AlreadyExists",
    }
    assert [e["error"]["status"] for e in response.json()["errors"]] == [
        409,
        400,
        400,
        400,
        400,
        409,
    ]
    assert values(api, station(2)["id"])["pm25"] == 12  # the first occurrence created it
    problem(get(api, station(5)["id"]), 404, "ResourceNotFound")


def test_create_with_every_entity_failing_is_207_and_creates_no_tenant(api):
    response = post(api, "create", [{"id": "urn:x:1"}, {"id": 5, "type": "T"}])
    assert response.json()["success"] == []
    assert errors_of(response) == {"urn:x:1": "BadRequestData", 5: "BadRequestData"}
    problem(get(api, "urn:x:1"), 404, "NonexistentTenant")


@pytest.mark.parametrize("operation", ["create", "upsert", "update", "delete"])
@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (station(1), 400, "BadRequestData"),  # an object, not an array
        ([], 400, "BadRequestData"),
        ([station(1), None], 400, "BadRequestData"),
        ([station(n) for n in range(4)], 413, "PayloadTooLarge"),  # above the limit of 3
    ],
)
def test_a_body_that_is_no_batch_fails_whole(api_database, tenant, operation, body, status, error):
    settings = api_settings(api_database, api_max_batch_entities=3)
    with TestClient(create_app(settings)) as client:
        client.headers["NGSILD-Tenant"] = tenant
        if operation == "delete" and isinstance(body, list):
            body = [item["id"] if item else item for item in body]
        problem(post(client, operation, body), status, error)


def test_media_type_and_json_errors(api):
    headers = {"Content-Type": "text/plain"}
    problem(
        api.post(OPERATIONS + "create", content=b"[]", headers=headers), 415, "UnsupportedMediaType"
    )
    headers = {"Content-Type": "application/json"}
    problem(api.post(OPERATIONS + "upsert", content=b"[{", headers=headers), 400, "InvalidRequest")


def test_json_ld_entities_each_carry_their_own_context(api):
    core = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    other = {"@context": {"pm25": "https://example.org/other#pm25"}}
    batch = [
        {**station(1), "@context": ENVIRONMENT},
        {**station(2), "@context": [other["@context"], core]},
    ]
    response = api.post(
        OPERATIONS + "create", json=batch, headers={"Content-Type": "application/ld+json"}
    )
    assert response.status_code == 201, response.text
    assert values(api, station(1)["id"])["pm25"] == 11
    second = api.get(f"/ngsi-ld/v1/entities/{station(2)['id']}").json()
    assert "https://example.org/other#pm25" in second
    with_link = {**batch[0], "id": "urn:x:9"}
    response = api.post(
        OPERATIONS + "create",
        json=[with_link],
        headers={"Content-Type": "application/ld+json", "Link": LINK},
    )
    problem(response, 400, "BadRequestData")


def test_writes_need_credentials_when_access_control_is_on(api_database, tenant):
    with TestClient(create_app(api_settings(api_database, auth_enabled=True))) as client:
        client.headers["NGSILD-Tenant"] = tenant
        problem(post(client, "upsert", [station(1)]), 401, "Unauthorized")
        problem(post(client, "delete", [station(1)["id"]]), 401, "Unauthorized")


# --- upsert ---


def test_upsert_answers_201_with_the_created_ids_then_204(api):
    response = post(api, "upsert", [station(1), station(2)])
    assert response.status_code == 201 and response.json() == [station(1)["id"], station(2)["id"]]
    response = post(api, "upsert", [station(1, no2={"value": 7}), station(3)])
    assert response.status_code == 201 and response.json() == [station(3)["id"]]
    response = post(api, "upsert", [station(1), station(2)])
    assert response.status_code == 204 and response.content == b""


def test_upsert_replaces_by_default_and_keeps_created_at(api):
    first = station(1, no2={"value": 30}, scope="/Gent/Centrum")
    post(api, "upsert", [first])
    created = get(api, first["id"], options="sysAttrs").json()["createdAt"]
    replacement = {"id": first["id"], "type": "AirQualityObserved", "pm10": {"value": 20}}
    for options in ({}, {"options": "replace"}):
        assert post(api, "upsert", [replacement], **options).status_code == 204
        body = get(api, first["id"], options="sysAttrs").json()
        assert set(body) == {"id", "type", "pm10", "createdAt", "modifiedAt"}  # scope gone too
        assert body["createdAt"] == created and body["modifiedAt"] > created


def test_upsert_with_options_update_merges_into_the_stored_entity(api):
    lanes = [
        {"type": "Property", "value": 50, "datasetId": "urn:ngsi-ld:Dataset:lane-1"},
        {"type": "Property", "value": 60, "datasetId": "urn:ngsi-ld:Dataset:lane-2"},
    ]
    post(api, "upsert", [station(1, no2={"value": 30}, speed=lanes, scope="/Gent")])
    attribute_created = get(api, station(1)["id"], options="sysAttrs").json()["no2"]["createdAt"]
    change = {
        "id": station(1)["id"],
        "type": ["AirQualityObserved", "Sensor"],
        "no2": {"value": 31},
        "pm10": {"value": 5},
        "speed": {"type": "Property", "value": 55, "datasetId": "urn:ngsi-ld:Dataset:lane-1"},
    }
    assert post(api, "upsert", [change], options="update").status_code == 204
    body = get(api, station(1)["id"], options="sysAttrs").json()
    assert body["type"] == ["AirQualityObserved", "Sensor"]
    assert body["scope"] == "/Gent"
    assert body["pm25"]["value"] == 11  # not in the change: kept
    assert body["no2"]["value"] == 31 and body["no2"]["createdAt"] == attribute_created
    assert body["pm10"]["value"] == 5
    lanes_now = {i["datasetId"][-6:]: i["value"] for i in body["speed"]}
    assert lanes_now == {"lane-1": 55, "lane-2": 60}  # merged per datasetId


def test_upsert_with_an_invalid_entity_answers_207_and_writes_the_others(api):
    post(api, "upsert", [station(1)])
    response = post(api, "upsert", [station(1, no2={"value": 1}), station(2), {"id": "urn:x:bad"}])
    assert response.json()["success"] == [station(1)["id"], station(2)["id"]]
    assert errors_of(response) == {"urn:x:bad": "BadRequestData"}
    assert values(api, station(1)["id"])["no2"] == 1
    assert values(api, station(2)["id"])["pm25"] == 12


def test_upsert_of_one_id_given_twice_replaces_or_merges_in_array_order(api):
    one = station(1)["id"]
    batch = [station(1, no2={"value": 1}), station(2), {**station(1), "pm25": {"value": 99}}]
    response = post(api, "upsert", batch)
    assert response.status_code == 201 and response.json() == [one, station(2)["id"]]
    assert values(api, one)["pm25"] == 99 and "no2" not in values(api, one)  # the last won
    merging = [
        {"id": one, "type": "AirQualityObserved", "no2": {"value": 2}, "pm10": {"value": 3}},
        {"id": one, "type": "AirQualityObserved", "no2": {"value": 4}, "o3": {"value": 5}},
    ]
    assert post(api, "upsert", merging, options="update").status_code == 204
    assert {k: v for k, v in values(api, one).items() if k in ("pm25", "no2", "pm10", "o3")} == {
        "pm25": 99,
        "no2": 4,
        "pm10": 3,
        "o3": 5,
    }
    new = "urn:ngsi-ld:AirQualityObserved:gent-9"
    created = [{**merging[0], "id": new}, {**merging[1], "id": new}]
    response = post(api, "upsert", created, options="update")
    assert response.status_code == 201 and response.json() == [new]
    assert values(api, new)["no2"] == 4 and values(api, new)["pm10"] == 3


def test_upsert_creates_the_tenant(api, tenant):
    problem(get(api, station(1)["id"]), 404, "NonexistentTenant")
    assert post(api, "upsert", [station(1)]).status_code == 201
    assert values(api, station(1)["id"])["pm25"] == 11


@pytest.mark.parametrize("options", ["update,replace", "noOverwrite", "keyValues"])
def test_upsert_options_are_update_or_replace(api, options):
    problem(post(api, "upsert", [station(1)], options=options), 400, "BadRequestData")


# --- update ---


def test_update_appends_and_overwrites_attributes_of_existing_entities(api):
    post(api, "create", [station(1), station(2)])
    change = [
        {"id": station(1)["id"], "pm25": {"value": 50}, "no2": {"value": 8}},  # type optional
        {"id": station(2)["id"], "type": "AirQualityObserved", "pm10": {"value": 3}},
    ]
    response = post(api, "update", change)
    assert response.status_code == 204 and response.content == b""
    assert values(api, station(1)["id"])["pm25"] == 50
    assert values(api, station(1)["id"])["no2"] == 8
    assert values(api, station(1)["id"])["location"]["type"] == "Point"  # kept
    assert values(api, station(2)["id"])["pm10"] == 3


def test_update_reports_missing_and_invalid_entities_with_207(api):
    post(api, "create", [station(1)])
    change = [
        {"id": "urn:ngsi-ld:AirQualityObserved:none", "pm25": {"value": 1}},
        {"id": station(1)["id"], "pm25": {"value": 2}},
        {"id": station(1)["id"], "pm25": {"type": "Relationship", "object": "no uri"}},
    ]
    response = post(api, "update", change)
    assert response.json()["success"] == [station(1)["id"]]
    errors = response.json()["errors"]
    assert [(e["entityId"], e["error"]["type"].removeprefix(ERRORS)) for e in errors] == [
        ("urn:ngsi-ld:AirQualityObserved:none", "ResourceNotFound"),
        (station(1)["id"], "BadRequestData"),
    ]
    assert values(api, station(1)["id"])["pm25"] == 2


def test_update_with_no_overwrite_keeps_existing_attributes(api):
    post(api, "create", [station(1)])
    change = [
        {"id": station(1)["id"], "pm25": {"value": 50}, "no2": {"value": 8}},
        {"id": station(1)["id"], "no2": {"value": 9}, "o3": {"value": 1}},
    ]
    assert post(api, "update", change, options="noOverwrite").status_code == 204
    body = values(api, station(1)["id"])
    assert (body["pm25"], body["no2"], body["o3"]) == (11, 8, 1)  # the first no2 won
    assert post(api, "update", change).status_code == 204
    body = values(api, station(1)["id"])
    assert (body["pm25"], body["no2"], body["o3"]) == (50, 9, 1)  # the last no2 won
    problem(post(api, "update", change, options="replace"), 400, "BadRequestData")


def test_update_on_an_unknown_tenant_is_nonexistent_tenant(api):
    problem(post(api, "update", [station(1)]), 404, "NonexistentTenant")


# --- delete ---


def test_delete_answers_204_or_207_with_resource_not_found(api):
    post(api, "create", [station(1), station(2), station(3)])
    response = post(api, "delete", [station(1)["id"], station(2)["id"]])
    assert response.status_code == 204
    problem(get(api, station(1)["id"]), 404, "ResourceNotFound")
    batch = [station(3)["id"], station(1)["id"], "not a uri", station(3)["id"], 7]
    response = post(api, "delete", batch)
    assert response.json()["success"] == [station(3)["id"]]
    errors = response.json()["errors"]
    assert [(e["entityId"], e["error"]["type"].removeprefix(ERRORS)) for e in errors] == [
        (station(1)["id"], "ResourceNotFound"),
        ("not a uri", "BadRequestData"),
        (station(3)["id"], "ResourceNotFound"),  # deleted by its first occurrence
        (7, "BadRequestData"),
    ]


def test_delete_takes_a_json_ld_array_of_ids(api):
    post(api, "create", [station(1)])
    response = api.post(
        OPERATIONS + "delete",
        json=[station(1)["id"]],
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 204


def test_delete_on_an_unknown_tenant_is_nonexistent_tenant(api):
    problem(post(api, "delete", [station(1)["id"]]), 404, "NonexistentTenant")


# --- query ---


def query(api: TestClient, body: dict[str, Any], **params: str):
    """POST a Query with the Environment context."""
    return post(api, "query", {"type": "Query", **body}, **params)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entity["id"].rsplit(":", 1)[-1] for entity in response.json()]


@pytest.fixture
def mixed(api: TestClient) -> TestClient:
    """Five stations (gent-0 ... gent-4) and two devices."""
    devices = [
        {"id": f"urn:ngsi-ld:Device:dev-{n}", "type": "Device", "pm25": {"value": n}}
        for n in (1, 2)
    ]
    assert post(api, "upsert", [station(n) for n in range(5)] + devices).status_code == 201
    return api


def test_query_selects_with_several_entity_selectors_ored(mixed):
    by_types = query(mixed, {"entities": [{"type": "AirQualityObserved"}, {"type": "Device"}]})
    assert ids(by_types) == ["gent-0", "gent-1", "gent-2", "gent-3", "gent-4", "dev-1", "dev-2"]
    by_ids = query(
        mixed,
        {
            "entities": [
                {"type": "AirQualityObserved", "id": station(3)["id"]},
                {"type": "AirQualityObserved", "id": station(1)["id"]},
            ]
        },
    )
    assert ids(by_ids) == ["gent-1", "gent-3"]
    mixed_kinds = {
        "entities": [
            {"type": "Device", "id": "urn:ngsi-ld:Device:dev-2"},
            {"idPattern": ".*gent-[34]$"},
            {"type": "AirQualityObserved", "id": station(0)["id"]},
        ]
    }
    everything = query(mixed, mixed_kinds, count="true")
    assert ids(everything) == ["gent-0", "gent-3", "gent-4", "dev-2"]
    assert everything.headers["NGSILD-Results-Count"] == "4"
    page = query(mixed, mixed_kinds, limit="2", offset="1", count="true")
    assert ids(page) == ["gent-3", "gent-4"] and page.headers["NGSILD-Results-Count"] == "4"
    with_q = query(mixed, {**mixed_kinds, "q": "pm25>12"})
    assert ids(with_q) == ["gent-3", "gent-4"]


def test_query_with_q_attrs_and_representation(mixed):
    response = query(
        mixed,
        {"entities": [{"type": "AirQualityObserved"}], "q": "pm25>=12;pm25<14", "attrs": ["pm25"]},
        options="keyValues",
        count="true",
    )
    assert response.json() == [
        {"id": station(2)["id"], "type": "AirQualityObserved", "pm25": 12},
        {"id": station(3)["id"], "type": "AirQualityObserved", "pm25": 13},
    ]
    assert response.headers["NGSILD-Results-Count"] == "2"
    assert ENVIRONMENT in response.headers["Link"]
    only_q = query(mixed, {"q": "pm25<2"})
    assert ids(only_q) == ["dev-1"]
    picked = query(mixed, {"entities": [{"type": "AirQualityObserved"}], "pick": ["id"]})
    assert picked.json()[0] == {"id": station(0)["id"]}


def test_query_with_geo_q(mixed):
    near = {
        "geometry": "Point",
        "coordinates": [3.70, 51.05],
        "georel": "near;maxDistance==1000",
    }
    response = query(mixed, {"entities": [{"type": "AirQualityObserved"}], "geoQ": near})
    assert ids(response) == ["gent-0", "gent-1"]  # 0 m and about 700 m away
    box = [[[3.715, 51.0], [3.75, 51.0], [3.75, 51.1], [3.715, 51.1], [3.715, 51.0]]]
    within = {"geometry": "Polygon", "coordinates": str(box), "georel": "within"}
    response = query(mixed, {"geoQ": within, "entities": [{"idPattern": "gent"}]})
    assert ids(response) == ["gent-2", "gent-3", "gent-4"]
    assert ids(query(mixed, {"geoQ": within})) == ["gent-2", "gent-3", "gent-4"]


@pytest.mark.parametrize("postgis", [True, False])
def test_geo_query_with_selectors_of_several_kinds(mixed, postgis):
    if postgis and not mixed.app.state.postgis:
        pytest.skip("PostGIS is not installed in this PostgreSQL (.ci/run installs it)")
    mixed.app.state.postgis = postgis  # False: the bounding box in SQL, the rest in shapely
    box = [[[3.715, 51.0], [3.75, 51.1], [3.715, 51.1], [3.715, 51.0]]]
    body = {
        "entities": [
            {"idPattern": "gent-[01]$"},
            {"type": "AirQualityObserved", "id": station(3)["id"]},
        ],
        "geoQ": {"geometry": "Polygon", "coordinates": box, "georel": "disjoint"},
    }
    response = query(mixed, body, count="true", limit="1")
    assert ids(response) == ["gent-0"] and response.headers["NGSILD-Results-Count"] == "2"


def test_query_answers_geo_json_when_asked(mixed):
    response = mixed.post(
        OPERATIONS + "query",
        json={"type": "Query", "entities": [{"type": "AirQualityObserved"}]},
        headers={"Link": LINK, "Accept": "application/geo+json"},
    )
    assert response.json()["type"] == "FeatureCollection"
    assert len(response.json()["features"]) == 5


@pytest.mark.parametrize(
    ("body", "params", "status", "error"),
    [
        ({"type": "Query", "entities": [{"type": "T"}]}, {"limit": "5000"}, 403, "TooManyResults"),
        ({"type": "Query", "entities": [{"type": "T"}]}, {"limit": "0"}, 400, "BadRequestData"),
        ({"type": "Query"}, {}, 400, "BadRequestData"),  # selects nothing in particular
        ({"type": "Subscription", "entities": [{"type": "T"}]}, {}, 400, "BadRequestData"),
        ([{"type": "Query"}], {}, 400, "BadRequestData"),
        ({"type": "Query", "entities": {"type": "T"}}, {}, 400, "BadRequestData"),
        ({"type": "Query", "entities": [{"kind": "T"}]}, {}, 400, "BadRequestData"),
        ({"type": "Query", "entities": [{"id": "no uri"}]}, {}, 400, "BadRequestData"),
        ({"type": "Query", "entities": [{"idPattern": "(x"}]}, {}, 400, "BadRequestData"),
        ({"type": "Query", "entities": [{"type": "(A;"}]}, {}, 400, "InvalidRequest"),
        ({"type": "Query", "q": "pm25>"}, {}, 400, "InvalidRequest"),
        ({"type": "Query", "q": 5}, {}, 400, "BadRequestData"),
        ({"type": "Query", "geoQ": {"georel": "near"}}, {}, 400, "BadRequestData"),
        ({"type": "Query", "geoQ": "near"}, {}, 400, "BadRequestData"),
        ({"type": "Query", "attrs": "pm25", "filter": "x"}, {}, 400, "BadRequestData"),
        ({"type": "Query", "scopeQ": "/Gent"}, {}, 422, "OperationNotSupported"),
    ],
)
def test_query_errors(mixed, body, params, status, error):
    problem(post(mixed, "query", body, **params), status, error)


def test_query_on_an_unknown_tenant_is_nonexistent_tenant(api):
    problem(query(api, {"entities": [{"type": "T"}]}), 404, "NonexistentTenant")
