"""Subscriptions (ngsi/subscription.py, ngsi/subscription_input.py): checking bodies, the
stored form, updates and rendering (ETSI GS CIM 009 v1.8, 5.2.12, 5.2.14, 5.2.15, 5.8)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ngsi.context import ContextResolver
from ngsi.errors import ErrorType, NgsiError
from ngsi.subscription import (
    DeliveryStatus,
    context_from_terms,
    context_terms,
    parse_subscription,
    render_subscription,
    status_of,
    subscription_from_document,
    update_subscription,
)
from ngsi.typeselect import AnyOf, TypeName

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
SDM = "https://smartdatamodels.org/dataModel.Environment/"
CORE = ContextResolver().core
ENV = asyncio.run(ContextResolver().resolve(ENVIRONMENT))
ENDPOINT = {"uri": "http://receiver.example/notify"}


def body(**members: Any) -> dict[str, Any]:
    """A valid subscription body with `members` changed (None removes one)."""
    document: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "watchedAttributes": ["pm25"],
        "notification": {"endpoint": dict(ENDPOINT)},
    }
    for name, value in members.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def notification(**members: Any) -> dict[str, Any]:
    return {"endpoint": dict(ENDPOINT), **members}


def parse(document: Any, context: Any = CORE) -> Any:
    return parse_subscription(document, context, "tenant-a", now=NOW)


INVALID: list[tuple[dict[str, Any], str]] = [
    (body(type="Entity"), "type must be 'Subscription'"),
    (body(type=None), "type must be 'Subscription'"),
    (body(id="not a uri"), "id must be a URI"),
    (body(entities=None, watchedAttributes=None), "needs entities or watchedAttributes"),
    (body(entities=[]), "entities must be a non-empty array"),
    (body(entities=[{"id": "urn:a"}]), r"entities\[0\] needs a type"),
    (body(entities=[{"type": "A", "id": "nope"}]), r"entities\[0\].id must be a URI"),
    (body(entities=[{"type": "A", "idPattern": "("}]), "idPattern is not a regular expression"),
    (body(entities=[{"type": "A|"}]), r"entities\[0\].type"),
    (body(entities=[{"type": "A", "colour": "red"}]), "unknown member 'colour'"),
    (body(watchedAttributes=[]), "watchedAttributes must be a non-empty array"),
    (body(watchedAttributes="pm25"), "watchedAttributes must be a non-empty array"),
    (body(timeInterval=60), "timeInterval and watchedAttributes"),
    (body(watchedAttributes=None, timeInterval=60, throttling=5), "timeInterval and throttling"),
    (body(watchedAttributes=None, timeInterval=0), "greater than 0"),
    (body(throttling=-1), "throttling must be a number of seconds greater than 0"),
    (body(throttling="5"), "throttling must be a number of seconds"),
    (body(notificationTrigger=["entityChanged"]), "unknown notificationTrigger 'entityChanged'"),
    (body(notificationTrigger=[]), "notificationTrigger must be a non-empty array"),
    (body(q="pm25>>3"), "q, character"),
    (body(geoQ={"georel": "near", "geometry": "Point", "coordinates": [3, 51]}), "near needs"),
    (body(geoQ={"georel": "within", "geometry": "Point"}), "missing: coordinates"),
    (body(isActive="yes"), "isActive must be true or false"),
    (body(expiresAt="2020-01-01T00:00:00Z"), "expiresAt .* is not in the future"),
    (body(expiresAt="tomorrow"), "expiresAt is not an ISO 8601 date-time"),
    (body(notification=None), "notification is mandatory"),
    (body(notification={"format": "normalized"}), "notification.endpoint is mandatory"),
    (body(notification=notification(format="compact")), "notification.format must be"),
    (
        body(notification=notification(format="keyValues", showChanges=True)),
        "showChanges cannot be true with format keyValues",
    ),
    (body(notification=notification(attributes=[])), "notification.attributes must be"),
    (body(notification=notification(sysAttrs=1)), "notification.sysAttrs must be true or false"),
    (body(notification={"endpoint": {"uri": "ftp://x/y"}}), "http://, https:// or mqtt://"),
    (body(notification={"endpoint": {"uri": "receiver"}}), "http://, https:// or mqtt://"),
    (body(notification={"endpoint": {"uri": "mqtt://broker:1883"}}), "names its topic"),
    (body(notification={"endpoint": {"uri": "http://x:99999/"}}), "out of range"),
    (
        body(notification={"endpoint": {**ENDPOINT, "accept": "text/plain"}}),
        "accept must be one of",
    ),
    (
        body(notification={"endpoint": {**ENDPOINT, "receiverInfo": [{"key": "a"}]}}),
        r"receiverInfo\[0\] must be an object",
    ),
    (
        body(
            notification={"endpoint": {**ENDPOINT, "receiverInfo": [{"key": "Link", "value": "x"}]}}
        ),
        "cannot be sent as a header",
    ),
    (
        body(
            notification={
                "endpoint": {**ENDPOINT, "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}]}
            }
        ),
        "MQTT-QoS must be 0, 1 or 2",
    ),
    (body(csf="x"), "'csf' is not supported"),
    (body(notification=notification(join="flat")), "'join' is not supported"),
    (body(colour="red"), "unknown member 'colour' in the subscription"),
    (body(jsonldContext="urn:x"), "jsonldContext must be an http"),
]


@pytest.mark.parametrize(("document", "message"), INVALID)
def test_an_invalid_body_is_bad_request_data_naming_the_member(document, message):
    with pytest.raises(NgsiError, match=message) as raised:
        parse(document)
    assert raised.value.error_type is ErrorType.BAD_REQUEST_DATA


def test_a_body_that_is_no_object_is_refused():
    with pytest.raises(NgsiError, match="must be a JSON object"):
        parse([body()])


def test_defaults_and_expanded_names():
    subscription = parse(body())
    assert subscription.id.startswith("urn:ngsi-ld:Subscription:")
    assert subscription.tenant == "tenant-a"
    assert subscription.entities[0].types == TypeName(DEFAULT + "AirQualityObserved")
    assert subscription.watched_attributes == {DEFAULT + "pm25"}
    assert subscription.notification_trigger == {"attributeCreated", "attributeUpdated"}
    assert (subscription.format, subscription.show_changes, subscription.sys_attrs) == (
        "normalized",
        False,
        False,
    )
    assert subscription.endpoint.accept == "application/json"
    assert subscription.is_active and subscription.expires_at is None
    assert subscription.attributes is None and subscription.q is None


def test_a_given_id_is_kept_and_each_minted_one_differs():
    assert parse(body(id="urn:ngsi-ld:Subscription:mine")).id == "urn:ngsi-ld:Subscription:mine"
    assert parse(body()).id != parse(body()).id


def test_members_in_the_stored_form():
    subscription = parse(
        body(
            entities=[{"type": "AirQualityObserved|Device", "idPattern": "^urn:.*gent"}],
            watchedAttributes=None,
            timeInterval=30,
            q='pm25>25;name=="Gent"',
            geoQ={"georel": "within", "geometry": "Polygon", "coordinates": SQUARE},
            notificationTrigger=["entityUpdated", "entityDeleted"],
            expiresAt="2026-03-02T12:00:00+01:00",
            notification=notification(
                attributes=["pm25", "pm25"], format="simplified", sysAttrs=True
            ),
        ),
        ENV,
    )
    assert subscription.entities[0].types == AnyOf(
        (TypeName(SDM + "AirQualityObserved"), TypeName(DEFAULT + "Device"))
    )
    assert subscription.entities[0].id_pattern == "^urn:.*gent"
    assert subscription.time_interval == 30.0
    assert subscription.q is not None and subscription.q.terms[0].path.attribute == SDM + "pm25"
    assert subscription.geo_q is not None and subscription.geo_q.geoproperty == (
        "https://uri.etsi.org/ngsi-ld/location"
    )
    assert subscription.triggers == {
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
        "entityDeleted",
    }
    assert subscription.expires_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert subscription.attributes == {SDM + "pm25"}
    assert subscription.format == "keyValues" and subscription.sys_attrs
    assert subscription.document["qTerms"] == {"pm25": SDM + "pm25", "name": ENV.expand("name")}


SQUARE = [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]]


def test_render_compacts_with_the_readers_context_and_gives_the_status_members():
    subscription = parse(
        body(
            q="pm25>25",
            notification=notification(
                attributes=["pm25"],
                endpoint={
                    **ENDPOINT,
                    "receiverInfo": [{"key": "Authorization", "value": "Bearer x"}],
                },
            ),
        ),
        ENV,
    )
    rendered = render_subscription(subscription, ENV, now=NOW)
    assert rendered["entities"] == [{"type": "AirQualityObserved"}]
    assert rendered["watchedAttributes"] == ["pm25"]
    assert rendered["q"] == "pm25>25"
    assert rendered["status"] == "active"
    assert rendered["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert rendered["notification"] == {
        "attributes": ["pm25"],
        "format": "normalized",
        "showChanges": False,
        "sysAttrs": False,
        "endpoint": {
            "uri": ENDPOINT["uri"],
            "accept": "application/json",
            "receiverInfo": [{"key": "Authorization", "value": "Bearer x"}],
        },
        "timesSent": 0,
        "timesFailed": 0,
    }
    in_core = render_subscription(subscription, CORE, now=NOW)
    assert in_core["watchedAttributes"] == [SDM + "pm25"]
    assert "createdAt" not in in_core


def test_render_of_delivery_status():
    sent = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    failed = DeliveryStatus(3, 1, sent, sent - timedelta(hours=1), sent, "HTTP 500")
    subscription = replace(parse(body()), delivery=failed)
    rendered = render_subscription(subscription, CORE, now=NOW)["notification"]
    assert rendered["status"] == "failed"
    assert (rendered["timesSent"], rendered["timesFailed"]) == (3, 1)
    assert rendered["lastNotification"] == rendered["lastFailure"] == "2026-03-01T10:00:00.000000Z"
    assert rendered["lastSuccess"] == "2026-03-01T09:00:00.000000Z"
    assert rendered["lastFailureReason"] == "HTTP 500"
    recovered = replace(failed, last_success=sent + timedelta(seconds=1))
    ok = render_subscription(replace(subscription, delivery=recovered), CORE, now=NOW)
    assert ok["notification"]["status"] == "ok" and "lastFailureReason" not in ok["notification"]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({}, "active"),
        ({"isActive": False}, "paused"),
        ({"expiresAt": "2026-03-01T13:00:00Z"}, "active"),
    ],
)
def test_status(members, expected):
    assert status_of(parse(body(**members)), NOW) == expected


def test_status_expired_once_expires_at_has_passed():
    subscription = parse(body(expiresAt="2026-03-01T13:00:00Z"))
    assert status_of(subscription, NOW + timedelta(hours=1)) == "expired"


def test_the_context_survives_as_its_term_table():
    table = context_terms(ENV)
    rebuilt = context_from_terms(ENV.source, table)
    for term in ("pm25", "AirQualityObserved", "location", "Device", "ngsi-ld:name"):
        assert rebuilt.expand(term) == ENV.expand(term)
        assert rebuilt.compact(ENV.expand(term)) == ENV.compact(ENV.expand(term))
    assert rebuilt.source == ENVIRONMENT


def test_a_stored_document_rebuilds_the_same_subscription():
    subscription = parse(body(q="pm25>3", throttling=10), ENV)
    again = subscription_from_document("tenant-a", subscription.document, ENV)
    assert again == subscription


UPDATES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"isActive": False}, {"is_active": False}),
    ({"throttling": 30}, {"throttling": 30.0}),
    ({"notification": {"format": "concise"}}, {"format": "concise"}),
    ({"watchedAttributes": "urn:ngsi-ld:null"}, {"watched_attributes": None}),
    ({"notificationTrigger": ["entityDeleted"]}, {"notification_trigger": {"entityDeleted"}}),
]


@pytest.mark.parametrize(("fragment", "changed"), UPDATES)
def test_an_update_replaces_the_members_given(fragment, changed):
    current = parse(body(throttling=5))
    updated = update_subscription(current, fragment, CORE, now=NOW)
    for name, value in changed.items():
        assert getattr(updated, name) == value
    assert updated.endpoint == current.endpoint and updated.id == current.id


def test_an_update_of_notification_keeps_the_members_not_given():
    current = parse(body(notification=notification(attributes=["pm25"], format="concise")))
    updated = update_subscription(current, {"notification": {"sysAttrs": True}}, CORE, now=NOW)
    assert (updated.format, updated.sys_attrs) == ("concise", True)
    assert updated.attributes == {DEFAULT + "pm25"}


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"id": "urn:ngsi-ld:Subscription:other"}, "id cannot change"),
        ({"type": "Entity"}, "type cannot change"),
        ({"watchedAttributes": "urn:ngsi-ld:null", "entities": "urn:ngsi-ld:null"}, "needs"),
        ({"timeInterval": 10}, "timeInterval and watchedAttributes"),
        ({"notification": {"format": "keyValues", "showChanges": True}}, "showChanges"),
        ({"notification": "urn:ngsi-ld:null"}, "notification must be an object"),
    ],
)
def test_an_update_is_checked_whole(fragment, message):
    with pytest.raises(NgsiError, match=message):
        update_subscription(parse(body()), fragment, CORE, now=NOW)


def test_an_update_without_a_context_keeps_the_subscriptions_context():
    current = parse(body(), ENV)
    updated = update_subscription(current, {"isActive": False}, CORE, now=NOW)
    assert updated.context is ENV
    assert update_subscription(current, {"isActive": False}, ENV, now=NOW).context is ENV


def test_q_keeps_the_meaning_it_had_when_it_was_set():
    current = parse(body(q="pm25>3"), ENV)
    updated = update_subscription(current, {"isActive": True}, CORE, now=NOW)
    assert updated.q == current.q
    assert update_subscription(current, {"q": "pm25>3"}, CORE, now=NOW).q != current.q
