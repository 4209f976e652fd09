"""The app factory: builds the storage, registry, pipeline and MQTT consumer from Settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg

from alerts.engine import AlertEngine
from alerts.notifier import NotifierOptions, PeriodicTask
from devices.profiles.registry import PROFILES
from devices.registry import DeviceRegistry
from feeds.gipod_store import sync_roadwork_alerts
from feeds.publication import publication_from_settings
from feeds.push import FeedPublisher
from ingest.committer import BatchCommitter
from ingest.message import RawMessage
from ingest.metrics import IngestMetrics
from ingest.mqtt import MqttConsumer, subscription_filters
from ingest.pipeline import BatchBuilder
from ingest.registry_source import RegistrySource
from ingest.worker import BatchPolicy, IngestWorker
from storage.backend import Backend, create_postgis, detect_backend
from storage.database import connect, create_database_if_missing
from storage.device_health import refresh_device_states
from storage.migrate import migrate
from storage.temporal_days import configure_daily_rollups
from storage.writer import BatchWriter, load_registry

from .settings import Settings

logger = logging.getLogger(__name__)


def default_topics() -> list[str]:
    """Every profile's default topic filters, in profile order, without repeats."""
    topics: list[str] = []
    for profile in PROFILES.values():
        topics.extend(t for t in profile.topic_filters if t not in topics)
    return topics


def prepare_database(settings: Settings) -> Backend:
    """Create the database if needed, detect the backend and apply migrations."""
    create_database_if_missing(settings.database_url)
    with connect(settings.database_url) as conn:
        backend = detect_backend(conn, settings.storage_backend)
        if settings.postgis == "auto":
            create_postgis(conn)
        migrate(conn, backend)
        conn.commit()
        try:
            configure_daily_rollups(conn, settings.temporal_time_zone)
        except ValueError as error:  # a zone whose offsets are not whole hours
            logger.warning("%s; calendar aggregations use the hourly rollups", error)
    return backend


def migrated_database_url() -> str:
    """The configured database URL, the database created and migrated if needed (CLI)."""
    settings = Settings()
    prepare_database(settings)
    return settings.database_url


def registry_loader(database_url: str) -> Callable[[], DeviceRegistry]:
    """A function that reads the device registry tables into an in-memory registry."""

    def load() -> DeviceRegistry:
        with connect(database_url) as conn:
            devices, groups = load_registry(conn)
        return DeviceRegistry(devices, groups)

    return load


def make_committer(settings: Settings, backend: Backend) -> BatchCommitter:
    """The writer process's half of the worker: registry, pipeline and database writer."""
    registry = RegistrySource(
        registry_loader(settings.database_url), settings.registry_refresh_seconds
    )
    return BatchCommitter(
        BatchBuilder(registry.current, settings.max_payload_bytes, reload=registry.reload_now),
        BatchWriter(backend),
        partial(connect, settings.database_url),
        rollup_refresh_seconds=settings.rollup_refresh_seconds,
        alerts=AlertEngine(settings.alert_reload_seconds).on_batch,
    )


def build_worker(
    settings: Settings,
    backend: Backend,
    *,
    metrics: IngestMetrics | None = None,
    on_commit: Callable[[list[float], float], None] | None = None,
) -> IngestWorker:
    """An ingest worker wired to the configured database and broker (not yet started)."""
    topics = subscription_filters(
        settings.mqtt_topics or default_topics(), settings.mqtt_shared_group
    )

    def consumer(deliver: Callable[[RawMessage], None]) -> MqttConsumer:
        return MqttConsumer(
            settings.mqtt,
            settings.mqtt_client_id,
            topics,
            deliver,
            protocol=settings.mqtt_protocol,
            session_expiry=settings.mqtt_session_expiry,
            receive_maximum=settings.mqtt_receive_maximum,
            keepalive=settings.mqtt_keepalive,
        )

    return IngestWorker(
        consumer,
        partial(make_committer, settings, backend),
        BatchPolicy(settings.batch_size, settings.batch_time, settings.batch_idle_time),
        metrics=metrics,
        on_commit=on_commit,
        log_level=settings.log_level.upper(),
        receive_maximum=settings.mqtt_receive_maximum,
    )


def notifier_options(settings: Settings) -> NotifierOptions:
    """The notifier's polling and delivery options from the settings."""
    return NotifierOptions(
        poll_seconds=settings.notify_poll_seconds,
        lanes=settings.notify_lanes,
        timeout_seconds=settings.notify_timeout_seconds,
        max_backoff_seconds=settings.notify_max_backoff_seconds,
    )


def notifier_tasks(settings: Settings) -> list[PeriodicTask]:
    """The periodic work of the active notifier: silence rules, silent devices, feed push."""
    engine = AlertEngine(settings.alert_reload_seconds)
    silent_after = timedelta(seconds=settings.device_silent_after_seconds)

    def mark_silent_devices(conn: psycopg.Connection) -> int:
        return refresh_device_states(conn, now=datetime.now(UTC), silent_after=silent_after)

    tasks = [
        PeriodicTask("silence rules", settings.alert_silence_check_seconds, engine.check_silence),
        PeriodicTask("roadwork alerts", settings.alert_reload_seconds, sync_roadwork_alerts),
        PeriodicTask("silent devices", settings.alert_silence_check_seconds, mark_silent_devices),
    ]
    if settings.feeds_push_seconds > 0:
        publisher = FeedPublisher(publication_from_settings(settings))

        def push_feeds(conn: psycopg.Connection) -> int:
            return publisher.run_once(conn, settings.mqtt_url)

        tasks.append(PeriodicTask("feed push", settings.feeds_push_seconds, push_feeds))
    return tasks
