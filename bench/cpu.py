"""CPU accounting shared by the benchmarks."""

from __future__ import annotations

import psutil

#: The states in which a core counts as busy (psutil.cpu_times fields).
_BUSY = ("user", "nice", "system", "irq", "softirq", "steal")


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (every core, anyone's work)."""
    times = psutil.cpu_times()
    return float(sum(getattr(times, name, 0.0) for name in _BUSY))
