"""Start-up of a job: the Numba compile cache. A job on a warm cache (filled by an earlier job,
or by the worker's warm-up before it took any job) compiles nothing: it adds no cache entry
and rewrites none. The start-up times are printed with -s; speed is not asserted here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.queue import JobQueue
from jobs.status import JobStatus
from tests.support.limits import COLD_START_LIMIT_S, COLD_START_TEST_TIMEOUT_S
from tests.support.workers import wait_until_ended
from tests.worker.helpers import job_record, tiny_spec

# Each test starts on an empty compile cache: a cold compile (minutes on a loaded machine).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(COLD_START_TEST_TIMEOUT_S),
]

#: A tiny job once its kernels are compiled (guards hangs only).
JOB_LIMIT_S = 300.0


def _cache_entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Every file of a Numba cache with its (mtime in ns, size): a compile adds or rewrites
    index (.nbi) and data (.nbc) files, a load from the cache only reads them."""
    return {
        str(path.relative_to(cache)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in cache.rglob("*")
        if path.is_file()
    }


def test_a_job_on_a_warm_compile_cache_compiles_nothing(
    start_worker, job_queue: JobQueue, tmp_path: Path
) -> None:
    cold_cache = tmp_path / "numba-cache"
    start_worker("cold", NUMBA_CACHE_DIR=str(cold_cache), CNN_WARMUP="off")
    spec = tiny_spec("digits-startup")

    cold = wait_until_ended(job_queue, job_queue.submit(spec), COLD_START_LIMIT_S)  # compiles
    assert cold.status is JobStatus.FINISHED
    assert any(cold_cache.rglob("*.nbi")), "kernels were not cached"
    filled = _cache_entries(cold_cache)
    warm = wait_until_ended(job_queue, job_queue.submit(spec), JOB_LIMIT_S)  # a new horse

    assert warm.status is JobStatus.FINISHED
    assert _cache_entries(cold_cache) == filled
    cold_s = job_record(job_queue, cold.id)["timings"]["startup_to_first_step_s"]
    warm_s = job_record(job_queue, warm.id)["timings"]["startup_to_first_step_s"]
    print(f"\njob start-up to first step: cold cache {cold_s:.2f} s, warm cache {warm_s:.2f} s")


def test_worker_warms_the_cache_before_taking_jobs(
    start_worker, job_queue: JobQueue, tmp_path: Path
) -> None:
    cache = tmp_path / "numba-cache"
    worker = start_worker(
        "warm",
        NUMBA_CACHE_DIR=str(cache),
        CNN_WARMUP="block",
        CNN_WARMUP_TIMEOUT=str(COLD_START_LIMIT_S),
    )
    log = worker.log_text()  # start_worker returned once the worker listens for jobs
    warmed = re.search(r"warm-up finished in ([0-9.]+) s", log)
    assert warmed, log
    assert warmed.start() < log.index("*** Listening on")
    filled = _cache_entries(cache)
    assert filled, "the warm-up cached nothing"

    info = wait_until_ended(job_queue, job_queue.submit(tiny_spec("digits-warm")), JOB_LIMIT_S)

    assert info.status is JobStatus.FINISHED
    assert _cache_entries(cache) == filled  # the job found every kernel in the cache
    startup = job_record(job_queue, info.id)["timings"]["startup_to_first_step_s"]
    print(f"\nwarm-up {warmed.group(1)} s at worker start; job start-up {startup:.2f} s")
