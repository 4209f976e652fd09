"""Which changes notify a subscription, and the notification sent (ngsi/notification.py;
ETSI GS CIM 009 v1.8, 5.2.12 notificationTrigger, 5.3.1, 5.8.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ngsi.context import ContextResolver
from ngsi.notification import (
    alterations,
    matches,
    notification_headers,
    render_notification,
    selects,
)
from ngsi.subscription import Subscription, parse_subscription
from storage.entity_store import StoredEntity

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CORE = ContextResolver().core
BASE = "https://uri.etsi.org/ngsi-ld/default-context/"
AQO, DEVICE = BASE + "AirQualityObserved", BASE + "Device"
PM25, NO2, NAME = BASE + "pm25", BASE + "no2", BASE + "name"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
REF = BASE + "refDevice"
ID = "urn:ngsi-ld:AirQualityObserved:gent-1"
GENT = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.72, 51.05]}}
BRUSSELS = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [4.35, 50.85]}}
SQUARE = [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]]


def prop(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def station(pm25: Any = 12, *, types: tuple[str, ...] = (AQO,), **more: Any) -> StoredEntity:
    """An entity in the stored form; pm25=None leaves pm25 out."""
    attributes: dict[str, Any] = {LOCATION: GENT}
    if pm25 is not None:
        attributes[PM25] = prop(pm25)
    attributes.update({BASE + name: value for name, value in more.items()})
    return StoredEntity(ID, list(types), attributes)


def subscription(**members: Any) -> Subscription:
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "notification": {"endpoint": {"uri": "http://receiver.example/n"}},
    }
    notification = members.pop("notification", {})
    body["notification"].update(notification)
    for name, value in members.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    return parse_subscription(body, CORE, "tenant-a", now=NOW)


UPDATE = (station(30), station(12), frozenset({PM25}))
CREATE = (station(30), None, frozenset({PM25, LOCATION}))
DELETE = (None, station(12), frozenset({PM25, LOCATION}))
ADD_NO2 = (station(12, no2=prop(4)), station(12), frozenset({NO2}))
DROP_PM25 = (station(None), station(12), frozenset({PM25}))

MATCHING: list[tuple[str, dict[str, Any], tuple[Any, Any, frozenset[str]], bool]] = [
    ("an update of any attribute", {}, UPDATE, True),
    ("creation, by the default triggers", {}, CREATE, True),
    ("deletion is not a default trigger", {}, DELETE, False),
    ("deletion with entityDeleted", {"notificationTrigger": ["entityDeleted"]}, DELETE, True),
    ("attribute deleted, not by default", {}, DROP_PM25, False),
    ("attributeDeleted", {"notificationTrigger": ["attributeDeleted"]}, DROP_PM25, True),
    (
        "entityUpdated means attributeDeleted too",
        {"notificationTrigger": ["entityUpdated"]},
        DROP_PM25,
        True,
    ),
    # entityUpdated means the attribute triggers, and a creation creates its attributes.
    ("entityUpdated covers a creation", {"notificationTrigger": ["entityUpdated"]}, CREATE, True),
    ("entityDeleted is not creation", {"notificationTrigger": ["entityDeleted"]}, CREATE, False),
    ("entityCreated", {"notificationTrigger": ["entityCreated"]}, CREATE, True),
    ("entityCreated is not an update", {"notificationTrigger": ["entityCreated"]}, UPDATE, False),
    ("attributeCreated", {"notificationTrigger": ["attributeCreated"]}, ADD_NO2, True),
    (
        "attributeCreated is not an update",
        {"notificationTrigger": ["attributeCreated"]},
        UPDATE,
        False,
    ),
    (
        "attributeUpdated is not a new attribute",
        {"notificationTrigger": ["attributeUpdated"]},
        ADD_NO2,
        False,
    ),
    ("watched attribute changed", {"watchedAttributes": ["pm25"]}, UPDATE, True),
    ("watched attribute untouched", {"watchedAttributes": ["no2"]}, UPDATE, False),
    ("watched attribute in a creation", {"watchedAttributes": ["pm25"]}, CREATE, True),
    (
        "entity created without a watched one",
        {"watchedAttributes": ["no2"], "notificationTrigger": ["entityCreated"]},
        CREATE,
        False,
    ),
    ("another type", {"entities": [{"type": "Device"}]}, UPDATE, False),
    ("one of several types", {"entities": [{"type": "Device|AirQualityObserved"}]}, UPDATE, True),
    ("both types needed", {"entities": [{"type": "Device;AirQualityObserved"}]}, UPDATE, False),
    ("by id", {"entities": [{"type": "AirQualityObserved", "id": ID}]}, UPDATE, True),
    ("another id", {"entities": [{"type": "AirQualityObserved", "id": "urn:x:y"}]}, UPDATE, False),
    (
        "idPattern found",
        {"entities": [{"type": "AirQualityObserved", "idPattern": "gent-\\d"}]},
        UPDATE,
        True,
    ),
    (
        "idPattern not found",
        {"entities": [{"type": "AirQualityObserved", "idPattern": "^gent"}]},
        UPDATE,
        False,
    ),
    (
        "id wins over idPattern",
        {"entities": [{"type": "AirQualityObserved", "id": ID, "idPattern": "nothing"}]},
        UPDATE,
        True,
    ),
    ("no entities, watched only", {"entities": None, "watchedAttributes": ["pm25"]}, UPDATE, True),
    ("q holds on the new state", {"q": "pm25>25"}, UPDATE, True),
    ("q fails on the new state", {"q": "pm25<25"}, UPDATE, False),
    (
        "q on the old state of a deleted entity",
        {"q": "pm25<25", "notificationTrigger": ["entityDeleted"]},
        DELETE,
        True,
    ),
    (
        "geoQ within",
        {"geoQ": {"georel": "within", "geometry": "Polygon", "coordinates": SQUARE}},
        UPDATE,
        True,
    ),
    (
        "geoQ near far away",
        {
            "geoQ": {
                "georel": "near;maxDistance==1000",
                "geometry": "Point",
                "coordinates": [4.35, 50.85],
            }
        },
        UPDATE,
        False,
    ),
    ("paused", {"isActive": False}, UPDATE, False),
    ("periodic subscriptions never match a change", {"timeInterval": 60}, UPDATE, False),
]


@pytest.mark.parametrize(
    ("members", "change", "expected"),
    [case[1:] for case in MATCHING],
    ids=[case[0] for case in MATCHING],
)
def test_matches(members, change, expected):
    entity, previous, changed = change
    assert matches(subscription(**members), entity, previous, changed, NOW) is expected


def test_an_expired_subscription_never_matches():
    expiring = subscription(expiresAt="2026-03-01T12:30:00Z")
    assert matches(expiring, *UPDATE, NOW)
    assert not matches(expiring, *UPDATE, NOW + timedelta(hours=1))


def test_selects_is_the_periodic_filter():
    periodic = subscription(timeInterval=60, q="pm25>20")
    assert selects(periodic, station(30), NOW)
    assert not selects(periodic, station(10), NOW)
    assert not selects(periodic, station(30, types=(DEVICE,)), NOW)


@pytest.mark.parametrize(
    ("change", "kinds"),
    [
        (CREATE, {"entityCreated", "attributeCreated"}),
        (DELETE, {"entityDeleted"}),
        (UPDATE, {"attributeUpdated"}),
        (ADD_NO2, {"attributeCreated"}),
        (DROP_PM25, {"attributeDeleted"}),
        ((station(12), station(12), frozenset()), set()),
    ],
)
def test_alterations(change, kinds):
    assert alterations(*change) == kinds


def notify(sub: Subscription, entities: list[StoredEntity], previous=None) -> dict[str, Any]:
    return render_notification(sub, entities, previous or {}, NOW, "urn:ngsi-ld:Notification:1")


NOW_TEXT = "2026-03-01T12:00:00.000000Z"


def test_the_notification_envelope():
    sub = subscription()
    body = notify(sub, [station(30)])
    assert body["id"] == "urn:ngsi-ld:Notification:1"
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sub.id
    assert body["notifiedAt"] == NOW_TEXT
    assert "@context" not in body


@pytest.mark.parametrize(
    ("format_name", "pm25"),
    [
        ("normalized", {"type": "Property", "value": 30, "unitCode": "GQ"}),
        ("concise", {"value": 30, "unitCode": "GQ"}),
        ("keyValues", 30),
    ],
)
def test_formats(format_name, pm25):
    entity = StoredEntity(ID, [AQO], {PM25: prop(30, unitCode="GQ")})
    data = notify(subscription(notification={"format": format_name}), [entity])["data"]
    assert data == [{"id": ID, "type": "AirQualityObserved", "pm25": pm25}]


def test_attributes_and_sys_attrs():
    entity = station(30, no2=prop(4))
    entity.created_at = entity.modified_at = NOW
    sub = subscription(notification={"attributes": ["no2"], "sysAttrs": True})
    [item] = notify(sub, [entity])["data"]
    assert set(item) == {"id", "type", "no2", "createdAt", "modifiedAt"}


def test_show_changes_adds_the_previous_content():
    before = station(12, refDevice={"type": "Relationship", "object": "urn:d:1"})
    after = station(30, refDevice={"type": "Relationship", "object": "urn:d:2"}, no2=prop(4))
    sub = subscription(notification={"showChanges": True, "format": "concise"})
    [item] = notify(sub, [after], {ID: before})["data"]
    assert item["pm25"] == {"value": 30, "previousValue": 12}
    assert item["refDevice"] == {"object": "urn:d:2", "previousObject": "urn:d:1"}
    assert item["no2"] == 4  # new: nothing before it


def test_show_changes_per_dataset_id():
    before = StoredEntity(
        ID, [AQO], {PM25: [prop(1, datasetId="urn:a"), prop(2, datasetId="urn:b")]}
    )
    after = StoredEntity(
        ID, [AQO], {PM25: [prop(5, datasetId="urn:b"), prop(6, datasetId="urn:c")]}
    )
    sub = subscription(notification={"showChanges": True})
    [item] = notify(sub, [after], {ID: before})["data"]
    assert [i.get("previousValue") for i in item["pm25"]] == [2, None]


def test_a_deleted_attribute_is_notified_as_the_ngsi_ld_null():
    sub = subscription(notificationTrigger=["attributeDeleted"], notification={"sysAttrs": True})
    [item] = notify(sub, [station(None)], {ID: station(12)})["data"]
    assert item["pm25"] == {"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": NOW_TEXT}
    [without] = notify(subscription(), [station(None)], {ID: station(12)})["data"]
    assert "pm25" not in without


def test_a_deleted_entity_is_id_type_and_deleted_at():
    sub = subscription(notificationTrigger=["entityDeleted"])
    data = notify(sub, [], {ID: station(12)})["data"]
    assert data == [{"id": ID, "type": "AirQualityObserved", "deletedAt": NOW_TEXT}]


def test_json_ld_carries_the_context():
    sub = subscription(
        notification={"endpoint": {"uri": "http://r/n", "accept": "application/ld+json"}}
    )
    assert notify(sub, [station()])["@context"] == (
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    )
    assert "Link" not in notification_headers(sub)


def test_geo_json_is_a_feature_collection():
    sub = subscription(
        notification={"endpoint": {"uri": "http://r/n", "accept": "application/geo+json"}}
    )
    data = notify(sub, [station(30)])["data"]
    assert data["type"] == "FeatureCollection"
    assert data["features"][0]["geometry"] == GENT["value"]


def test_headers():
    sub = subscription(
        notification={
            "endpoint": {
                "uri": "http://r/n",
                "receiverInfo": [{"key": "Authorization", "value": "Bearer t"}],
            }
        }
    )
    headers = notification_headers(sub)
    assert headers["Content-Type"] == "application/json"
    assert headers["Link"].startswith("<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context")
    assert headers["NGSILD-Tenant"] == "tenant-a"
    assert headers["Authorization"] == "Bearer t"
