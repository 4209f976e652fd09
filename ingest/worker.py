"""The ingest worker: MQTT in, batches to the writer process, acknowledgement after commit.

Threads of this (the MQTT) process: paho's network thread queues each message; the batcher
cuts batches by size and time and sends them to the writer process; the acknowledger reads
the writer's answers and acknowledges each committed batch's messages, in order. The
broker's Receive Maximum and a bound on batches in flight keep memory bounded under any
backlog. If the writer process dies, it is started again and the uncommitted batches are
sent again: nothing was acknowledged for them, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from .committer import BatchCommitter, CommitReport
from .message import RawMessage
from .metrics import IngestMetrics
from .mqtt import MqttConsumer
from .writer_process import STOP, encode_batch, serve

log = logging.getLogger(__name__)

#: Batches sent to the writer and not yet committed; two keep it busy while one commits.
MAX_BATCHES_IN_FLIGHT = 3
#: A writer that dies this many times within RESTART_WINDOW seconds is not started again:
#: the worker fails (exit status 1) and its supervisor decides; nothing unacknowledged is lost.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is cut: at `size` messages or `seconds` after its first message, or
    `idle_seconds` after it when the writer has nothing to do.

    The last rule makes batching self-clocking: at a moderate rate the writer is idle and a
    batch goes after `idle_seconds` (low latency); under load the writer is busy, batches
    grow while it works (up to `size`/`seconds`), and throughput is that of large batches.
    """

    size: int = 500
    seconds: float = 0.2
    #: 0 turns the idle rule off.
    idle_seconds: float = 0.0


#: How often a batch that waits for a busy writer looks whether it became idle.
IDLE_POLL_SECONDS = 0.01


@dataclass(slots=True)
class WorkerStats:
    """Running totals, for logs, tests and benchmarks."""

    batches: int = 0
    messages: int = 0
    readings: int = 0
    dead_letters: int = 0
    storage_retries: int = 0
    writer_restarts: int = 0


@dataclass(slots=True)
class _Pending:
    """A batch sent to the writer: what acknowledging needs, and its bytes for a resend."""

    acks: list[tuple[int, int, int]]  # (mid, qos, connection generation)
    arrived: list[float]
    data: bytes = field(repr=False)


