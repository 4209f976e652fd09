"""Subscription bodies → the stored form (ETSI GS CIM 009 v1.8, 5.2.12, 5.2.14, 5.2.15).

`read_document` checks a body of POST /subscriptions (or, `partial`, a fragment of PATCH) and
returns the stored document (docs/subscriptions.md): the members as given, entity types,
watchedAttributes, notification attributes and geoQ.geoproperty expanded to IRIs, `q` as
written, format `simplified` spelled `keyValues`, timestamps in the stored UTC form. Every
mistake is BadRequestData with a detail that names the member (5.8.1: "If the data types
and restrictions expressed by clause 5.2.12 are not met ... BadRequestData").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ngsi.entity_input import check_name, is_uri, parse_datetime
from ngsi.errors import ErrorType, NgsiError, bad_request
from ngsi.geo import parse_geo_query
from ngsi.qast import And, Or, QExpression
from ngsi.qlang import parse_q
from ngsi.typeselect import AnyOf, TypeName, TypeSelection, parse_type_selection, type_names

#: NotificationTrigger values (5.2.12, v1.8); entityUpdated stands for the three attribute ones.
TRIGGERS = frozenset(
    {
        "entityCreated",
        "entityUpdated",
        "entityDeleted",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    }
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
FORMATS = ("normalized", "concise", "keyValues")
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
SCHEMES = ("http", "https", "mqtt")
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
NGSI_LD_NULL = "urn:ngsi-ld:null"

_TOP_MEMBERS = frozenset(
    {
        "id",
        "type",
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "notificationTrigger",
        "timeInterval",
        "q",
        "geoQ",
        "isActive",
        "notification",
        "expiresAt",
        "throttling",
        "lang",
        "jsonldContext",
    }
)
#: Read-only members a client may send back from a GET; they are ignored.
_READ_ONLY = frozenset({"@context", "status", "createdAt", "modifiedAt"})
_NOTIFICATION_MEMBERS = frozenset({"attributes", "format", "showChanges", "sysAttrs", "endpoint"})
_NOTIFICATION_STATUS = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
    | {"lastFailureReason"}
)
_ENDPOINT_MEMBERS = frozenset({"uri", "accept", "receiverInfo", "notifierInfo"})
#: Members of the spec this service does not offer (yet): refused, not silently dropped.
_NOT_SUPPORTED = frozenset({"csf", "temporalQ", "scopeQ", "datasetId"})
_NOT_SUPPORTED_NOTIFICATION = frozenset({"join", "joinLevel", "pick", "omit", "timeout"})
_NOT_SUPPORTED_NOTIFICATION |= {"cooldown", "showChangesInAttributes"}
#: An HTTP header name (RFC 9110 token); receiverInfo keys become headers.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the notification itself sets; receiverInfo may not override them.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "link", "host", "ngsild-tenant"})
MAX_TEXT = 2048


def _not_supported(member: str) -> NgsiError:
    return bad_request(f"subscription member {member!r} is not supported by this service")


def _check_members(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for member in body:
        if member in allowed or member in _READ_ONLY:
            continue
        if member in _NOT_SUPPORTED or member in _NOT_SUPPORTED_NOTIFICATION:
            raise _not_supported(member)
        raise bad_request(f"unknown member {member!r} in {where}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > MAX_TEXT:
        raise bad_request(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"{what} must be true or false, not {value!r}")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{what} must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise bad_request(f"{what} must be a number of seconds greater than 0, not {value!r}")
    return float(value)


def _names(value: Any, what: str, expand: Callable[[str], str]) -> list[str]:
    if not isinstance(value, list) or not value:
        raise bad_request(f"{what} must be a non-empty array of attribute names")
    names = [expand(check_name(name, f"an item of {what}")) for name in value]
    return list(dict.fromkeys(names))


def expanded_selection(selection: TypeSelection, expand: Callable[[str], str]) -> str:
    """A type selection as text, every name passed through `expand` (or a compact function)."""
    if isinstance(selection, TypeName):
        return expand(selection.name)
    if isinstance(selection, AnyOf):
        parts, joiner = selection.alternatives, "|"
    else:
        parts, joiner = selection.parts, ";"
    texts = [
        expanded_selection(part, expand)
        if isinstance(part, TypeName)
        else f"({expanded_selection(part, expand)})"
        for part in parts
    ]
    return joiner.join(texts)


def _entity_selector(value: Any, index: int, expand: Callable[[str], str]) -> dict[str, Any]:
    where = f"entities[{index}]"
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object with type and optionally id or idPattern")
    _check_members(value, frozenset({"type", "id", "idPattern"}), where)
    if "type" not in value:
        raise bad_request(f"{where} needs a type (5.2.33: type is mandatory in an EntitySelector)")
    text = _text(value["type"], f"{where}.type")
    try:
        selection = parse_type_selection(text)
    except NgsiError as error:
        raise bad_request(f"{where}.type: {error.detail}") from None
    for name in type_names(selection):
        check_name(name, f"{where}.type")
    selector: dict[str, Any] = {"type": expanded_selection(selection, expand)}
    if "id" in value:
        if not is_uri(value["id"]):
            raise bad_request(f"{where}.id must be a URI, not {value['id']!r}")
        selector["id"] = value["id"]
    if "idPattern" in value:
        pattern = _text(value["idPattern"], f"{where}.idPattern")
        try:
            re.compile(pattern)
        except re.error as error:
            raise bad_request(f"{where}.idPattern is not a regular expression: {error}") from None
        selector["idPattern"] = pattern
    return selector


def _key_values(value: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise bad_request(f"{what} must be an array of {{key, value}} objects")
    pairs = []
    for index, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or set(item) != {"key", "value"}
            or not isinstance(item["key"], str)
            or not isinstance(item["value"], str)
        ):
            raise bad_request(f"{what}[{index}] must be an object {{key, value}} of two strings")
        pairs.append({"key": item["key"], "value": item["value"]})
    return pairs


def _endpoint(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("notification.endpoint must be an object with a uri")
    _check_members(value, _ENDPOINT_MEMBERS, "notification.endpoint")
    uri = _text(value.get("uri"), "notification.endpoint.uri")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise bad_request(
            f"notification.endpoint.uri must be an http://, https:// or mqtt:// URI with a host,"
            f" not {uri!r}"
        )
    if parts.scheme.lower() == "mqtt" and not parts.path.strip("/"):
        raise bad_request(f"an mqtt:// endpoint names its topic as the path: {uri!r} has none")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise bad_request(f"notification.endpoint.uri {uri!r}: {error}") from None
    endpoint: dict[str, Any] = {"uri": uri, "accept": value.get("accept", ACCEPTS[0])}
    if endpoint["accept"] not in ACCEPTS:
        raise bad_request(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    if "receiverInfo" in value:
        pairs = _key_values(value["receiverInfo"], "notification.endpoint.receiverInfo")
        for pair in pairs:
            if not _HEADER_NAME.fullmatch(pair["key"]) or pair["key"].lower() in _RESERVED_HEADERS:
                raise bad_request(
                    f"receiverInfo key {pair['key']!r} cannot be sent as a header of its own"
                )
            if any(ord(c) < 32 and c != "\t" for c in pair["value"]):
                raise bad_request(f"receiverInfo value of {pair['key']!r} has control characters")
        endpoint["receiverInfo"] = pairs
    if "notifierInfo" in value:
        pairs = _key_values(value["notifierInfo"], "notification.endpoint.notifierInfo")
        for pair in pairs:
            _check_notifier_info(pair["key"], pair["value"])
        endpoint["notifierInfo"] = pairs
    return endpoint


def _check_notifier_info(key: str, value: str) -> None:
    """The MQTT binding's notifierInfo keys (clause 7.2) must hold values it knows."""
    if key == "MQTT-Version" and value not in MQTT_VERSIONS:
        raise bad_request(f"notifierInfo MQTT-Version must be one of {', '.join(MQTT_VERSIONS)}")
    if key == "MQTT-QoS" and value not in ("0", "1", "2"):
        raise bad_request("notifierInfo MQTT-QoS must be 0, 1 or 2")


