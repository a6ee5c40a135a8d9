"""Start-up overhead of a job: cold vs warm Numba compile cache (numbers printed with -s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.queue import JobQueue
from jobs.status import JobStatus
from tests.worker.helpers import job_record, tiny_spec, wait_until_ended

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_warm_compile_cache_makes_the_first_step_fast(
    start_worker, job_queue: JobQueue, tmp_path: Path
) -> None:
    cold_cache = tmp_path / "numba-cache"
    start_worker("cold", NUMBA_CACHE_DIR=str(cold_cache), CNN_WARMUP="off")
    spec = tiny_spec("digits-startup")

    cold = wait_until_ended(job_queue, job_queue.submit(spec), 300)  # compiles, fills the cache
    warm = wait_until_ended(job_queue, job_queue.submit(spec), 300)  # a new horse, same cache

    assert cold.status is warm.status is JobStatus.FINISHED
    cold_s = job_record(job_queue, cold.id)["timings"]["startup_to_first_step_s"]
    warm_s = job_record(job_queue, warm.id)["timings"]["startup_to_first_step_s"]
    print(f"\njob start-up to first step: cold cache {cold_s:.2f} s, warm cache {warm_s:.2f} s")
    assert any(cold_cache.rglob("*.nbi")), "kernels were not cached"
    assert warm_s < cold_s / 2


def test_worker_warms_the_cache_before_taking_jobs(
    start_worker, job_queue: JobQueue, tmp_path: Path
) -> None:
    cache = tmp_path / "numba-cache"
    worker = start_worker("warm", NUMBA_CACHE_DIR=str(cache), CNN_WARMUP="block")
    match = worker.wait_for_log(r"warm-up finished in ([0-9.]+) s")
    info = wait_until_ended(job_queue, job_queue.submit(tiny_spec("digits-warm")), 300)
    assert info.status is JobStatus.FINISHED
    startup = job_record(job_queue, info.id)["timings"]["startup_to_first_step_s"]
    print(f"\nwarm-up {match.group(1)} s at worker start; job start-up {startup:.2f} s")
    assert startup < float(match.group(1)) / 2  # the compile time was paid before the job
