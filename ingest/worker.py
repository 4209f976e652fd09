"""The ingest worker: MQTT in, batches through the pipeline, COPY and commit, then ack.

Three threads share the work so the database round trip overlaps with decoding:
paho's network thread queues RawMessages; the batcher cuts batches by size and time and
builds them; the writer commits each batch and only then acknowledges its messages.
Both hand-offs are bounded queues, and the broker's Receive Maximum bounds what is in
flight, so memory stays bounded under any backlog.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from storage.writer import BatchWriter

from .message import RawMessage
from .metrics import IngestMetrics
from .mqtt import MqttConsumer
from .pipeline import BatchBuilder, BuiltBatch
from .storage_errors import dead_letter_all

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is cut: at `size` messages or `seconds` after its first message."""

    size: int = 500
    seconds: float = 0.2


@dataclass(slots=True)
class WorkerStats:
    """Running totals, for logs, tests and benchmarks."""

    batches: int = 0
    messages: int = 0
    readings: int = 0
    dead_letters: int = 0
    storage_retries: int = 0


class IngestWorker:
    """Wires an MqttConsumer, a BatchBuilder and a BatchWriter into an at-least-once loop."""

    def __init__(
        self,
        consumer_factory: Callable[[Callable[[RawMessage], None]], MqttConsumer],
        builder: BatchBuilder,
        writer: BatchWriter,
        connect: Callable[[], psycopg.Connection],
        policy: BatchPolicy,
        metrics: IngestMetrics | None = None,
        on_commit: Callable[[BuiltBatch, float], None] | None = None,
        on_unknown_device: Callable[[], None] | None = None,
    ) -> None:
        self._incoming: queue.Queue[RawMessage] = queue.Queue(maxsize=max(policy.size * 8, 1024))
        self._built: queue.Queue[object] = queue.Queue(maxsize=2)
        self.consumer = consumer_factory(self._incoming.put)
        self._builder = builder
        self._writer = writer
        self._connect = connect
        self._policy = policy
        self.metrics = metrics or IngestMetrics()
        self._on_commit = on_commit
        self._on_unknown_device = on_unknown_device
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connection: psycopg.Connection | None = None

    def start(self) -> None:
        """Open the database connection, start the threads and connect to the broker."""
        self._connection = self._connect_with_retry()
        self._threads = [
            threading.Thread(target=self._batch_loop, name="ingest-batcher", daemon=True),
            threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.consumer.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain: commit and acknowledge what was received, then disconnect (SIGTERM path)."""
        self.consumer.stop_accepting()
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self.consumer.stop()
        if self._connection is not None:
            self._connection.close()

    def _batch_loop(self) -> None:
        incoming, policy = self._incoming, self._policy
        while True:
            try:
                first = incoming.get(timeout=0.05)
            except queue.Empty:
                if self._stopping.is_set():
                    break
                continue
            batch = [first]
            deadline = first.arrived + policy.seconds
            while len(batch) < policy.size:
                remaining = deadline - time.monotonic()
                if self._stopping.is_set():
                    remaining = 0.0
                try:
                    batch.append(
                        incoming.get(timeout=remaining) if remaining > 0 else incoming.get_nowait()
                    )
                except queue.Empty:
                    break
            built = self._builder.build(batch)
            if built.unknown_devices and self._on_unknown_device is not None:
                self._on_unknown_device()
            self._built.put(built)
        self._built.put(_STOP)

    def _write_loop(self) -> None:
        while True:
            item = self._built.get()
            if item is _STOP:
                return
            assert isinstance(item, BuiltBatch)
            started = time.monotonic()
            self._write_until_committed(item)
            self.consumer.ack(item.messages)
            elapsed = time.monotonic() - started
            self._account(item, elapsed)

    def _write_until_committed(self, built: BuiltBatch) -> None:
        """Retry through lost connections; a batch is never skipped and never acked uncommitted."""
        delay = 0.2
        while True:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                self._writer.write(self._connection, built.batch)
                return
            except psycopg.OperationalError as error:
                self.stats.storage_retries += 1
                self.metrics.storage_retries.inc()
                log.warning("batch not committed (%s); retrying in %.1f s", error, delay)
                self._discard_connection()
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
            except psycopg.Error as error:
                # Not a connectivity problem: this batch can never be written as it is.
                # Keep every message whole in the dead-letter store rather than block ingest.
                log.error("batch rejected by the database (%s); dead-lettering it", error)
                self._discard_connection()
                built.batch = dead_letter_all(built, f"{type(error).__name__}: {error}")
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _discard_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None

    def _connect_with_retry(self) -> psycopg.Connection:
        delay = 0.5
        while True:
            try:
                return self._connect()
            except psycopg.OperationalError as error:
                log.warning("database unreachable (%s); retrying in %.1f s", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _account(self, built: BuiltBatch, elapsed: float) -> None:
        batch, stats, metrics = built.batch, self.stats, self.metrics
        dead = len(batch.dead_letters)
        stats.batches += 1
        stats.messages += len(built.messages)
        stats.readings += built.readings
        stats.dead_letters += dead
        metrics.received.inc(len(built.messages))
        metrics.stored.inc(len(built.messages) - dead)
        metrics.readings.inc(built.readings)
        metrics.commit_seconds.observe(elapsed)
        for letter in batch.dead_letters:
            metrics.dead_lettered.labels(letter.reason).inc()
        if self._on_commit is not None:
            self._on_commit(built, time.monotonic())
