"""`python -m worker` / `cnn worker`: warm the Numba cache, then run the RQ training worker.

Start-up order:
1. read `WorkerSettings` from the environment (fails fast on a malformed variable);
2. warm the compile cache in a *subprocess* (`python -m worker.warmup`): this process forks a
   work horse per job and must never run a parallel Numba kernel itself. Skipped when the
   warm-up's marker says the cache is already warm for this code (`worker.warm_marker`);
3. import `core` (no kernel runs) so each forked horse inherits the imported modules;
4. run the worker loop, restarting it if it stops for any reason other than a shutdown request
   (e.g. Redis gone for longer than the connection's retry budget).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Sequence

from core.settings import redact_url, settings_table
from worker.settings import SettingsError, WorkerSettings

log = logging.getLogger("worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="RQ training worker. Settings come from CNN_* environment variables "
        "(--settings-table lists them).",
    )
    parser.add_argument(
        "--settings-table", action="store_true", help="print the settings table and exit"
    )
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--max-jobs", type=int, default=None, help="quit after this many jobs")
    parser.add_argument("--queues", help="comma-separated queue names (overrides CNN_QUEUES)")
    parser.add_argument("--name", help="worker name (overrides CNN_WORKER_NAME)")
    parser.add_argument(
        "--warmup", choices=("block", "background", "off"), help="overrides CNN_WARMUP"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a training worker until SIGTERM/SIGINT (or the queues drain with --burst).

    Returns:
        the process exit status.
    """
    args = build_parser().parse_args(argv)
    if args.settings_table:
        print(settings_table(WorkerSettings))
        return 0
    overrides = {
        name: value
        for name, value in (
            ("queues", args.queues),
            ("worker_name", args.name),
            ("warmup", args.warmup),
        )
        if value
    }
    try:
        settings = WorkerSettings.from_env(**overrides)
    except SettingsError as exc:
        print(f"python -m worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    if settings.numba_cache_dir is not None:
        settings.numba_cache_dir.mkdir(parents=True, exist_ok=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)

    warmup = start_warmup(settings)
    if warmup is not None and settings.warmup == "block":
        wait_warmup(warmup, settings.warmup_timeout)

    _preimport()
    return run_worker(settings, burst=args.burst, max_jobs=args.max_jobs)


def start_warmup(settings: WorkerSettings) -> subprocess.Popen[bytes] | None:
    """Start `python -m worker.warmup` (None when CNN_WARMUP=off or the warm-up's marker says
    the compile cache is warm for this code: `worker.warm_marker`)."""
    if settings.warmup == "off":
        log.info("compile-cache warm-up disabled (CNN_WARMUP=off)")
        return None
    from worker import warm_marker

    if warm_marker.read_marker() is not None:
        log.info(
            "warm-up skipped: the compile cache is warm for this code (marker %s)",
            warm_marker.marker_path(),
        )
        return None
    log.info(
        "warming the Numba compile cache (NUMBA_CACHE_DIR=%s, mode %s)",
        settings.numba_cache_dir or "<per-machine default>",
        settings.warmup,
    )
    return subprocess.Popen([sys.executable, "-m", "worker.warmup"], stdin=subprocess.DEVNULL)


def wait_warmup(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the warm-up; a failure only costs the first job its compile time."""
    started = time.monotonic()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        log.warning("warm-up did not finish within %.0f s: killed; jobs compile on demand", timeout)
        return
    elapsed = time.monotonic() - started
    if code == 0:
        log.info("warm-up finished in %.2f s", elapsed)
    else:
        log.warning(
            "warm-up exited with status %s after %.2f s; jobs compile on demand", code, elapsed
        )


def _preimport() -> None:
    """Import the training stack once so forked horses start with it (runs no kernel)."""
    started = time.monotonic()
    import core.artifacts
    import core.datasets
    import core.model
    import core.repository
    import core.training
    import worker.jobs

    del core, worker

    log.info("imported the training stack in %.2f s", time.monotonic() - started)


def run_worker(
    settings: WorkerSettings, *, burst: bool = False, max_jobs: int | None = None
) -> int:
    """The worker loop, restarted with backoff if it ends without a shutdown request."""
    from rq.serializers import JSONSerializer

    from jobs.connection import connect
    from worker.runner import TrainingWorker, numba_threads_started

    backoff = 1.0
    while True:
        connection = connect(settings.redis_url, connect_timeout=settings.redis_timeout_s)
        worker = TrainingWorker(
            list(settings.queues),
            connection=connection,
            name=settings.worker_name,
            serializer=JSONSerializer,
            settings=settings,
        )
        log.info(
            "cnn worker ready: name=%s queues=%s redis=%s models=%s abandoned-job bound=%d s",
            worker.name,
            ",".join(settings.queues),
            redact_url(settings.redis_url),
            settings.models_dir,
            settings.abandoned_after(),
        )
        started = time.monotonic()
        try:
            worker.work(burst=burst, max_jobs=max_jobs, logging_level=settings.log_level)
        except Exception:
            log.exception("worker loop crashed")
        finally:
            connection.close()
        if burst or max_jobs is not None or worker.shutdown_requested:
            return 0
        if numba_threads_started():
            log.critical("Numba threads run in the worker process: exiting to be restarted")
            return 3
        if time.monotonic() - started > 60:
            backoff = 1.0
        log.warning("worker loop ended unexpectedly; restarting in %.0f s", backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
