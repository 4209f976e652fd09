"""Prometheus metrics of the ingest worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class IngestMetrics:
    """Counters and histograms of one worker, on their own registry (tests make many)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter("stadspuls_messages_received", "MQTT messages received", registry=r)
        self.stored = Counter(
            "stadspuls_messages_stored", "Messages committed as readings", registry=r
        )
        self.dead_lettered = Counter(
            "stadspuls_messages_dead_lettered",
            "Messages committed to the dead-letter store",
            ["reason"],
            registry=r,
        )
        self.readings = Counter("stadspuls_readings_stored", "Readings committed", registry=r)
        self.commit_seconds = Histogram(
            "stadspuls_batch_commit_seconds",
            "Time to write and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.storage_retries = Counter(
            "stadspuls_storage_retries", "Batch writes retried after a database error", registry=r
        )
