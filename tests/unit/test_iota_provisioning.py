"""IoT Agent provisioning payloads ⇄ DeviceGroup / DeviceConfig, and errors naming their place."""

from __future__ import annotations

import pytest

from devices.iota_provisioning import (
    ProvisioningError,
    device_to_iota,
    device_update,
    group_to_iota,
    group_update,
    parse_devices,
    parse_groups,
)
from devices.model import AttributeMapping
from devices.registry import DeviceRegistry

APIKEY = "4jggokgpepnvsb2uv4s40d59ov"
# The config group of the FIWARE "IoT over MQTT" tutorial, with a unit code added.
GROUP_BODY = {
    "services": [
        {
            "apikey": APIKEY,
            "cbroker": "http://orion:1026",
            "entity_type": "AirQualityObserved",
            "resource": "/iot/json",
            "attributes": [
                {
                    "object_id": "n",
                    "name": "no2",
                    "type": "Number",
                    "metadata": {"unitCode": {"type": "Text", "value": "GQ"}},
                }
            ],
            "static_attributes": [
                {"name": "location", "type": "geo:point", "value": "51.0543, 3.7174"},
                {"name": "owner", "type": "Text", "value": "Stad Gent"},
            ],
            "lazy": [{"name": "status", "type": "Boolean"}],
            "commands": [{"name": "ring", "type": "command"}],
        }
    ]
}
# The device of the iotagent-node-lib "Device API" example.
DEVICE_BODY = {
    "devices": [
        {
            "device_id": "DevID1",
            "entity_name": "urn:ngsi-ld:Device:TheDevice1",
            "entity_type": "Device",
            "protocol": "PDI-IoTA-JSON",
            "transport": "MQTT",
            "attributes": [
                {"object_id": "t", "name": "temperature", "type": "Float"},
                {"object_id": "h", "name": "humidity", "type": "Float"},
            ],
            "static_attributes": [{"name": "serialID", "value": "02598347", "type": "Text"}],
        }
    ]
}


def test_group_maps_apikey_type_units_statics_and_location():
    (group,) = parse_groups(GROUP_BODY, "gent")
    assert (group.name, group.profile, group.key_prefix) == (
        f"iota-{APIKEY}",
        "iotagent-json",
        f"{APIKEY}/",
    )
    assert (group.tenant, group.entity_type, group.apikey) == ("gent", "AirQualityObserved", APIKEY)
    assert group.attributes == {"n": AttributeMapping("n", "no2", "GQ", "Number")}
    assert group.location == (3.7174, 51.0543)
    assert dict(group.static_attributes) == {"owner": "Stad Gent"}
    assert group.autoprovision is True  # the IoT Agent's default


def test_group_round_trips_through_the_iot_agent_shape():
    (group,) = parse_groups(GROUP_BODY, "gent")
    (again,) = parse_groups({"groups": [group_to_iota(group)]}, "gent")
    assert again == group


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "expected a 'groups' or 'services' array"),
        ({"services": []}, r"body.services: the array is empty"),
        ({"services": [{"entity_type": "X"}]}, r"services\[0\].apikey: missing"),
        ({"groups": [{"apikey": "a/b"}]}, r"groups\[0\].apikey: 'a/b' must not contain"),
        (
            {"services": [{"apikey": "k", "attributes": [{"object_id": "t"}]}]},
            r"services\[0\].attributes\[0\].name: missing",
        ),
        (
            {"services": [{"apikey": "k", "attributes": [{"name": "id", "type": "Text"}]}]},
            r"services\[0\].attributes\[0\].name: 'id' is not a valid attribute name",
        ),
        (
            {"services": [{"apikey": "k", "attributes": [{"name": "a"}, {"name": "a"}]}]},
            r"services\[0\].attributes\[1\].object_id: 'a' mapped twice",
        ),
        (
            {
                "services": [
                    {
                        "apikey": "k",
                        "attributes": [{"name": "a", "metadata": {"unitCode": {"value": 3}}}],
                    }
                ]
            },
            r"attributes\[0\].metadata.unitCode: expected a UN/CEFACT code",
        ),
        (
            {
                "services": [
                    {
                        "apikey": "k",
                        "static_attributes": [
                            {"name": "location", "type": "geo:point", "value": "151.0, 3.7"}
                        ],
                    }
                ]
            },
            r"static_attributes\[0\].value: latitude 151.0, longitude 3.7",
        ),
        ({"services": [{"apikey": "k", "autoprovision": "maybe"}]}, "autoprovision: expected"),
        ({"services": [{"apikey": "k"}, {"apikey": "k"}]}, r"services\[1\].apikey: 'k' is given"),
    ],
)
def test_invalid_groups_name_item_and_field(body, message):
    with pytest.raises(ProvisioningError, match=message):
        parse_groups(body, "")


