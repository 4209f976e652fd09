"""Push per feed over MQTT: when a tenant's roadworks change, its WZDx and Waze feeds are
published as retained QoS 1 messages on `stadspuls/feeds/<tenant>/wzdx` and `.../waze`.

A route planner subscribes to the topic and gets the current feed at once (retained) and every
new version after. `FeedPublisher.run_once` compares each tenant's roadworks revision (count,
newest modification) with what it last published and publishes the changed ones, waiting for
each PUBACK; a failed publish is retried on the next run. It runs in the notifier (one active
per database, alerts/notifier.py), every `feeds_push_seconds`. After a restart it publishes
every tenant once more: a retained message replaced by the same feed costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stadspuls.mqtt_publish import PublishFailed, connect, new_client, publish_and_wait
from storage.feed_store import roadwork_revisions
from storage.roadwork_store import load_roadworks

from .publication import Publication
from .waze import waze_feed
from .wzdx import wzdx_feed

log = logging.getLogger(__name__)
TOPIC_PREFIX = "stadspuls/feeds"
#: The topic segment of the default tenant "".
DEFAULT_TENANT_SEGMENT = "default"
#: Mosquitto's message_size_limit in the configuration the project ships (deploy/mosquitto.conf).
MAX_PAYLOAD_BYTES = 1024 * 1024

RoadworkRevision = tuple[int, datetime | None]


class FeedPushFailed(Exception):
    """The broker did not take a feed; the next run tries again."""


def tenant_segment(tenant: str) -> str:
    """The topic level of a tenant: "default" for "", MQTT's special characters escaped."""
    if not tenant:
        return DEFAULT_TENANT_SEGMENT
    for character, escaped in (("%", "%25"), ("/", "%2F"), ("+", "%2B"), ("#", "%23")):
        tenant = tenant.replace(character, escaped)
    return tenant


def feed_topic(tenant: str, feed: str, prefix: str = TOPIC_PREFIX) -> str:
    """The topic of one feed of one tenant (`stadspuls/feeds/<tenant>/<feed>`)."""
    return f"{prefix}/{tenant_segment(tenant)}/{feed}"


@contextmanager
def _broker(mqtt_url: str, timeout: float) -> Iterator[mqtt.Client]:
    """A connected client of the broker at `mqtt[s]://[user:password@]host[:port]`; a publish
    the broker does not take, inside the block or while connecting, is a FeedPushFailed."""
    parts = urlsplit(mqtt_url)
    tls = parts.scheme in ("mqtts", "ssl")
    host, port = parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    client = new_client("stadspuls-feeds", username, password, tls)
    try:
        connect(client, host, port, timeout)
        yield client
    except PublishFailed as failure:
        raise FeedPushFailed(str(failure)) from failure
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(
    client: mqtt.Client, topic: str, payload: bytes, media_type: str, timeout: float
) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FeedPushFailed(
            f"{topic}: the feed is {len(payload)} bytes, over the broker's {MAX_PAYLOAD_BYTES}"
        )
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = media_type
    publish_and_wait(client, topic, payload, timeout, retain=True, properties=properties)


class FeedPublisher:
    """Publishes each tenant's WZDx and Waze feeds when its roadworks change."""

    def __init__(
        self, publication: Publication, prefix: str = TOPIC_PREFIX, timeout: float = 10.0
    ) -> None:
        self._publication = publication
        self._prefix = prefix
        self._timeout = timeout
        #: What was last published, per tenant.
        self._published: dict[str, RoadworkRevision] = {}

    def changed_tenants(self, conn: psycopg.Connection) -> dict[str, RoadworkRevision]:
        """Tenants whose roadworks differ from what was last published (a tenant whose last
        roadwork went away too: it gets an empty feed)."""
        current = roadwork_revisions(conn)
        for tenant in self._published.keys() - current.keys():
            current[tenant] = (0, None)
        return {t: r for t, r in current.items() if self._published.get(t) != r}

    def run_once(self, conn: psycopg.Connection, mqtt_url: str) -> int:
        """Publish the feeds of every tenant whose roadworks changed; how many tenants.

        Only reads through `conn` (and ends its transaction). Raises FeedPushFailed when the
        broker does not take a feed; what was published before that counts as done.
        """
        try:
            changed = self.changed_tenants(conn)
            if not changed:
                return 0
            with _broker(mqtt_url, self._timeout) as client:
                for tenant, revision in sorted(changed.items()):
                    self._publish_tenant(conn, client, tenant, revision)
            return len(changed)
        finally:
            conn.rollback()

    def _publish_tenant(
        self,
        conn: psycopg.Connection,
        client: mqtt.Client,
        tenant: str,
        revision: RoadworkRevision,
    ) -> None:
        roadworks = load_roadworks(conn, tenant)
        update_date = revision[1] or datetime.now(UTC)
        feeds = (
            ("wzdx", wzdx_feed(roadworks, self._publication, update_date), "application/geo+json"),
            ("waze", waze_feed(roadworks), "application/json"),
        )
        for name, document, media_type in feeds:
            topic = feed_topic(tenant, name, self._prefix)
            _publish(client, topic, orjson.dumps(document), media_type, self._timeout)
        self._published[tenant] = revision
        log.info("published the roadwork feeds of tenant %r (%d roadworks)", tenant, revision[0])