class IngestWorker:
    """Runs an MqttConsumer here and a BatchCommitter in a writer process, at least once."""

    def __init__(
        self,
        consumer_factory: Callable[[Callable[[RawMessage], None]], MqttConsumer],
        make_committer: Callable[[], BatchCommitter],
        policy: BatchPolicy,
        metrics: IngestMetrics | None = None,
        on_commit: Callable[[list[float], float], None] | None = None,
        log_level: str = "INFO",
        receive_maximum: int = 16_000,
    ) -> None:
        # Larger than anything the broker may have in flight to us (Receive Maximum, plus a
        # redelivered window after a reconnect), so paho's thread never blocks on it for
        # QoS 1; QoS 0 floods block it, which pushes back on the TCP connection.
        self._incoming: queue.Queue[RawMessage] = queue.Queue(
            maxsize=2 * receive_maximum + policy.size
        )
        self.consumer = consumer_factory(self._incoming.put)
        self._make_committer = make_committer
        self._policy = policy
        self.metrics = metrics or IngestMetrics()
        self._on_commit = on_commit
        self._log_level = log_level
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        #: Set when the worker gave up (the writer process keeps dying).
        self.failed = threading.Event()
        self._restarts: list[float] = []
        self._slots = threading.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._channel_lock = threading.Lock()
        self._all_committed = threading.Condition(self._pending_lock)
        self._context = multiprocessing.get_context("spawn")
        self._channel: Connection | None = None
        self._process: BaseProcess | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the writer process and the threads, then connect to the broker."""
        # If it dies at once, the acknowledger restarts it (and gives up if it must).
        with contextlib.suppress(EOFError, OSError):
            self._start_writer()
        self._threads = [
            threading.Thread(target=self._batch_loop, name="ingest-batcher", daemon=True),
            threading.Thread(target=self._ack_loop, name="ingest-acknowledger", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.consumer.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Drain: commit and acknowledge what was received, then disconnect (SIGTERM path)."""
        self.consumer.stop_accepting()
        self._stopping.set()
        self._threads[0].join(timeout)
        with self._all_committed:
            self._all_committed.wait_for(lambda: not self._pending or self.failed.is_set(), timeout)
        self.consumer.stop()
        assert self._channel is not None and self._process is not None
        with self._channel_lock, contextlib.suppress(OSError):
            self._channel.send_bytes(STOP)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
        self._threads[1].join(timeout)
        self._channel.close()

    def _start_writer(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=serve,
            args=(child, self._make_committer, self._log_level),
            name="stadspuls-writer",
            daemon=True,
        )
        process.start()
        child.close()
        # Pull nothing from the broker before the writer can take it: wait for its READY
        # (it may be waiting for the database to load the device registry).
        self._channel, self._process = parent, process
        while not parent.poll(1.0):
            if not process.is_alive() or self._stopping.is_set():
                return  # died starting up (the acknowledger restarts it), or shutting down
        parent.recv_bytes()  # READY; EOFError if it died right after starting

    def _batch_loop(self) -> None:
        incoming, policy = self._incoming, self._policy
        sequence = 0
        while True:
            try:
                first = incoming.get(timeout=0.05)
            except queue.Empty:
                if self._stopping.is_set() and incoming.empty():
                    return
                continue
            batch = [first]
            deadline = first.arrived + policy.seconds
            early = first.arrived + policy.idle_seconds if policy.idle_seconds > 0 else deadline
            while len(batch) < policy.size:
                now = time.monotonic()
                if now >= early and not self._pending:
                    break  # the writer is idle: no reason to keep this batch waiting
                remaining = 0.0 if self._stopping.is_set() else deadline - now
                if now < early:
                    remaining = min(remaining, early - now)
                elif self._pending and early < deadline:
                    remaining = min(remaining, IDLE_POLL_SECONDS)
                try:
                    if remaining > 0:
                        batch.append(incoming.get(timeout=remaining))
                    else:
                        batch.append(incoming.get_nowait())
                except queue.Empty:
                    if remaining <= 0 or time.monotonic() >= deadline:
                        break
            sequence += 1
            self._send(sequence, batch)

    def _send(self, sequence: int, batch: list[RawMessage]) -> None:
        wire = [(m.topic, m.payload, m.qos, m.received_at.timestamp()) for m in batch]
        data = encode_batch(sequence, wire)
        self._slots.acquire()
        # Under the channel lock a batch is either pending before a writer restart (and
        # resent by it) or sent to the new writer: never neither.
        with self._channel_lock:
            acks = [(m.mid, m.qos, m.generation) for m in batch]
            with self._pending_lock:
                self._pending[sequence] = _Pending(acks, [m.arrived for m in batch], data)
            with contextlib.suppress(OSError):  # a dead writer is restarted by the acknowledger
                self._channel.send_bytes(data)  # type: ignore[union-attr,attr-defined]

    def _ack_loop(self) -> None:
        try:
            while self._acknowledge_next():
                pass
        except Exception:  # noqa: BLE001 - without this thread nothing is ever acked again
            log.critical("the acknowledger failed; stopping the worker", exc_info=True)
            self.failed.set()
        with self._all_committed:
            self._all_committed.notify_all()

    def _acknowledge_next(self) -> bool:
        """Acknowledge the next committed batch; False when this thread should end."""
        try:
            sequence, report = self._channel.recv()  # type: ignore[union-attr,attr-defined]
        except (EOFError, OSError):
            if self._stopping.is_set():
                # Shutting down: never start a writer again; unacked messages come back.
                return False
            return self._restart_writer()
        with self._pending_lock:
            pending = self._pending[sequence]
        # Acknowledge before the batch leaves `_pending`: stop() disconnects once nothing
        # is pending, and the PUBACKs must already be queued ahead of the DISCONNECT.
        self.consumer.ack(pending.acks)
        self._account(pending.arrived, report)
        with self._all_committed:
            del self._pending[sequence]
            self._all_committed.notify_all()
        self._slots.release()
        return True

    def _restart_writer(self) -> bool:
        """Start a new writer and resend what is pending; False once it keeps dying."""
        while True:
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                log.critical("the writer process keeps exiting; giving up (nothing unacked)")
                self.failed.set()
                return False
            log.error("the writer process exited; starting it again, resending pending batches")
            self.stats.writer_restarts += 1
            if self._process is not None:
                self._process.join(1)
            time.sleep(0.5 * len(self._restarts))
            try:
                with self._channel_lock:
                    self._start_writer()
                    with self._pending_lock:
                        resend = [self._pending[key].data for key in sorted(self._pending)]
                    for data in resend:
                        self._channel.send_bytes(data)  # type: ignore[union-attr,attr-defined]
                return True
            except (EOFError, OSError):
                continue  # it died again while starting or receiving: one more death

    def _account(self, arrived: list[float], report: CommitReport) -> None:
        stats, metrics = self.stats, self.metrics
        dead = sum(report.dead_letters.values())
        stats.batches += 1
        stats.messages += report.messages
        stats.readings += report.readings
        stats.dead_letters += dead
        stats.storage_retries += report.retries
        metrics.received.inc(report.messages)
        metrics.stored.inc(report.messages - dead)
        metrics.readings.inc(report.readings)
        metrics.commit_seconds.observe(report.seconds)
        metrics.storage_retries.inc(report.retries)
        for reason, count in report.dead_letters.items():
            metrics.dead_lettered.labels(reason).inc(count)
        if self._on_commit is not None:
            self._on_commit(arrived, time.monotonic())