def _notification(
    value: Any, expand: Callable[[str], str], stored: dict[str, Any] | None
) -> dict[str, Any]:
    """NotificationParams; with `stored` (an update) the given members replace those stored."""
    if not isinstance(value, dict):
        raise bad_request("notification must be an object with an endpoint")
    _check_members(value, _NOTIFICATION_MEMBERS | _NOTIFICATION_STATUS, "notification")
    result = dict(stored or {})
    for member in _NOTIFICATION_MEMBERS & set(value):
        if value[member] == NGSI_LD_NULL and member != "endpoint":
            result.pop(member, None)  # 5.2.1: the NGSI-LD Null removes a member in an update
            continue
        if member == "attributes":
            result[member] = _names(value[member], "notification.attributes", expand)
        elif member == "format":
            format_name = "keyValues" if value[member] == "simplified" else value[member]
            if format_name not in FORMATS:
                raise bad_request(
                    "notification.format must be normalized, concise, keyValues or simplified"
                )
            result[member] = format_name
        elif member == "endpoint":
            result[member] = _endpoint(value[member])
        else:
            result[member] = _boolean(value[member], f"notification.{member}")
    if "endpoint" not in result:
        raise bad_request("notification.endpoint is mandatory (5.2.14)")
    if result.get("showChanges") and result.get("format") == "keyValues":
        raise bad_request("notification.showChanges cannot be true with format keyValues (5.2.14)")
    return result


