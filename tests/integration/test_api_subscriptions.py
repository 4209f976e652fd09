"""The NGSI-LD subscription operations over HTTP (in-process) and the dispatcher's side of
storage/subscription_store.py, against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ngsi.errors import error_uri
from ngsi.routers import subscriptions
from stadspuls.api import create_app
from storage.database import connect
from storage.subscription_store import (
    any_live_subscription,
    load_subscriptions,
    record_delivery,
    subscription_revision,
)
from tests.support.api import api_settings

pytestmark = pytest.mark.integration

ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
URL = "/ngsi-ld/v1/subscriptions"
SDM = "https://smartdatamodels.org/dataModel.Environment/"


def with_subscriptions(app: FastAPI) -> FastAPI:
    """The app with the subscriptions router, until stadspuls/api.py includes it."""
    if not any(getattr(route, "path", None) == URL for route in app.routes):
        app.include_router(subscriptions.router)
    return app


@pytest.fixture
def api(api_database: str, tenant: str) -> Iterator[TestClient]:
    """An in-process client of a fresh app with the subscription routes, for `tenant`."""
    with TestClient(with_subscriptions(create_app(api_settings(api_database)))) as client:
        client.headers["NGSILD-Tenant"] = tenant
        yield client


def subscription(**members: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "watchedAttributes": ["pm25"],
        "q": "pm25>25",
        "notification": {
            "attributes": ["pm25"],
            "endpoint": {"uri": "http://receiver.example/notify"},
        },
    }
    body.update(members)
    return body


def create(api: TestClient, body: dict[str, Any], **headers: str):
    return api.post(URL, json=body, headers={"Link": LINK, **headers})


def problem(response, status: int, error: str) -> dict:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == error_uri(error), body
    assert body["title"] and body["detail"]
    return body


def test_create_then_retrieve_in_the_callers_terms(api):
    body = subscription()
    response = create(api, body)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location == URL + "/" + body["id"].replace(":", "%3A")
    got = api.get(location, headers={"Link": LINK})
    assert got.status_code == 200
    answer = got.json()
    assert answer["entities"] == [{"type": "AirQualityObserved"}]
    assert answer["watchedAttributes"] == ["pm25"]
    assert answer["status"] == "active"
    assert answer["notification"]["timesSent"] == 0
    assert ENVIRONMENT in got.headers["Link"]
    bare = api.get(location).json()
    assert bare["watchedAttributes"] == [SDM + "pm25"]


def test_json_ld_answer_and_sys_attrs(api):
    body = subscription()
    create(api, body)
    answer = api.get(
        f"{URL}/{body['id']}",
        params={"options": "sysAttrs"},
        headers={"Accept": "application/ld+json", "Link": LINK},
    ).json()
    assert answer["@context"] == ENVIRONMENT
    assert answer["createdAt"].endswith("Z") and answer["modifiedAt"]


def test_an_id_is_minted_when_none_is_given(api):
    body = subscription()
    del body["id"]
    response = create(api, body)
    assert response.status_code == 201
    assert response.headers["Location"].startswith(URL + "/urn%3Angsi-ld%3ASubscription%3A")


def test_a_taken_id_is_409(api):
    body = subscription()
    assert create(api, body).status_code == 201
    problem(create(api, body), 409, "AlreadyExists")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"timeInterval": 10}, "timeInterval and watchedAttributes"),
        ({"notification": {"endpoint": {"uri": "ftp://x/y"}}}, "mqtt://"),
        ({"q": "pm25>>1"}, "q, character"),
        ({"type": "Entity"}, "type must be 'Subscription'"),
    ],
)
def test_invalid_bodies_are_400(api, members, message):
    assert message in problem(create(api, subscription(**members)), 400, "BadRequestData")["detail"]


def test_unknown_ones_are_404(api, tenant):
    missing = f"{URL}/urn:ngsi-ld:Subscription:missing"
    create(api, subscription())  # the tenant exists now
    problem(api.get(missing), 404, "ResourceNotFound")
    problem(api.patch(missing, json={"isActive": False}), 404, "ResourceNotFound")
    problem(api.delete(missing), 404, "ResourceNotFound")
    problem(api.get(f"{URL}/not-a-uri"), 400, "BadRequestData")
    problem(api.get(URL, headers={"NGSILD-Tenant": tenant + "-none"}), 404, "NonexistentTenant")


def test_patch_then_delete(api):
    body = subscription(throttling=5)
    create(api, body)
    where = f"{URL}/{body['id']}"
    response = api.patch(
        where,
        json={"isActive": False, "notification": {"format": "keyValues"}, "throttling": 10},
        headers={"Link": LINK},
    )
    assert response.status_code == 204, response.text
    answer = api.get(where, headers={"Link": LINK}).json()
    assert answer["status"] == "paused" and answer["isActive"] is False
    assert answer["throttling"] == 10
    assert answer["notification"]["format"] == "keyValues"
    assert answer["notification"]["attributes"] == ["pm25"]  # kept: not in the fragment
    problem(api.patch(where, json={"timeInterval": 5}), 400, "BadRequestData")
    assert api.delete(where).status_code == 204
    problem(api.get(where), 404, "ResourceNotFound")


def test_list_pages_in_id_order_with_a_count(api):
    ids = [f"urn:ngsi-ld:Subscription:list-{number}" for number in range(3)]
    for subscription_id in reversed(ids):
        create(api, subscription(id=subscription_id))
    first = api.get(URL, params={"limit": 2, "count": "true"}, headers={"Link": LINK})
    assert first.status_code == 200
    assert first.headers["NGSILD-Results-Count"] == "3"
    assert [item["id"] for item in first.json()] == ids[:2]
    rest = api.get(URL, params={"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in rest] == ids[2:]
    assert "NGSILD-Results-Count" not in api.get(URL).headers


def test_tenants_do_not_see_each_others_subscriptions(api, tenant):
    body = subscription()
    create(api, body)
    other = {"NGSILD-Tenant": tenant + "-other"}
    assert create(api, subscription(id=body["id"]), **other).status_code == 201
    assert len(api.get(URL, headers=other).json()) == 1
    assert api.delete(f"{URL}/{body['id']}", headers=other).status_code == 204
    assert api.get(f"{URL}/{body['id']}").status_code == 200


def test_the_dispatcher_loads_live_subscriptions_and_records_deliveries(api, api_database, tenant):
    live, paused = subscription(), subscription(isActive=False)
    with connect(api_database) as conn:
        revision = subscription_revision(conn)
    create(api, live)
    create(api, paused)
    with connect(api_database) as conn:
        assert subscription_revision(conn) > revision
        assert any_live_subscription(conn)
        loaded = {s.id: s for s in load_subscriptions(conn) if s.tenant == tenant}
        assert set(loaded) == {live["id"]}
        found = loaded[live["id"]]
        assert found.watched_attributes == {SDM + "pm25"}
        assert found.context.compact(SDM + "pm25") == "pm25"
        sent = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert record_delivery(conn, tenant, live["id"], success=True, at=sent)
        assert record_delivery(
            conn, tenant, live["id"], success=False, at=sent + timedelta(seconds=1), reason="503"
        )
        assert not record_delivery(
            conn, tenant, "urn:ngsi-ld:Subscription:gone", success=True, at=sent
        )
        revision = subscription_revision(conn)
        conn.commit()
    with connect(api_database) as conn:
        assert subscription_revision(conn) == revision  # a delivery is no definition change
    status = api.get(f"{URL}/{live['id']}").json()["notification"]
    assert (status["timesSent"], status["timesFailed"], status["status"]) == (2, 1, "failed")
    assert status["lastSuccess"] == "2026-03-01T12:00:00.000000Z"
    assert status["lastFailure"] == status["lastNotification"] == "2026-03-01T12:00:01.000000Z"
    assert status["lastFailureReason"] == "503"
