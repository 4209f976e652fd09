"""Each profile's `device_topics` is the inverse of its `device_key`, and routes back to it."""

from __future__ import annotations

import pytest

from devices.profiles.registry import PROFILES, profile_for_topic
from devices.topics import PublishingProfile, device_topics

#: Values put in place of a `+` (the IoT Agent object_id), including level names the
#: topic patterns use themselves.
FREE_LEVELS = ("temperature", "attrs", "json", "v3", "up")


@pytest.mark.parametrize(
    ("profile", "device_key", "expected"),
    [
        (
            "ttn-v3",
            "city-air/eui-70b3d57ed005c2a1",
            (
                "v3/city-air/devices/eui-70b3d57ed005c2a1/up",
                "v3/city-air@ttn/devices/eui-70b3d57ed005c2a1/up",
            ),
        ),
        (
            "iotagent-json",
            "4jggokgpepnvsb2uv4s40d59ov/sensor01",
            (
                "/json/4jggokgpepnvsb2uv4s40d59ov/sensor01/attrs",
                "/json/4jggokgpepnvsb2uv4s40d59ov/sensor01/attrs/+",
                "/4jggokgpepnvsb2uv4s40d59ov/sensor01/attrs",
                "/4jggokgpepnvsb2uv4s40d59ov/sensor01/attrs/+",
            ),
        ),
        ("iotagent-json", "key/attrs", None),
        ("iotagent-json", "attrs/json", None),
        ("sensor-community", "esp8266-12345", ("sensor-community/esp8266-12345",)),
        ("telraam", "9000001234", ("telraam/9000001234/traffic",)),
        ("traffic-loop", "H222L10", ("traffic-loop/H222L10",)),
        ("traffic-loop", "json", None),
    ],
)
def test_device_topics_round_trip(
    profile: str, device_key: str, expected: tuple[str, ...] | None
) -> None:
    topics = device_topics(profile, device_key)
    if expected is not None:
        assert topics == expected
    assert topics
    for topic in topics:
        # A `+` stands for any one level: every concrete topic must still be this device's.
        concrete = [topic.replace("+", level) for level in FREE_LEVELS] if "+" in topic else []
        for name in (topic, *concrete):
            assert PROFILES[profile].device_key(name) == device_key, name
            routed = profile_for_topic(name)
            assert routed is not None, name
            assert (routed[0].name, routed[1]) == (profile, device_key), name


def test_every_profile_names_its_device_topics() -> None:
    assert [
        name for name, profile in PROFILES.items() if not isinstance(profile, PublishingProfile)
    ] == []


@pytest.mark.parametrize(
    ("profile", "device_key", "message"),
    [
        ("sensor-community", "", "empty topic level"),
        ("sensor-community", "a/b", "'/' is not allowed"),
        ("sensor-community", "a+", "'\\+' is not allowed"),
        ("telraam", "#", "'#' is not allowed"),
        ("traffic-loop", "H222 L10", "' ' is not allowed"),
        ("traffic-loop", "H222\nuser ingest", "'\\\\n' is not allowed"),
        ("traffic-loop", "a\x00b", "'\\\\x00' is not allowed"),
        ("ttn-v3", "only-application", "must read {application_id}/{device_id}"),
        ("ttn-v3", "app/dev/extra", "must read {application_id}/{device_id}"),
        ("ttn-v3", "app@tenant/dev", "holds no '@'"),
        ("ttn-v3", "app/", "empty topic level"),
        ("iotagent-json", "apikey", "must read {apikey}/{device_id}"),
        ("iotagent-json", "json/sensor01", "apikey 'json' is ambiguous"),
        ("iotagent-json", "key/+", "'\\+' is not allowed"),
        ("no-such-profile", "x", "unknown profile 'no-such-profile'"),
    ],
)
def test_device_topics_refuses_keys_that_are_no_topic_levels(
    profile: str, device_key: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        device_topics(profile, device_key)
