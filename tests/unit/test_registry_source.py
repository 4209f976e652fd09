"""The in-memory device registry snapshot: first load waits, reloads keep the old on failure."""

from __future__ import annotations

import pytest

from devices.registry import DeviceRegistry
from ingest.registry_source import MIN_RELOAD_INTERVAL, RegistrySource


class Loads:
    """A load function that fails the first `failures` times, counting its calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> DeviceRegistry:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unreachable")
        return DeviceRegistry([], [])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_first_load_waits_for_the_database_with_backoff():
    clock, loads = Clock(), Loads(failures=3)
    RegistrySource(loads, 30.0, clock=clock, sleep=clock.sleep)
    assert loads.calls == 4
    assert clock.slept == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(("elapsed", "reloads"), [(29.9, 0), (30.0, 1), (95.0, 1)])
def test_the_registry_is_reloaded_once_stale(elapsed, reloads):
    clock, loads = Clock(), Loads()
    source = RegistrySource(loads, 30.0, clock=clock, sleep=clock.sleep)
    clock.now += elapsed
    source.current()
    assert loads.calls == 1 + reloads


def test_a_failed_reload_keeps_the_previous_registry():
    clock, loads = Clock(), Loads()
    source = RegistrySource(loads, 30.0, clock=clock, sleep=clock.sleep)
    first = source.current()
    loads.failures = 10
    clock.now += 31
    assert source.current() is first


def test_an_unknown_device_reloads_at_once_but_not_more_often_than_the_minimum():
    clock, loads = Clock(), Loads()
    source = RegistrySource(loads, 30.0, clock=clock, sleep=clock.sleep)
    assert source.reload_now() is None  # loaded just now
    clock.now += MIN_RELOAD_INTERVAL
    assert source.reload_now() is not None
    assert source.reload_now() is None
    assert loads.calls == 2
