"""Timing helpers of `bench.core_ops`: rates from median step times, which stay meaningful when
other processes share the cores, plus the CPU time each step really used."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Rate:
    """Images per second of repeated steps, by the wall clock and by CPU time."""

    images_per_s: float  # from the median step time
    # images per CPU-second of the process (all threads, spinning included): the work rate
    # that does not depend on how much of the shared cores other processes left us; 0 if the
    # CPU clock did not move
    images_per_cpu_s: float


@dataclass
class Result:
    """One framework's figures for one net; None where it was not measured."""

    train_ips: float | None = None
    lat1_us: float | None = None
    inf64_ips: float | None = None
    train_cpu: float | None = None  # images per CPU-second
    inf64_cpu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def throughput(step: Callable[[], Any], batch: int, budget: float, min_steps: int) -> Rate:
    """Rate of repeated ``step()`` calls (each `batch` images) over about `budget` seconds and
    at least `min_steps` calls."""
    times: list[float] = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    while len(times) < min_steps or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_per_step = (time.process_time() - cpu0) / len(times)
    return Rate(
        images_per_s=batch / float(np.median(times)),
        images_per_cpu_s=batch / cpu_per_step if cpu_per_step else 0.0,
    )


def median_us(call: Callable[[], Any], budget: float, min_calls: int = 20) -> float:
    """Median microseconds of ``call()`` over about `budget` seconds, at least `min_calls`."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6


def warm(call: Callable[[], Any], n: int) -> None:
    """Call `n` times untimed (first-run compiles, caches, thread pools)."""
    for _ in range(n):
        call()
