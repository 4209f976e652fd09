"""Where an alert rule sends its transitions: an NGSI-LD subscription, a webhook or an MQTT topic.

A target is exactly one of `{"subscription": "<subscription id>"}`,
`{"webhook": "https://...", "headers": {...}}` or `{"mqtt": "mqtt://host:port/topic"}`.
Delivery is not done here (alerts/ rule evaluation is pure); these models only check the shape.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

# RFC 3986 scheme followed by something: NGSI-LD subscription ids are URIs (clause 5.2.12).
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
# RFC 9110 token characters for a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET_KEYS = ("subscription", "webhook", "mqtt")


class SubscriptionTarget(BaseModel):
    """Notify through an existing NGSI-LD subscription, named by its id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription: str

    @field_validator("subscription")
    @classmethod
    def _is_uri(cls, value: str) -> str:
        if not _URI.fullmatch(value):
            raise ValueError(
                f"a subscription id is a URI such as urn:ngsi-ld:Subscription:1, not {value!r}"
            )
        return value


class WebhookTarget(BaseModel):
    """POST each transition as JSON to an http(s) URL, with optional extra headers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("webhook")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a webhook is an http:// or https:// URL with a host, not {value!r}")
        if any(character.isspace() for character in value):
            raise ValueError(f"a webhook URL cannot contain white space: {value!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_are_safe(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            # A line break would let a value smuggle in further headers.
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of header {name!r} cannot contain a line break")
        return value


class MqttTarget(BaseModel):
    """Publish each transition as JSON to a topic: mqtt:// or mqtts://host[:port]/topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt: str

    @field_validator("mqtt")
    @classmethod
    def _is_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                "an MQTT target is mqtt://host:port/topic or mqtts://host:port/topic,"
                f" not {value!r}"
            )
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError(f"the port of {value!r} is not a number from 0 to 65535") from None
        if "#" in value or "?" in value:
            raise ValueError(f"the topic of {value!r} cannot hold wildcards (+, #) or a ?")
        topic = parts.path.removeprefix("/")
        if not topic:
            raise ValueError(f"{value!r} names no topic: add it as the path, e.g. /alerts/pm25")
        if "+" in topic:
            raise ValueError(f"the topic of {value!r} cannot hold wildcards (+, #) or a ?")
        return value

    @property
    def topic(self) -> str:
        """The topic to publish to: the URL path without its leading slash."""
        return urlsplit(self.mqtt).path.removeprefix("/")


def _target_key(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if not isinstance(value, dict):
        return None
    present = [key for key in _TARGET_KEYS if key in value]
    return present[0] if len(present) == 1 else None


#: One notification target; the key that is present (subscription, webhook, mqtt) says which.
NotifyTarget = Annotated[
    Annotated[SubscriptionTarget, Tag("subscription")]
    | Annotated[WebhookTarget, Tag("webhook")]
    | Annotated[MqttTarget, Tag("mqtt")],
    Discriminator(
        _target_key,
        custom_error_type="notify_target",
        custom_error_message=(
            "a notify target has exactly one of the keys subscription, webhook or mqtt"
        ),
    ),
]
