"""DeviceRegistry resolution (exact device merged with its group, autoprovisioning) and the
routing of MQTT topics to profiles."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from paho.mqtt.client import topic_matches_sub

from devices.model import AttributeMapping, DeviceConfig, DeviceGroup
from devices.profiles.registry import PROFILES, default_topic_filters, profile_for_topic
from devices.registry import DeviceRegistry

PM25 = AttributeMapping("pm2_5", "pm25", "GQ")
PM10 = AttributeMapping("pm10", "pm10", "GQ")
PM10_SCALED = AttributeMapping("pm10", "pm10", "GQ", scale=0.1)
BATTERY = AttributeMapping("bat", "batteryVoltage", "VLT", scale=0.001)

AIR = DeviceGroup(
    name="dl-pm",
    profile="ttn-v3",
    key_prefix="city-air/",
    tenant="gent",
    entity_type="AirQualityObserved",
    attributes=MappingProxyType({"pm2_5": PM25, "pm10": PM10}),
    static_attributes=MappingProxyType({"owner": "Stad Gent", "typeOfLocation": "outdoor"}),
    location=(3.72, 51.05),
    apikey="group-key",
    autoprovision=True,
)
AIR_PILOT = DeviceGroup(
    name="dl-pm-pilot",
    profile="ttn-v3",
    key_prefix="city-air/pilot-",
    entity_type="AirQualityObserved",
    autoprovision=True,
)
CLOSED = DeviceGroup(name="closed", profile="ttn-v3", key_prefix="closed/")
EVERYTHING = DeviceGroup(
    name="any-json", profile="iotagent-json", key_prefix="", entity_type="Thing", autoprovision=True
)
REGISTERED = DeviceConfig(
    device_id="dl-pm-001",
    profile="ttn-v3",
    model="dl-pm",
    location=(3.7174, 51.0543),
    attributes=MappingProxyType({"pm10": PM10_SCALED, "bat": BATTERY}),
    static_attributes=MappingProxyType({"owner": "Universiteit Gent"}),
)
LONE = DeviceConfig(device_id="chip-1", profile="sensor-community")
GROUPS = (AIR, AIR_PILOT, CLOSED, EVERYTHING)
REGISTRY = DeviceRegistry(
    [("city-air/dl-pm-001", REGISTERED), ("12331981", LONE)],
    GROUPS,
)


def test_registered_device_is_merged_with_its_group() -> None:
    device = REGISTRY.resolve("ttn-v3", "city-air/dl-pm-001")
    assert device is not None
    assert device.device_id == "dl-pm-001"
    assert device.tenant == "gent"
    assert device.entity_type == "AirQualityObserved"
    assert device.location == (3.7174, 51.0543)
    assert device.apikey == "group-key"
    assert dict(device.attributes) == {"pm2_5": PM25, "pm10": PM10_SCALED, "bat": BATTERY}
    assert dict(device.static_attributes) == {
        "owner": "Universiteit Gent",
        "typeOfLocation": "outdoor",
    }


def test_registered_device_without_group_is_returned_as_given() -> None:
    assert REGISTRY.resolve("sensor-community", "12331981") is LONE


@pytest.mark.parametrize(
    ("profile", "key", "group", "device_id"),
    [
        ("ttn-v3", "city-air/dl-pm-002", "dl-pm", "dl-pm-002"),
        ("ttn-v3", "city-air/pilot-7", "dl-pm-pilot", "7"),
        ("ttn-v3", "city-air/pilot-", "dl-pm", "pilot-"),
        ("iotagent-json", "4jggokgpepnvsb2uv4s40d59ov/sensor01", "any-json", None),
    ],
)
def test_autoprovisioning_takes_the_longest_matching_prefix(
    profile: str, key: str, group: str, device_id: str | None
) -> None:
    device = REGISTRY.resolve(profile, key)
    assert device is not None
    assert device.model == group
    assert device.profile == profile
    assert device.device_id == (device_id or key)


def test_autoprovisioned_device_has_the_group_settings() -> None:
    device = REGISTRY.resolve("ttn-v3", "city-air/dl-pm-009")
    assert device == DeviceConfig(
        device_id="dl-pm-009",
        profile="ttn-v3",
        tenant="gent",
        model="dl-pm",
        entity_type="AirQualityObserved",
        location=(3.72, 51.05),
        attributes=AIR.attributes,
        static_attributes=AIR.static_attributes,
        apikey="group-key",
    )
    assert REGISTRY.resolve("ttn-v3", "city-air/dl-pm-009") is device


@pytest.mark.parametrize(
    ("profile", "key"),
    [
        ("ttn-v3", "closed/dev1"),
        ("ttn-v3", "city-air/"),
        ("ttn-v3", "other-app/dev1"),
        ("sensor-community", "city-air/dl-pm-002"),
        ("sensor-community", "99999"),
        ("telraam", "348917"),
        ("no-such-profile", "city-air/dl-pm-001"),
    ],
)
def test_unknown_devices_resolve_to_none(profile: str, key: str) -> None:
    assert REGISTRY.resolve(profile, key) is None


def test_the_same_key_under_two_profiles_is_two_devices() -> None:
    telraam = DeviceConfig(device_id="t-1", profile="telraam")
    loop = DeviceConfig(device_id="l-1", profile="traffic-loop")
    registry = DeviceRegistry([("1", telraam), ("1", loop)], [])
    assert registry.resolve("telraam", "1") is telraam
    assert registry.resolve("traffic-loop", "1") is loop
    assert len(registry) == 2


@pytest.mark.parametrize(
    ("devices", "groups", "message"),
    [
        ([("k", DeviceConfig("d", "ttn-v3", model="nope"))], [], "unknown device group 'nope'"),
        ([("k", DeviceConfig("d", "telraam", model="dl-pm"))], [AIR], "of profile ttn-v3"),
        ([("k", LONE), ("k", LONE)], [], "registered twice"),
        ([], [AIR, AIR], "defined twice"),
    ],
)
def test_inconsistent_registrations_are_refused(devices: list, groups: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeviceRegistry(devices, groups)


@pytest.mark.parametrize(
    ("topic", "profile", "key"),
    [
        ("v3/app1@ttn/devices/dev1/up", "ttn-v3", "app1/dev1"),
        ("sensor-community/12331981", "sensor-community", "12331981"),
        ("telraam/348917/traffic", "telraam", "348917"),
        ("traffic-loop/lve-55", "traffic-loop", "lve-55"),
        ("/json/key/dev/attrs", "iotagent-json", "key/dev"),
        ("/key/dev/attrs/t", "iotagent-json", "key/dev"),
    ],
)
def test_topics_route_to_their_profile(topic: str, profile: str, key: str) -> None:
    routed = profile_for_topic(topic)
    assert routed is not None
    assert (routed[0].name, routed[1]) == (profile, key)
    assert routed[0] is PROFILES[profile]


@pytest.mark.parametrize(
    "topic",
    ["v3/app1/devices/dev1/down/push", "sensor-community", "telraam/1/counts", "/json/k/d/cmd", ""],
)
def test_foreign_topics_route_nowhere(topic: str) -> None:
    assert profile_for_topic(topic) is None


SAMPLE_TOPICS = [
    "v3/app1@ttn/devices/dev1/up",
    "v3/app1/devices/dev1/up",
    "v3/app1/devices/dev1/join",
    "sensor-community/1",
    "sensor-community/1/2",
    "telraam/1/traffic",
    "telraam/1/traffic/x",
    "traffic-loop/a",
    "/json/k/d/attrs",
    "/json/k/d/attrs/t",
    "/k/d/attrs",
    "/k/d/attrs/t",
    "/k/d/cmd",
    "json/k/d/attrs",
]


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("topic", SAMPLE_TOPICS)
def test_device_key_agrees_with_the_topic_filters(name: str, topic: str) -> None:
    profile = PROFILES[name]
    subscribed = any(topic_matches_sub(f, topic) for f in profile.topic_filters)
    assert (profile.device_key(topic) is not None) == subscribed


def test_profiles_are_named_and_filters_listed_in_routing_order() -> None:
    assert sorted(PROFILES) == [
        "iotagent-json",
        "sensor-community",
        "telraam",
        "traffic-loop",
        "ttn-v3",
    ]
    assert default_topic_filters()[0] == "v3/+/devices/+/up"
    assert len(default_topic_filters()) == 8