def test_device_of_the_iot_agent_docs():
    (group,) = parse_groups(GROUP_BODY, "gent")
    ((key, device),) = parse_devices(DEVICE_BODY, "gent", [group])
    assert key == f"{APIKEY}/DevID1"  # the service's only group gives the apikey
    assert (device.device_id, device.model, device.tenant) == ("DevID1", group.name, "gent")
    assert (device.entity_type, device.entity_name) == ("Device", "TheDevice1")
    assert device.attributes["t"] == AttributeMapping("t", "temperature", None, "Float")
    assert dict(device.static_attributes) == {"serialID": "02598347"}
    shown = device_to_iota(key, device, group)
    assert shown["entity_name"] == "urn:ngsi-ld:Device:TheDevice1"
    assert (shown["apikey"], shown["service"], shown["service_path"]) == (APIKEY, "gent", "/")


def test_registry_merges_a_provisioned_device_with_its_group():
    (group,) = parse_groups(GROUP_BODY, "gent")
    devices = parse_devices(DEVICE_BODY, "gent", [group])
    resolved = DeviceRegistry(devices, [group]).resolve("iotagent-json", f"{APIKEY}/DevID1")
    assert resolved is not None
    assert set(resolved.attributes) == {"n", "t", "h"}
    assert resolved.location == (3.7174, 51.0543)


@pytest.mark.parametrize(
    ("device", "groups", "message"),
    [
        ({"entity_type": "X"}, 1, r"devices\[0\].device_id: missing"),
        ({"device_id": "d"}, 0, r"devices\[0\].apikey: missing, and the service has 0"),
        ({"device_id": "d", "protocol": "PDI-IoTA-UltraLight"}, 1, "protocol: 'PDI-IoTA-Ultra"),
        ({"device_id": "d", "apikey": "other-tenants"}, 1, "belongs to another service"),
        (
            {"device_id": "d", "entity_type": "A", "entity_name": "urn:ngsi-ld:B:1"},
            1,
            "entity_name: 'urn:ngsi-ld:B:1' is not of entity_type 'A'",
        ),
        ({"device_id": "d", "attributes": {"t": 1}}, 1, r"devices\[0\].attributes: expected an"),
    ],
)
def test_invalid_devices_name_item_and_field(device, groups, message):
    (own,) = parse_groups({"groups": [{"apikey": "own"}]}, "gent")
    (foreign,) = parse_groups({"groups": [{"apikey": "other-tenants"}]}, "leuven")
    known = [own, foreign] if groups else [foreign]
    with pytest.raises(ProvisioningError, match=message):
        parse_devices({"devices": [device]}, "gent", known)


@pytest.mark.parametrize(
    ("entity_type", "entity_name", "expected"),
    [
        (None, "urn:ngsi-ld:Thing:x1", ("Thing", "x1")),
        ("Thing", "Thing:x1", ("Thing", "x1")),  # NGSI-v2 style default name
        ("Thing", "plain", ("Thing", "plain")),
        (None, None, (None, None)),
    ],
)
def test_entity_name_may_be_a_full_entity_id(entity_type, entity_name, expected):
    item = {"device_id": "d", "apikey": "k", "entity_type": entity_type, "entity_name": entity_name}
    ((_, device),) = parse_devices({"devices": [item]}, "", [])
    assert (device.entity_type, device.entity_name) == expected


def test_device_update_keeps_id_and_key_and_replaces_mappings():
    ((key, device),) = parse_devices(
        {"devices": [{"device_id": "d", "apikey": "k", "attributes": [{"name": "a"}]}]}, "", []
    )
    updated = device_update(
        key, device, {"attributes": [{"object_id": "p", "name": "pressure"}]}, []
    )
    assert set(updated.attributes) == {"p"}
    assert (updated.device_id, updated.apikey) == ("d", "k")
    with pytest.raises(ProvisioningError, match="apikey cannot be changed"):
        device_update(key, device, {"apikey": "other"}, [])


def test_group_update_changes_only_what_is_given():
    (group,) = parse_groups(GROUP_BODY, "gent")
    updated = group_update(group, {"type": "WeatherObserved", "autoprovision": False})
    assert (updated.entity_type, updated.autoprovision) == ("WeatherObserved", False)
    assert updated.attributes == group.attributes and updated.location == group.location
