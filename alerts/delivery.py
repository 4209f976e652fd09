"""Delivery of the outbox: at least once, in order per channel, retried with backoff.

Each channel (a subscription, or an alert rule's own target) is one lane: only its oldest
notification may be sent, and the next one only after the receiver took it. Lanes run side by
side on a thread pool, so one slow or dead receiver holds up only its own lane; ingest never
waits for any of them (it only writes changes; see storage/migrations/0010_notifications.sql).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from storage.outbox import (
    PendingNotification,
    delivered,
    fetch_channel,
    fetch_heads,
    postpone,
)

from .endpoints import DeliveryFailed, Senders

log = logging.getLogger(__name__)

#: How many notifications of one lane are sent in a row before the lane yields its thread.
LANE_RUN = 200


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of one notification, for subscription status members and metrics."""

    tenant: str
    channel: str
    success: bool
    at: datetime
    reason: str | None = None


def backoff_seconds(attempts: int, maximum: float) -> float:
    """Seconds before the next attempt after `attempts` failures: 1, 2, 4 … up to `maximum`."""
    return float(min(maximum, 2.0 ** max(0, attempts - 1)))


class Deliverer:
    """Sends what waits in the outbox; call `run_once` in a loop (the Notifier does)."""

    def __init__(
        self,
        pool: ConnectionPool,
        senders: Senders,
        *,
        lanes: int = 8,
        max_backoff: float = 300.0,
        on_outcome: Callable[[DeliveryOutcome], None] = lambda outcome: None,
    ) -> None:
        self._pool = pool
        self._senders = senders
        self._lanes = lanes
        self._max_backoff = max_backoff
        self._on_outcome = on_outcome
        self._executor = ThreadPoolExecutor(lanes, thread_name_prefix="notify-lane")
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run_once(self) -> int:
        """Start a lane for every channel whose head is due; the number started."""
        with self._lock:
            free = self._lanes - len(self._busy)
            busy = list(self._busy)
        if free <= 0:
            return 0
        with self._pool.connection() as conn:
            heads = fetch_heads(conn, busy, free)
        for head in heads:
            with self._lock:
                self._busy.add((head.tenant, head.channel))
            self._executor.submit(self._run_lane, head)
        return len(heads)

    def idle(self) -> bool:
        """Whether no lane is running."""
        with self._lock:
            return not self._busy

    def stop(self) -> None:
        """Finish the sends in progress (each lane stops after its current one)."""
        self._stopping.set()
        self._executor.shutdown(wait=True)

    def _run_lane(self, head: PendingNotification) -> None:
        lane = (head.tenant, head.channel)
        try:
            self._deliver_in_order(head)
        except Exception:  # noqa: BLE001 - a lane must never die silently
            log.exception("delivery lane %s/%s failed", head.tenant, head.channel)
        finally:
            with self._lock:
                self._busy.discard(lane)

    def _deliver_in_order(self, head: PendingNotification) -> None:
        queue = [head]
        sent = 0
        while queue and not self._stopping.is_set():
            item = queue.pop(0)
            if not self._deliver(item):
                return
            sent += 1
            if not queue and sent < LANE_RUN:
                with self._pool.connection() as conn:
                    queue = fetch_channel(conn, item.tenant, item.channel, item.id, 50)

    def _deliver(self, item: PendingNotification) -> bool:
        try:
            self._senders.send(item.endpoint, item.headers, item.payload)
        except DeliveryFailed as failure:
            delay = backoff_seconds(item.attempts + 1, self._max_backoff)
            log.info(
                "notification %d for %s/%s not delivered (%s); retry in %.0f s",
                item.id, item.tenant, item.channel, failure.reason, delay,
            )  # fmt: skip
            with self._pool.connection() as conn:
                postpone(conn, item.id, delay, failure.reason)
            self._report(item, False, failure.reason)
            return False
        with self._pool.connection() as conn:
            delivered(conn, item.id)
        self._report(item, True, None)
        return True

    def _report(self, item: PendingNotification, success: bool, reason: str | None) -> None:
        outcome = DeliveryOutcome(item.tenant, item.channel, success, datetime.now(UTC), reason)
        try:
            self._on_outcome(outcome)
        except Exception:  # noqa: BLE001 - status bookkeeping must not stop delivery
            log.exception("recording the delivery outcome failed")
