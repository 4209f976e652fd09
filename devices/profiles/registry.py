"""The device profiles by name, and routing of an MQTT topic to a profile and device key."""

from __future__ import annotations

from devices.model import Profile
from devices.profiles import iotagent_json, sensor_community, telraam, traffic_loop, ttn_v3

#: Tried in this order; the topic spaces do not overlap, the order only makes routing stable.
ORDER: tuple[Profile, ...] = (
    ttn_v3.PROFILE,
    sensor_community.PROFILE,
    telraam.PROFILE,
    traffic_loop.PROFILE,
    iotagent_json.PROFILE,
)
PROFILES: dict[str, Profile] = {profile.name: profile for profile in ORDER}


def profile_for_topic(topic: str) -> tuple[Profile, str] | None:
    """The first profile whose topics include `topic`, with the device key it carries."""
    for profile in ORDER:
        key = profile.device_key(topic)
        if key is not None:
            return profile, key
    return None


def default_topic_filters() -> list[str]:
    """Every profile's default MQTT topic filters, in routing order."""
    return [topic_filter for profile in ORDER for topic_filter in profile.topic_filters]
