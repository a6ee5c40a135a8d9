"""How long tests wait for events before they give up. These limits guard hangs only.

A test waits for an event (a log line, a status, a file) and polls until it happens; the limit
only decides when a stuck wait becomes a failure. It never says how fast something must be:
speed is measured in `bench/` (`python -m bench.core_ops`, `bench.serving`), not asserted in
tests. The limits are generous because the suite must pass on a fresh clone while other
processes load both cores.
"""

from __future__ import annotations

#: Waits for something that takes well under a second on a quiet machine: a repository scan
#: picking up a new version, a state change, an RPC's answer, a process exiting after a signal.
EVENT_LIMIT_S = 120.0

#: Waits for a process that may compile every Numba kernel first: a worker's start-up warm-up,
#: a server loading (and warming) a model, a job on an empty compile cache. A cold compile took
#: 117 s on a loaded 2-core machine; it may take several minutes.
COLD_START_LIMIT_S = 900.0

#: pytest-timeout for a test that waits for one cold start: the start plus the suite's default
#: per-test timeout (pyproject.toml) for everything else the test does.
COLD_START_TEST_TIMEOUT_S = COLD_START_LIMIT_S + 600.0
