"""CPU time of processes over a wall-clock window, and the summary row of one load level.

Latency, throughput and CPU of a level are all taken over the same window, so CPU per request
and the share of the cores in use describe exactly the requests that were counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) used so far by `pid` (None: this process)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_in_window(pids: Sequence[int | None], begin: float, end: float) -> list[float]:
    """Sleep until wall-clock `begin`, then `end`; CPU seconds each of `pids` used in between."""
    time.sleep(max(0.0, begin - time.time()))
    before = [process_cpu(pid) for pid in pids]
    time.sleep(max(0.0, end - time.time()))
    return [process_cpu(pid) - b for pid, b in zip(pids, before, strict=True)]


def summarise(
    concurrency: int,
    latencies_s: Sequence[float],
    failed: int,
    duration: float,
    server_cpu: float,
    client_cpu: float,
) -> dict[str, Any]:
    """The row of one level: latency percentiles (us), requests/s, CPU per request (us).

    Args:
        concurrency: clients (connections or threads) of the level.
        latencies_s: seconds of each request that ended inside the window.
        failed: failed requests, as the load generator counts them.
        duration: the window, seconds.
        server_cpu, client_cpu: CPU seconds of the server (or echo) and the load generator
            in the window.
    """
    arr = np.asarray(latencies_s, dtype=np.float64)
    n = len(arr)
    return {
        "concurrency": concurrency,
        "requests": n,
        "failed": failed,
        "p50_us": float(np.percentile(arr, 50) * 1e6) if n else float("nan"),
        "p99_us": float(np.percentile(arr, 99) * 1e6) if n else float("nan"),
        "throughput": n / duration,
        # CPU time per completed request in the measured window, microseconds
        "server_cpu_us": server_cpu / max(n, 1) * 1e6,
        "client_cpu_us": client_cpu / max(n, 1) * 1e6,
        "cpu_busy": (server_cpu + client_cpu) / duration / (os.cpu_count() or 1),
    }
