"""The topics a registered device publishes on: the inverse of each profile's `device_key`.

Each profile implements `device_topics(device_key)`; for every topic `t` it returns,
`profile.device_key(t) == device_key`, and routing (`profile_for_topic`) sends `t` to that
profile. The result may hold `+` levels where a profile takes a free level that is not
part of the key (the IoT Agent object_id): those are ACL topic filters, never key levels.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from devices.profiles.registry import PROFILES


@runtime_checkable
class PublishingProfile(Protocol):
    """A profile that can name the topics of one of its devices."""

    name: str

    def device_topics(self, device_key: str) -> tuple[str, ...]:
        """The topics (or topic filters) the device with `device_key` publishes on."""
        ...


def device_topics(profile_name: str, device_key: str) -> tuple[str, ...]:
    """The topics of `device_key` under `profile_name`; ValueError for a bad profile or key."""
    profile = PROFILES.get(profile_name)
    if profile is None:
        raise ValueError(f"unknown profile {profile_name!r}: use one of {', '.join(PROFILES)}")
    if not isinstance(profile, PublishingProfile):
        raise ValueError(f"profile {profile_name!r} cannot name its devices' topics")
    return profile.device_topics(device_key)
