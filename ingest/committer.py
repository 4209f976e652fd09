"""Turns one batch of raw messages into committed rows: build, write, retry until committed.

Runs in the writer process (see writer_process.py). A batch is never skipped: connection
failures are retried with backoff until the commit succeeds, and a batch the database
rejects for any other reason is committed as dead letters, so every message is kept.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from storage.records import Batch, DeviceActivity
from storage.rollup_refresh import refresh_rollups
from storage.writer import BatchWriter

from .message import RawMessage
from .pipeline import BatchBuilder, BuiltBatch, dead_letter

log = logging.getLogger(__name__)

#: A step run in each batch's transaction with the batch's observation rows.
BatchStep = Callable[[psycopg.Cursor, Sequence[tuple[Any, ...]]], None]

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
        rollup_refresh_seconds: float = 0.0,
        alerts: BatchStep | None = None,
    ) -> None:
        self._builder = builder
        self._writer = writer
        self._connect = connect
        self._sleep = sleep
        self._connection: psycopg.Connection | None = None
        self._activity: dict[tuple[str, str], DeviceActivity] = {}
        self._activity_flushed = time.monotonic()
        self._retries = 0
        self._rollup_refresh_seconds = rollup_refresh_seconds
        #: Runs in each batch's transaction with its observations (alert evaluation).
        self._alerts = alerts
        self._refresher: RollupRefresher | None = None

    def start_rollup_refresh(self) -> None:
        """Start refreshing the hourly rollups in the background, if a period is configured."""
        if self._rollup_refresh_seconds > 0 and self._refresher is None:
            self._refresher = RollupRefresher(self._connect, self._rollup_refresh_seconds)
            self._refresher.start()

    def build(self, messages: Sequence[RawMessage]) -> BuiltBatch:
        """Decode and map `messages` (CPU only; may run while another batch commits)."""
        return self._builder.build(messages)

    def commit(self, built: BuiltBatch) -> CommitReport:
        """Write a built batch in one transaction; return only once it is committed."""
        started = time.monotonic()
        self._hold_activity(built.batch, started)
        self._retries = 0
        committed = self._write(built)
        elapsed = time.monotonic() - started
        if elapsed > SLOW_COMMIT_SECONDS:
            log.warning(
                "batch of %d messages took %.1f s to commit (%d retries)",
                len(built.messages),
                elapsed,
                self._retries,
            )
        return CommitReport(
            messages=len(built.messages),
            readings=sum(part.readings for part in committed),
            dead_letters=Counter(
                letter.reason for part in committed for letter in part.batch.dead_letters
            ),
            retries=self._retries,
            seconds=elapsed,
        )

    def _write(self, built: BuiltBatch) -> list[BuiltBatch]:
        """Commit `built`; if the database refuses it for good, isolate the culprit by halves.

        One message the database cannot take (a NUL character in a text, a value out of
        range) must cost only itself: the batch is split in two and each half is rebuilt
        and committed on its own, until the refused message is alone and is dead-lettered
        (`storage_error`) with the database's reason. The halves commit separately, which
        is safe: nothing is acknowledged before all of them are committed.
        """
        error = self._write_until_committed(built)
        if error is None:
            return [built]
        if len(built.messages) == 1:
            if not built.batch.observations and not built.batch.entities:
                # Even its dead letter is refused: fail loudly (the writer process restarts,
                # and the worker gives up if it keeps happening) rather than loop.
                raise RuntimeError(f"the database refuses a dead letter: {error}") from error
            log.error("message refused by the database (%s); dead-lettering it", error)
            activity = built.batch.activity
            detail = f"storage refused it: {type(error).__name__}: {error}"
            built.batch = Batch(
                dead_letters=[dead_letter(built.messages[0], "storage_error", detail, None)]
            )
            built.batch.activity = activity
            built.readings = 0
            return self._write(built)
        middle = len(built.messages) // 2
        activity = built.batch.activity  # held counters travel with the first half
        parts = []
        for half in (built.messages[:middle], built.messages[middle:]):
            part = self._builder.build(half)
            part.batch.activity, activity = activity, []
            parts.extend(self._write(part))
        return parts

    def close(self) -> None:
        """Stop the rollup refresh, write the device activity held, close the connection."""
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None
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

    def _write_until_committed(self, built: BuiltBatch) -> Exception | None:
        """Commit, retrying transient failures; the error if the database refuses for good."""
        delay = 0.2
        while True:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                self._writer.write(self._connection, built.batch, also=self._also(built.batch))
                return None
            except psycopg.Error as error:
                if not is_transient(error):
                    self._discard_connection()
                    return error
                log.warning("batch not committed (%s); retrying in %.1f s", error, delay)
            except Exception as error:  # noqa: BLE001 - a bug: keep the messages, isolate it
                log.exception("batch not written")
                self._discard_connection()
                return error
            self._retries += 1
            self._discard_connection()
            self._sleep(delay)
            delay = min(delay * 2, 10.0)

    def _also(self, batch: Batch) -> Callable[[psycopg.Cursor], None] | None:
        alerts = self._alerts
        if alerts is None or not batch.observations:
            return None
        return lambda cursor: alerts(cursor, batch.observations)

    def _discard_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None


class RollupRefresher:
    """Runs `refresh_rollups` every `seconds` in a thread, on a database connection of its own.

    Apart from the batches on purpose: a refresh that fails (or is slow) is logged and tried
    again next period, and never delays or fails a commit, so acknowledgements never wait
    for it.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        seconds: float,
        refresh: Callable[[psycopg.Connection], int] = refresh_rollups,
    ) -> None:
        self._connect = connect
        self._seconds = seconds
        self._refresh = refresh
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollup-refresh", daemon=True)
        self._connection: psycopg.Connection | None = None
        #: Refreshes that succeeded and failed, for tests and logs.
        self.runs = 0
        self.failures = 0

    def start(self) -> None:
        """Start the thread; the first refresh runs one period from now."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the refresh in progress; cancel it if it outlasts `timeout`."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive() and (connection := self._connection) is not None:
            with contextlib.suppress(psycopg.Error):
                connection.cancel_safe()
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self._seconds):
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                self._refresh(self._connection)
                self.runs += 1
            except Exception as error:  # noqa: BLE001 - logged; ingest must not notice
                self.failures += 1
                log.warning(
                    "rollup refresh failed (%s: %s); retrying in %.0f s",
                    type(error).__name__,
                    error,
                    self._seconds,
                )
                self._close()
        self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()
