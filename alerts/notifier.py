"""The notification service (`stadspuls notify`): dispatch changes, deliver the outbox.

Runs apart from ingest and the API, so a slow or dead receiver never slows either. One
notifier is active per database (an advisory lock): two would race on the lanes' order. A
second one waits as a standby and takes over when the first stops or dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from storage.database import connect, make_pool
from storage.subscription_store import record_delivery

from .delivery import Deliverer, DeliveryOutcome
from .dispatcher import Dispatcher
from .endpoints import Senders

log = logging.getLogger(__name__)

#: pg_advisory_lock key of the active notifier ("stadspuls notify").
NOTIFIER_LOCK = 0x5354_4E4F


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    """How the notifier polls and delivers (from Settings; see the README)."""

    poll_seconds: float = 0.2
    lanes: int = 8
    timeout_seconds: float = 10.0
    max_backoff_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    """Work that needs one runner per database (the active notifier), every `seconds`."""

    name: str
    seconds: float
    #: Does the work on the timers' connection (no transaction open); returns how many
    #: things it changed, for the log.
    run: Callable[[psycopg.Connection], int]


class Notifier:
    """Dispatcher and deliverer on one database until `stop` is set."""

    def __init__(
        self,
        database_url: str,
        options: NotifierOptions,
        tasks: Sequence[PeriodicTask] = (),
    ) -> None:
        self._url = database_url
        self._options = options
        self._tasks = tasks
        #: Set once this notifier holds the lock and works (tests wait for it).
        self.active = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Wait for the notifier lock, then dispatch and deliver until `stop` is set."""
        with connect(self._url, autocommit=True) as lock_connection:
            if not self._acquire(lock_connection, stop):
                return
            self.active.set()
            log.info("notifier active")
            self._work(stop)

    def _acquire(self, conn: psycopg.Connection, stop: threading.Event) -> bool:
        while not stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", [NOTIFIER_LOCK]).fetchone()
            if row and row[0]:
                return True
            stop.wait(1.0)
        return False

    def _work(self, stop: threading.Event) -> None:
        options = self._options
        senders = Senders(options.timeout_seconds)
        pool = make_pool(self._url, min_size=1, max_size=options.lanes + 2)
        pool.open(wait=True, timeout=30)
        dispatcher = Dispatcher(lambda: connect(self._url))
        deliverer = Deliverer(
            pool,
            senders,
            lanes=options.lanes,
            max_backoff=options.max_backoff_seconds,
            on_outcome=_status_recorder(pool),
        )
        timers = Timers(self._url, self._tasks)
        try:
            while not stop.is_set():
                timers.run_due()
                worked = self._round(dispatcher, deliverer)
                if not worked:
                    stop.wait(options.poll_seconds)
        finally:
            timers.close()
            deliverer.stop()
            dispatcher.close()
            senders.close()
            pool.close()

    @staticmethod
    def _round(dispatcher: Dispatcher, deliverer: Deliverer) -> bool:
        """One round; False when there was nothing to do (the loop then sleeps)."""
        try:
            dispatched = dispatcher.run_once() + dispatcher.run_periodic()
            started = deliverer.run_once()
        except psycopg.OperationalError as error:
            log.warning("notifier round failed (%s); retrying", error)
            dispatcher.close()
            return False
        return bool(dispatched or started)


class Timers:
    """Runs the periodic tasks when due; a failing task is logged and tried next period."""

    def __init__(self, database_url: str, tasks: Sequence[PeriodicTask]) -> None:
        self._url = database_url
        self._tasks = tasks
        self._connection: psycopg.Connection | None = None
        started = time.monotonic()
        self._due = {task.name: started + task.seconds for task in tasks}

    def run_due(self) -> None:
        """Run every task whose time has come."""
        for task in self._tasks:
            now = time.monotonic()
            if now < self._due[task.name]:
                continue
            self._due[task.name] = now + task.seconds
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = connect(self._url)
                changed = task.run(self._connection)
                if changed:
                    log.info("%s: %d changes", task.name, changed)
            except Exception:  # noqa: BLE001 - a timer must not stop delivery
                log.exception("%s failed; trying again in %.0f s", task.name, task.seconds)
                self.close()

    def close(self) -> None:
        """Close the timers' connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _status_recorder(pool) -> Callable[[DeliveryOutcome], None]:  # type: ignore[no-untyped-def]
    """Keeps the NGSI-LD status members of a subscription (timesSent, lastSuccess, ...)."""

    def record(outcome: DeliveryOutcome) -> None:
        if outcome.channel.startswith("rule:"):
            return  # an alert rule's own target: no subscription to account to
        with pool.connection() as conn:
            record_delivery(
                conn,
                outcome.tenant,
                outcome.channel,
                success=outcome.success,
                at=outcome.at,
                reason=outcome.reason,
            )

    return record
