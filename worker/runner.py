"""The RQ worker class: fork-per-job, horses that die with their worker, bounded abandonment.

Differences from `rq.Worker` and why:

- Heartbeat TTL = monitoring interval + `heartbeat_grace` (rq hard-codes +60 s), so a job whose
  worker vanished is noticed in a configurable, bounded time.
- A heartbeat that fails because Redis is restarting is logged and retried at the next interval
  instead of ending the worker's loop (rq lets the ConnectionError escape `monitor_work_horse`).
- Each work horse asks the kernel for SIGKILL when its worker dies (``PR_SET_PDEATHSIG``): rq's
  horse calls ``setpgrp()`` and would otherwise outlive a SIGKILLed worker, keep training and
  race the re-queued copy of its own job to publish.
- A stopped job's checkpoint is removed (the user asked for it to go away); failed jobs keep
  theirs so that `rq requeue` resumes them, until the periodic clean-up (`worker.hygiene`, run
  with the registry maintenance) removes checkpoints older than the result TTL and abandoned
  hidden publish directories.
- Only the training job function runs (`jobs.spec.TRAIN_FUNCTION`): RQ would import and call
  whatever callable a job names, so anyone able to write to Redis could run any function here.
  Any other job is failed before a work horse is forked, without importing anything it names,
  and the reason is recorded in the job record (`jobs.meta`).
- A job cancelled while this worker was taking it off the queue is not run: once the horse has
  marked the job started it looks for the cancel mark (`jobs.cancellation`) and, if found,
  puts the job back to "canceled" instead of running it.

Numba: the worker process imports `core` (so horses do not pay the import) but never runs a
kernel: GNU OpenMP does not survive fork() once its thread pool exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import time
from typing import Any

import redis
from rq import Worker
from rq.defaults import DEFAULT_FAILURE_TTL
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.timeouts import JobTimeoutException
from rq.utils import now, utcformat

from jobs import meta as job_meta
from jobs.cancellation import cancel_requested
from jobs.spec import TRAIN_FUNCTION
from worker.hygiene import clean_up
from worker.settings import WorkerSettings
from worker.train import checkpoint_dir

log = logging.getLogger("worker")

PR_SET_PDEATHSIG = 1

#: File clean-up (`worker.hygiene`) runs with the registry maintenance, at most this often (s).
FILE_CLEANUP_INTERVAL_S = 600.0


class CanceledBeforeStart(Exception):
    """The job was cancelled while this worker took it off the queue: it is not run."""


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this process when its parent exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: rely on the heartbeat alone
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def one_line(text: str, limit: int = 300) -> str:
    """First non-empty line of `text`, at most `limit` characters."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def failure_reason(exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    """The one-line ``job.meta["error"]`` for an exception raised in a job."""
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return f"timed out: {one_line(str(exc))} (raise timeout_s in the spec or CNN_JOB_TIMEOUT)"
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return "abandoned: its worker stopped sending heartbeats (killed or lost)"
    name = exc_type.__name__ if exc_type is not None else "Error"
    message = one_line(str(exc)) if exc is not None else ""
    return f"{name}: {message}" if message else name


def rejection_reason(job: Job) -> str | None:
    """Why this worker refuses to run `job` (None: it is a training job).

    Reads only the name the job gives, never imports it.
    """
    try:
        func_name, instance = job.func_name, job.instance
    except Exception as exc:  # any serializer error: the data is not a call we could check
        return f"refused: the job's call cannot be read ({type(exc).__name__})"
    if func_name != TRAIN_FUNCTION or instance is not None:
        return f"refused: this worker runs only {TRAIN_FUNCTION}, not {func_name!r}"
    return None


def record_error(job: Job, reason: str, *, final: bool) -> None:
    """Put `reason` in the job record (reading the horse's latest record first)."""
    with contextlib.suppress(redis.RedisError, ValueError):
        job.meta = job.get_meta(refresh=True)
    job.meta.update(job_meta.failure_update(reason, final=final))
    try:
        job.save_meta()
    except redis.RedisError as exc:
        log.warning("could not record the failure of job %s: %s", job.id, exc)


class TrainingWorker(Worker):
    """`rq.Worker` with bounded abandonment, Redis-outage tolerance and die-with-parent horses."""

    def __init__(self, *args: Any, settings: WorkerSettings, **kwargs: Any) -> None:
        kwargs.setdefault("job_monitoring_interval", settings.job_monitoring_interval)
        kwargs.setdefault("maintenance_interval", settings.maintenance_interval)
        kwargs.setdefault("worker_ttl", settings.worker_ttl)
        kwargs.setdefault("exception_handlers", [self._on_exception])
        kwargs.setdefault("work_horse_killed_handler", self._on_horse_killed)
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.shutdown_requested = False  # SIGTERM/SIGINT: the loop must not be restarted
        self._parent_pid = os.getpid()
        self._canceled_job_id: str | None = None
        self._files_cleaned_at: float | None = None

    # -- liveness -------------------------------------------------------------------------------

    def get_heartbeat_ttl(self, job: Job) -> int:
        grace = self.settings.heartbeat_grace
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return max(1, int(min(remaining, self.job_monitoring_interval))) + grace
        return self.job_monitoring_interval + grace

    def maintain_heartbeats(self, job: Job) -> None:
        try:
            super().maintain_heartbeats(job)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("heartbeat for job %s failed (Redis unavailable: %s)", job.id, exc)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self._reregister_if_lost()

    def _reregister_if_lost(self) -> None:
        """After a Redis restart without persistence the worker's hash and set entry are gone."""
        try:
            if self.connection.hget(self.key, "birth") is None:
                log.warning(
                    "worker %s registration lost (Redis restart?): registering again", self.name
                )
                # rq refuses a birth while a hash with this name exists: the only one left is
                # the partial hash our own heartbeat just wrote.
                self.connection.delete(self.key)
                self.register_birth()
        except (redis.RedisError, ValueError) as exc:
            log.debug("re-registration check failed: %s", exc)

    # -- maintenance ------------------------------------------------------------------------------

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        now = time.monotonic()
        last = self._files_cleaned_at
        if last is None or now - last >= FILE_CLEANUP_INTERVAL_S:
            self._files_cleaned_at = now
            self.clean_up_files()

    def clean_up_files(self) -> None:
        """`worker.hygiene.clean_up`; a failure is logged, never fatal to the worker."""
        try:
            clean_up(self.settings, self.connection)
        except (redis.RedisError, OSError) as exc:
            log.warning("file clean-up skipped: %s", exc)

    # -- work horse -----------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = rejection_reason(job)
        if reason is not None:
            self.reject_job(job, queue, reason)
            return
        if numba_threads_started():
            # Forking now would hand the horse a dead OpenMP pool: fail loudly, never hang.
            raise RuntimeError(
                "the worker process ran a parallel Numba kernel; work horses cannot be forked "
                "safely (kernels must only run in horses and in `python -m worker.warmup`)"
            )
        super().execute_job(job, queue)

    def reject_job(self, job: Job, queue: Queue, reason: str) -> None:
        """Fail `job` without running it: FAILED, no retry, `reason` in its record."""
        log.warning("job %s %s", job.id, reason)
        with contextlib.suppress(redis.RedisError, ValueError):
            job.meta = job.get_meta(refresh=True)
        job.meta.update(job_meta.failure_update(reason, final=True))
        job.retries_left = 0
        job.ended_at = now()
        with self.connection.pipeline() as pipeline:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)  # where the dequeue put it
            job.set_status(JobStatus.FAILED, pipeline=pipeline)
            pipeline.hset(
                job.key,
                mapping={
                    "ended_at": utcformat(job.ended_at),
                    "retries_left": 0,
                    "meta": self.serializer.dumps(job.meta),
                },
            )
            FailedJobRegistry(
                job.origin, self.connection, job_class=self.job_class, serializer=self.serializer
            ).add(
                job,
                ttl=job.failure_ttl or DEFAULT_FAILURE_TTL,
                exc_string=reason,
                pipeline=pipeline,
            )
            job.cleanup(ttl=job.failure_ttl, pipeline=pipeline)
            pipeline.execute()

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        _die_with_parent(self._parent_pid)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Horse: mark the job started, *then* look for a cancel mark (`jobs.cancellation`)."""
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        if cancel_requested(self.connection, job.id):
            self._canceled_job_id = job.id
            raise CanceledBeforeStart(f"job {job.id} was cancelled before it started")

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if self._canceled_job_id != job.id:  # a cancel is not an error worth a traceback
            super().handle_exception(job, *exc_info)

    def _cancel_before_start(self, job: Job) -> None:
        """Undo the start: status "canceled", out of the started registry, nothing recorded."""
        self._canceled_job_id = None
        log.info("job %s was cancelled as this worker took it: not run", job.id)
        job.meta.update(job_meta.stage_update(job_meta.Stage.CANCELLED))
        with self.connection.pipeline() as pipeline:
            job.set_status(JobStatus.CANCELED, pipeline=pipeline)
            job.save_meta()
            self.cleanup_execution(job, pipeline=pipeline)
            CanceledJobRegistry(
                job.origin, self.connection, job_class=self.job_class, serializer=self.serializer
            ).add(job, pipeline=pipeline)
            pipeline.execute()

    # -- failure bookkeeping ----------------------------------------------------------------------

    def _on_exception(self, job: Job, exc_type: Any, exc: Any, tb: Any) -> bool:
        """Exception handler: runs in the horse (job errors) or in a cleaning worker (abandoned)."""
        if exc_type is not None and issubclass(exc_type, AbandonedJobError):
            left = job.retries_left or 0
            then = f"re-queued ({left - 1} retries left after this)" if left else "no retries left"
            record_error(job, f"{failure_reason(exc_type, exc)}; {then}", final=not left)
        elif not job_meta.has_error(job.meta):
            record_error(job, failure_reason(exc_type, exc), final=True)
        return True

    def _on_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """Runs in the worker when a horse died without reporting (SIGKILL, segfault, OOM)."""
        how = f"exit status {ret_val}"
        if ret_val and os.WIFSIGNALED(ret_val):
            sig = os.WTERMSIG(ret_val)
            name = signal.Signals(sig).name if sig in _SIGNALS else "?"
            how = f"signal {sig} ({name})"
        elif ret_val and os.WIFEXITED(ret_val):
            how = f"exit status {os.WEXITSTATUS(ret_val)}"
        left = job.retries_left or 0
        then = f"re-queued ({left - 1} retries left after this)" if left else "no retries left"
        record_error(job, f"work horse died ({how}); {then}", final=not left)

    def handle_job_failure(
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = ""
    ) -> None:
        if self._canceled_job_id == job.id:
            self._cancel_before_start(job)
            return
        stopped = self._stopped_job_id == job.id  # rq's marker for send_stop_job_command
        if stopped:
            record_error(job, "stopped by user", final=True)
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string
        )
        if stopped:
            remove_checkpoint(self.settings, job.id)

    def handle_warm_shutdown_request(self) -> None:
        self.shutdown_requested = True
        log.info("worker %s: warm shut-down requested: finishing the current job first", self.name)


_SIGNALS = {int(s) for s in signal.Signals}


def numba_threads_started() -> bool:
    """Whether this process has launched Numba's parallel thread pool (unsafe to fork after)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(parallel, "_is_initialized", False))


def remove_checkpoint(settings: WorkerSettings, job_id: str) -> None:
    path = checkpoint_dir(settings, job_id)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
