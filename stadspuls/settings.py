"""Settings, read from environment variables prefixed `STADSPULS_` (pydantic-settings)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/stadspuls"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where the broker is and how to log in, parsed from `mqtt://[user:pass@]host:port`."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse an `mqtt://` or `mqtts://` URL; raise ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttEndpoint(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


class Settings(BaseSettings):
    """All settings of the service; the README lists each with its default."""

    model_config = SettingsConfigDict(env_prefix="STADSPULS_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    #: auto (TimescaleDB when the extension is available), timescaledb, or postgres.
    storage_backend: Literal["auto", "timescaledb", "postgres"] = "auto"

    mqtt_url: str = DEFAULT_MQTT_URL
    #: Topic filters to subscribe to; empty means every profile's default filters.
    mqtt_topics: list[str] = Field(default_factory=list)
    #: When set, subscribe as `$share/<group>/<filter>` so several workers split the load.
    mqtt_shared_group: str | None = None
    #: Stable client id: the broker keeps this worker's session (and backlog) under it.
    mqtt_client_id: str = Field(default_factory=lambda: f"stadspuls-ingest-{socket.gethostname()}")
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    #: How long the broker keeps the session (and queues messages) while the worker is away.
    mqtt_session_expiry: int = 86_400
    #: MQTT 5 Receive Maximum: unacknowledged QoS 1 messages the broker may send us at once.
    #: Must exceed batch_size so the next batch arrives while one commits.
    mqtt_receive_maximum: int = 16_000
    #: Seconds; a broker draining a very large backlog can be slow to answer PINGREQ
    #: (Mosquitto 2.0 with a million queued messages once took over 30 s).
    mqtt_keepalive: int = 60

    #: A batch is committed when it holds this many messages ... (large batches fold the
    #: latest-state updates of a device's messages into one: measured 1.6x at 2000 vs 500,
    #: and another 1.26x at 4000)
    batch_size: int = 4_000
    #: ... or when its first message has waited this many seconds ...
    batch_time: float = 0.5
    #: ... or this many, when the writer is idle (self-clocking batches: low latency at
    #: moderate rates, large batches under load); 0 turns this rule off.
    batch_idle_time: float = Field(default=0.0, ge=0)
    #: Payloads larger than this go to the dead-letter store as `oversize`.
    max_payload_bytes: int = 256 * 1024
    #: How often the in-memory device registry is reloaded from the database.
    registry_refresh_seconds: float = 30.0

    #: Port of the Prometheus metrics endpoint of `stadspuls ingest`; 0 turns it off.
    metrics_port: int = 9464
    log_level: str = "INFO"

    #: auto: create the PostGIS extension where the server offers it (geo-queries then run
    #: in SQL); off: never (geo-queries are answered in Python, with the same results).
    postgis: Literal["auto", "off"] = "auto"

    # --- NGSI-LD API (`stadspuls api`) ---
    api_host: str = "127.0.0.1"
    api_port: int = 1026
    #: uvicorn worker processes of `stadspuls api` (two use both cores of a 2-core machine:
    #: 4,369 vs 2,483 GET-by-id requests/s, bench/README.md).
    api_workers: int = 2
    #: Entities per page when the caller gives no `limit` ...
    api_default_limit: int = 20
    #: ... and the most it may ask for; more is answered with TooManyResults.
    api_max_limit: int = 1000
    #: Request bodies larger than this are refused with 413.
    api_max_body_bytes: int = 8 * 1024 * 1024
    #: Entities in one /entityOperations call.
    api_max_batch_entities: int = 10_000
    #: Seconds to wait for a user @context that has to be fetched (then LdContextNotAvailable).
    context_fetch_timeout: float = 5.0
    #: Connections of the API's PostgreSQL pool (per worker process).
    api_pool_size: int = 8

    # --- access control (ngsi/access.py) ---
    #: False opens every endpoint to everyone, as an admin: for development only.
    auth_enabled: bool = True
    #: Tenants anyone may read without credentials ("" is the default tenant), besides those
    #: switched on with `stadspuls keys public-read`. Writes always need credentials.
    auth_public_read_tenants: list[str] = Field(default_factory=list)
    #: Seconds an API process trusts what it read about an API key or a tenant's public read:
    #: a revoked key (or public read switched off) stops working within this time.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    #: JWKS URL of the OpenID Connect provider; unset, bearer tokens are refused.
    oidc_jwks_url: str | None = None
    #: Seconds to wait for the JWKS (fetched on first use, every 5 minutes and for a new key).
    oidc_jwks_timeout: float = 5.0
    #: The `iss` bearer tokens must carry; unset, the issuer is not checked.
    oidc_issuer: str | None = None
    #: The `aud` bearer tokens must carry; unset, the audience is not checked (set it when the
    #: provider issues tokens to other applications too).
    oidc_audience: str | None = None
    #: Token claim naming the tenant (a string) or tenants (a list) the token may access;
    #: a token without it may access every tenant its scopes allow.
    oidc_tenant_claim: str = "tenant"
    #: Scopes (in the token's `scope` or `scp`) granting the read, write and admin roles.
    oidc_read_scope: str = "stadspuls:read"
    oidc_write_scope: str = "stadspuls:write"
    oidc_admin_scope: str = "stadspuls:admin"

    #: Seconds between refreshes of the hourly rollups (storage/rollups.py) by each ingest
    #: worker's writer process; 0 turns them off there (run `refresh_rollups` elsewhere then).
    rollup_refresh_seconds: float = Field(default=5.0, ge=0)

    # --- temporal API (/ngsi-ld/v1/temporal, docs/temporal.md) ---
    #: Time zone of calendar aggregation periods (P1D, P1W, P1M, P1Y begin at local
    #: midnight); a request may choose another with the `timezone` parameter.
    temporal_time_zone: str = "Europe/Brussels"
    #: Most instances per attribute (or aggregation periods) in one temporal answer; more
    #: are answered 206 Partial Content with a Content-Range to page on (clause 6.3.10).
    temporal_max_instances: int = Field(default=10_000, ge=1)

    # --- notifications and alerts (`stadspuls notify`, docs/subscriptions.md, docs/alerts.md) ---
    #: Seconds the notifier sleeps when no change and no due notification waits.
    notify_poll_seconds: float = Field(default=0.2, gt=0)
    #: Notification channels (subscriptions) delivered side by side.
    notify_lanes: int = Field(default=8, ge=1)
    #: Seconds an HTTP receiver or MQTT broker has to take one notification.
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Longest wait between two attempts at a notification its receiver refused (the wait
    #: doubles from 1 s up to this); it is kept and retried until delivered.
    notify_max_backoff_seconds: float = Field(default=300.0, gt=0)
    #: Seconds between reloads of the alert rules by each ingest writer process.
    alert_reload_seconds: float = Field(default=5.0, gt=0)
    #: Seconds between evaluations of the silence rules (no reading for a while).
    alert_silence_check_seconds: float = Field(default=30.0, gt=0)
    #: A device not heard from for this long is marked `deviceState: silent` by the notifier
    #: (docs/device-health.md).
    device_silent_after_seconds: float = Field(default=3600.0, gt=0)

    # --- feeds for route planners (docs/feeds-*.md) ---
    #: Who publishes the feeds (DATEX II, WZDx, DCAT).
    feeds_publisher: str = "Stadspuls"
    #: The licence of the published data (DCAT dcterms:license; WZDx only takes CC0).
    feeds_license: str = (
        "https://data.vlaanderen.be/id/licentie/modellicentie-gratis-hergebruik/v1.0"
    )
    #: Contact address in the feeds' metadata.
    feeds_contact_email: str | None = None
    #: The public base URL of the API behind a proxy (links in the catalogue and LDES).
    feeds_base_url: str | None = None
    #: How often the notifier publishes changed roadwork feeds on MQTT (retained); 0: never.
    feeds_push_seconds: float = Field(default=10.0, ge=0)

    # --- the Linked Data Event Streams (/ldes, docs/ldes.md) ---
    #: Width of one time fragment, seconds.
    ldes_fragment_seconds: int = Field(default=3600, ge=60)
    #: Members per page of a fragment.
    ldes_page_size: int = Field(default=250, ge=1)
    #: Fragments older than this are no longer served (ldes:DurationAgoPolicy).
    ldes_retention_days: int = Field(default=30, ge=1)
    #: A fragment is closed (immutable) this long after its window ends (late readings).
    ldes_settle_seconds: int = Field(default=300, ge=0)
    #: Cache lifetime of the open fragment, the view and the stream description, seconds.
    ldes_open_max_age: int = Field(default=5, ge=0)
    #: Cache lifetime of closed fragments, seconds.
    ldes_closed_max_age: int = Field(default=31_536_000, ge=0)
    #: The public base URL of the LDES links (default: the request's own).
    ldes_base_url: str | None = None

    @field_validator("temporal_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name like Europe/Brussels)"
            ) from error
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _valid_mqtt_url(cls, value: str) -> str:
        parse_mqtt_url(value)
        return value

    @field_validator("batch_size", "mqtt_receive_maximum")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @property
    def mqtt(self) -> MqttEndpoint:
        """The parsed broker endpoint."""
        return parse_mqtt_url(self.mqtt_url)
