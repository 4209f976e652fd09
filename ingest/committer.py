"""Turns one batch of raw messages into committed rows: build, write, retry until committed.

Runs in the writer process (see writer_process.py). A batch is never skipped: connection
failures are retried with backoff until the commit succeeds, and a batch the database
rejects for any other reason is committed as dead letters, so every message is kept.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from storage.records import Batch, DeviceActivity
from storage.writer import BatchWriter

from .message import RawMessage
from .pipeline import BatchBuilder, BuiltBatch
from .storage_errors import dead_letter_all

log = logging.getLogger(__name__)

#: Device activity counters are written with a batch at most this often: one row per device
#: per batch was an eighth of the database's work. They are statistics ("received"); a
#: crash loses at most these seconds of them, never a reading.
ACTIVITY_FLUSH_SECONDS = 5.0
#: A commit slower than this is logged: the broker's keepalive and redelivery depend on it.
SLOW_COMMIT_SECONDS = 5.0


#: SQLSTATE classes worth retrying the same batch for: connection exceptions, transaction
#: rollbacks (deadlock, serialization), insufficient resources, operator intervention
#: (shutdown, restart), system errors. Anything else fails the same way every time.
TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "58")


def is_transient(error: psycopg.Error) -> bool:
    """Whether retrying the same batch can succeed (no SQLSTATE: the connection failed)."""
    state = error.sqlstate
    return state is None or state.startswith(TRANSIENT_SQLSTATE_PREFIXES)


@dataclass(slots=True)
class CommitReport:
    """What one committed batch held, sent back to the process that acknowledges it."""

    messages: int
    readings: int
    dead_letters: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    seconds: float = 0.0


class BatchCommitter:
    """Build a batch, write it in one transaction, and retry until it is committed."""

    def __init__(
        self,
        builder: BatchBuilder,
        writer: BatchWriter,
        connect: Callable[[], psycopg.Connection],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._builder = builder
        self._writer = writer
        self._connect = connect
        self._sleep = sleep
        self._connection: psycopg.Connection | None = None
        self._activity: dict[tuple[str, str], DeviceActivity] = {}
        self._activity_flushed = time.monotonic()

    def build(self, messages: Sequence[RawMessage]) -> BuiltBatch:
        """Decode and map `messages` (CPU only; may run while another batch commits)."""
        return self._builder.build(messages)

    def commit(self, built: BuiltBatch) -> CommitReport:
        """Write a built batch in one transaction; return only once it is committed."""
        started = time.monotonic()
        self._hold_activity(built.batch, started)
        retries = self._write_until_committed(built)
        elapsed = time.monotonic() - started
        if elapsed > SLOW_COMMIT_SECONDS:
            log.warning(
                "batch of %d messages took %.1f s to commit (%d retries)",
                len(built.messages),
                elapsed,
                retries,
            )
        return CommitReport(
            messages=len(built.messages),
            readings=built.readings,
            dead_letters=Counter(letter.reason for letter in built.batch.dead_letters),
            retries=retries,
            seconds=elapsed,
        )

    def close(self) -> None:
        """Write the device activity still held, then close the database connection."""
        if self._activity:
            built = BuiltBatch(Batch(activity=list(self._activity.values())), [], 0)
            self._activity.clear()
            try:
                self._connection = self._connection or self._connect()
                self._writer.write(self._connection, built.batch)
            except psycopg.Error as error:
                log.warning("device activity of the last seconds not written (%s)", error)
        self._discard_connection()

    def _hold_activity(self, batch: Batch, now: float) -> None:
        """Fold the batch's activity into what is held; attach it all when a flush is due."""
        for item in batch.activity:
            key = (item.tenant, item.device_id)
            held = self._activity.get(key)
            if held is not None:
                item = DeviceActivity(
                    item.tenant,
                    item.device_id,
                    held.messages + item.messages,
                    held.readings + item.readings,
                    max(held.last_message_at, item.last_message_at),
                )
            self._activity[key] = item
        if now - self._activity_flushed >= ACTIVITY_FLUSH_SECONDS:
            batch.activity = list(self._activity.values())
            self._activity.clear()
            self._activity_flushed = now
        else:
            batch.activity = []

    def _write_until_committed(self, built: BuiltBatch) -> int:
        delay, retries = 0.2, 0
        while True:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                self._writer.write(self._connection, built.batch)
                return retries
            except psycopg.Error as error:
                if not is_transient(error):
                    self._reject(built, error)
                else:
                    log.warning("batch not committed (%s); retrying in %.1f s", error, delay)
            except Exception as error:  # noqa: BLE001
                self._reject(built, error)
            retries += 1
            self._discard_connection()
            self._sleep(delay)
            delay = min(delay * 2, 10.0)

    @staticmethod
    def _reject(built: BuiltBatch, error: Exception) -> None:
        # Not a connectivity problem (a constraint, a value the database refuses, a bug):
        # this batch can never be written as it is. Keep every message whole in the
        # dead-letter store rather than block ingest behind it.
        log.error("batch rejected (%s); dead-lettering its messages", error, exc_info=True)
        built.batch = dead_letter_all(built, f"{type(error).__name__}: {error}")

    def _discard_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None