def _geo_query(value: Any, expand: Callable[[str], str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("geoQ must be an object with geometry, coordinates and georel")
    allowed = frozenset({"geometry", "coordinates", "georel", "geoproperty"})
    _check_members(value, allowed, "geoQ")
    coordinates = value.get("coordinates")
    parse_geo_query(
        value.get("georel"), value.get("geometry"), coordinates, value.get("geoproperty")
    )
    stored = {name: value[name] for name in ("geometry", "coordinates", "georel") if name in value}
    stored["geoproperty"] = expand(value.get("geoproperty", "location"))
    return stored


def _check_q(value: Any) -> QExpression:
    text = _text(value, "q")
    try:
        return parse_q(text)
    except NgsiError as error:
        if error.error_type is ErrorType.TOO_COMPLEX_QUERY:
            raise
        raise bad_request(error.detail) from None


def q_terms(expression: QExpression) -> set[str]:
    """The attribute and sub-attribute names a q expression mentions, as written."""
    if isinstance(expression, And | Or):
        return {name for term in expression.terms for name in q_terms(term)}
    path = expression.path
    return {path.attribute, *path.sub_attributes}


def _expires_at(value: Any, now: datetime) -> str:
    stored = parse_datetime(value, "expiresAt")
    moment = datetime.strptime(stored, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if moment <= now:
        raise bad_request(f"expiresAt {value!r} is not in the future")
    return stored


def _triggers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise bad_request(f"notificationTrigger must be a non-empty array of {sorted(TRIGGERS)}")
    unknown = [item for item in value if item not in TRIGGERS]
    if unknown:
        raise bad_request(
            f"unknown notificationTrigger {unknown[0]!r}: expected some of {sorted(TRIGGERS)}"
        )
    return list(dict.fromkeys(value))


def read_document(
    body: Any,
    expand: Callable[[str], str],
    now: datetime,
    *,
    stored: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored document of a subscription body; with `stored`, that document updated by
    the fragment `body` (5.8.2: the members given replace the stored ones, `notification`
    member by member, and `urn:ngsi-ld:null` removes an optional member)."""
    if not isinstance(body, dict):
        raise bad_request("a subscription must be a JSON object")
    _check_members(body, _TOP_MEMBERS, "the subscription")
    if stored is None and body.get("type") != "Subscription":
        raise bad_request(f"a subscription's type must be 'Subscription', not {body.get('type')!r}")
    if stored is not None and body.get("type", "Subscription") != "Subscription":
        raise bad_request(f"a subscription's type cannot change to {body['type']!r}")
    document: dict[str, Any] = dict(stored or {"type": "Subscription"})
    for member, value in body.items():
        if member in _READ_ONLY or member in ("id", "type"):
            continue
        if value == NGSI_LD_NULL and member != "notification":
            document.pop(member, None)
            if member == "q":
                document.pop("qTerms", None)
            continue
        if member == "q":
            # q is kept as written, with what its names meant in this request's @context
            # (a later update may bring another context, or jsonldContext compacts).
            names = q_terms(_check_q(value))
            document["q"] = value
            document["qTerms"] = {name: expand(name) for name in sorted(names)}
            continue
        document[member] = _member(member, value, expand, now, document.get(member))
    if "id" in body:
        if not is_uri(body["id"]):
            raise bad_request(f"a subscription id must be a URI, not {body['id']!r}")
        if stored is not None and body["id"] != stored.get("id"):
            raise bad_request("a subscription's id cannot change")
        document["id"] = body["id"]
    _check_whole(document)
    return document


def _member(
    member: str, value: Any, expand: Callable[[str], str], now: datetime, stored: Any
) -> Any:
    """One top-level member in the stored form."""
    if member == "entities":
        if not isinstance(value, list) or not value:
            raise bad_request("entities must be a non-empty array of EntitySelectors")
        return [_entity_selector(item, index, expand) for index, item in enumerate(value)]
    if member == "watchedAttributes":
        return _names(value, "watchedAttributes", expand)
    if member == "notificationTrigger":
        return _triggers(value)
    if member in ("timeInterval", "throttling"):
        return _seconds(value, member)
    if member == "geoQ":
        return _geo_query(value, expand)
    if member == "isActive":
        return _boolean(value, member)
    if member == "notification":
        return _notification(value, expand, stored)
    if member == "expiresAt":
        return _expires_at(value, now)
    if member == "jsonldContext":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise bad_request(f"jsonldContext must be an http(s) URL, not {value!r}")
        return value
    return _text(value, member)  # subscriptionName, description, lang


def _check_whole(document: dict[str, Any]) -> None:
    """The rules of 5.2.12 that tie members together."""
    if "notification" not in document:
        raise bad_request("notification is mandatory in a subscription (5.2.12)")
    periodic = "timeInterval" in document
    if periodic and "watchedAttributes" in document:
        raise bad_request("timeInterval and watchedAttributes cannot both be given (5.2.12)")
    if periodic and "throttling" in document:
        raise bad_request("timeInterval and throttling cannot both be given (5.2.12)")
    if "entities" not in document and "watchedAttributes" not in document:
        raise bad_request("a subscription needs entities or watchedAttributes (5.2.12)")
