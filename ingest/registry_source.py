"""The device registry as the hot path sees it: an in-memory snapshot, reloaded now and then."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from devices.registry import DeviceRegistry

log = logging.getLogger(__name__)

#: An unknown device triggers a reload, but not more often than this (a flood of unknown
#: devices must not turn into a flood of registry queries).
MIN_RELOAD_INTERVAL = 1.0


class RegistrySource:
    """Hands out the current registry; reloads it when stale; keeps the old one if loading fails."""

    def __init__(
        self,
        load: Callable[[], DeviceRegistry],
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._load = load
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._registry = self._first_load(sleep)
        self._loaded_at = clock()

    def _first_load(self, sleep: Callable[[float], None]) -> DeviceRegistry:
        # Nothing can be decoded without a registry: wait for the database, however long.
        delay = 0.5
        while True:
            try:
                return self._load()
            except Exception as error:  # noqa: BLE001
                log.warning("device registry not loaded (%s); retrying in %.1f s", error, delay)
                sleep(delay)
                delay = min(delay * 2, 10.0)

    def current(self) -> DeviceRegistry:
        """The registry to decode the next batch with."""
        if self._clock() - self._loaded_at >= self._refresh:
            self._reload()
        return self._registry

    def reload_now(self) -> DeviceRegistry | None:
        """A freshly loaded registry (a device was unknown), or None if one was loaded just now."""
        if self._clock() - self._loaded_at < MIN_RELOAD_INTERVAL:
            return None
        self._reload()
        return self._registry

    def _reload(self) -> None:
        with self._lock:
            try:
                self._registry = self._load()
            except Exception as error:  # noqa: BLE001 - keep ingesting with the old snapshot
                log.warning("device registry not reloaded (%s); keeping the previous one", error)
            self._loaded_at = self._clock()
