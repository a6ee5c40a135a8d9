"""Submit, inspect, cancel and watch training jobs (the code behind `cnn train ...`).

Everything goes through RQ with the JSON serializer: the payload is the validated spec as JSON,
the function is named by path string (``worker.jobs.train_job``), so the submitter needs no
worker code and nothing is ever pickled. Specs are validated *before* Redis is contacted: an
invalid spec enqueues nothing.

Each function opens (and closes) its own Redis connection from ``redis_url`` / CNN_REDIS_URL,
which suits a command-line call. A long-lived process (the gRPC server) passes its own shared,
thread-safe client as ``connection=`` instead, with the timeouts and retries it wants.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer

from jobs.cancellation import request_cancel, withdraw_cancel
from jobs.connection import QUEUE_RETRIES as CLIENT_RETRIES
from jobs.connection import connect
from jobs.spec import TrainSpec, load_spec, parse_spec
from worker.settings import WorkerSettings

TRAIN_JOB_PATH = "worker.jobs.train_job"
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


class JobNotFound(LookupError):
    """No job with this id in Redis (never submitted, expired, or Redis lost its data)."""


class CannotCancel(ValueError):
    """The job already ended."""


@dataclass
class JobInfo:
    """A job as `cnn train status/list` show it (JSON-able through `as_dict`).

    ``progress`` is the latest progress report (overwritten as training goes); ``epochs`` holds
    one compact snapshot per finished epoch, oldest first (`worker.progress.EPOCH_FIELDS` plus
    ``at``, a Unix time; the newest `worker.progress.MAX_EPOCH_SNAPSHOTS` are kept); ``spec``
    is the submitted training spec (the job's JSON payload).
    """

    id: str
    status: str
    model: str | None = None
    queue: str | None = None
    stage: str | None = None
    progress: dict[str, Any] | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    attempts: int = 0
    retries_left: int | None = None
    previous_errors: list[str] = field(default_factory=list)
    worker: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    spec: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings(settings: WorkerSettings | None) -> WorkerSettings:
    return settings if settings is not None else WorkerSettings.from_env()


@contextmanager
def _connected(
    redis_url: str | None, settings: WorkerSettings, connection: redis.Redis | None
) -> Iterator[redis.Redis]:
    """The caller's `connection` (left open), else a new one for this call (closed after)."""
    if connection is not None:
        yield connection
        return
    with connect(redis_url or settings.redis_url, retries=CLIENT_RETRIES) as own:
        yield own


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def submit(
    spec: TrainSpec | dict[str, Any] | str | Path,
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    settings: WorkerSettings | None = None,
    connection: redis.Redis | None = None,
) -> str:
    """Validate `spec` and enqueue a training job.

    Args:
        spec: a `TrainSpec`, a decoded JSON dict, or the path of a spec file.
        redis_url: overrides CNN_REDIS_URL.
        queue: overrides the first of CNN_QUEUES.
        connection: a Redis client to use (then `redis_url` is ignored); it stays open.

    Returns:
        the job id.

    Raises:
        InvalidSpec: naming each offending field; nothing is enqueued.
        redis.ConnectionError: Redis unreachable.
    """
    settings = _settings(settings)
    if isinstance(spec, TrainSpec):
        train_spec = spec
    elif isinstance(spec, str | Path):
        train_spec = load_spec(spec)
    else:
        train_spec = parse_spec(spec)
    payload = train_spec.payload()
    with _connected(redis_url, settings, connection) as conn:
        q = Queue(queue or settings.queue, connection=conn, serializer=JSONSerializer)
        job = q.enqueue(
            TRAIN_JOB_PATH,
            payload,
            job_timeout=train_spec.timeout_s or settings.job_timeout,
            retry=Retry(max=settings.job_retries) if settings.job_retries > 0 else None,
            result_ttl=settings.result_ttl,
            failure_ttl=settings.result_ttl,
            description=f"train {train_spec.name}",
            meta={"kind": "train", "model": train_spec.name, "stage": "queued"},
        )
        return job.id


def _info(job: Job) -> JobInfo:
    meta = job.meta or {}
    status = job.get_status(refresh=False)
    result = None
    error = meta.get("error")
    if status == JobStatus.FINISHED:
        value = job.return_value()
        result = value if isinstance(value, dict) else None
    elif status == JobStatus.FAILED and not error:
        latest = job.latest_result()
        exc = (latest.exc_string or "") if latest is not None else ""
        error = next((ln for ln in reversed(exc.strip().splitlines()) if ln.strip()), None)
    epochs = meta.get("epochs")
    return JobInfo(
        id=job.id,
        status=str(status.value if isinstance(status, JobStatus) else status),
        model=meta.get("model"),
        queue=job.origin,
        stage=meta.get("stage"),
        progress=meta.get("progress"),
        error=error,
        result=result,
        attempts=int(meta.get("attempts", 0)),
        retries_left=job.retries_left,
        previous_errors=list(meta.get("previous_errors", [])),
        worker=meta.get("worker"),
        timings=meta.get("timings"),
        enqueued_at=_iso(job.enqueued_at),
        started_at=_iso(job.started_at),
        ended_at=_iso(job.ended_at),
        epochs=[e for e in epochs if isinstance(e, dict)] if isinstance(epochs, list) else [],
        spec=_payload(job),
    )


def _payload(job: Job) -> dict[str, Any] | None:
    """The submitted spec: the job's only argument (None if it is not a JSON object)."""
    try:
        args = job.args
    except Exception:  # undecodable data: status must still work
        return None
    return args[0] if args and isinstance(args[0], dict) else None


def _fetch(connection: redis.Redis, job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        raise JobNotFound(
            f"job {job_id!r} not found (unknown id, expired, or Redis lost it)"
        ) from None


def status(
    job_id: str,
    redis_url: str | None = None,
    *,
    settings: WorkerSettings | None = None,
    connection: redis.Redis | None = None,
) -> JobInfo:
    """The job's status, progress, epochs, error (one line) or result.

    Raises:
        JobNotFound: no such job.
    """
    settings = _settings(settings)
    with _connected(redis_url, settings, connection) as conn:
        return _info(_fetch(conn, job_id))


def list_jobs(
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    limit: int = 50,
    settings: WorkerSettings | None = None,
    connection: redis.Redis | None = None,
) -> list[JobInfo]:
    """Training jobs of `queue` in every state, newest first, at most `limit`."""
    settings = _settings(settings)
    name = queue or settings.queue
    with _connected(redis_url, settings, connection) as conn:
        q = Queue(name, connection=conn, serializer=JSONSerializer)
        ids: list[str] = list(q.get_job_ids())
        registries = (
            StartedJobRegistry,
            FinishedJobRegistry,
            FailedJobRegistry,
            CanceledJobRegistry,
            ScheduledJobRegistry,
            DeferredJobRegistry,
        )
        for registry in registries:
            ids.extend(registry(queue=q).get_job_ids(cleanup=False))
        unique = list(dict.fromkeys(ids))
        jobs = [
            j
            for j in Job.fetch_many(unique, connection=conn, serializer=JSONSerializer)
            if j is not None
        ]
        infos = [_info(j) for j in jobs if (j.meta or {}).get("kind") == "train"]
    infos.sort(key=lambda i: i.enqueued_at or "", reverse=True)
    return infos[:limit]


def cancel(
    job_id: str,
    redis_url: str | None = None,
    *,
    settings: WorkerSettings | None = None,
    connection: redis.Redis | None = None,
    stop_timeout: float = 30.0,
) -> str:
    """Stop a running job (-> "stopped") or cancel a waiting one (-> "canceled").

    Safe against a worker taking the job off the queue at the same moment: the cancel leaves a
    mark before it reads the status, and a work horse that finds the mark once it has set the
    job to started cancels it without running it (see `jobs.cancellation`).

    Args:
        stop_timeout: how long to wait for a running job to stop (its status is returned then,
            whatever it is).

    Returns:
        the resulting status.

    Raises:
        JobNotFound: no such job.
        CannotCancel: the job already ended.
    """
    settings = _settings(settings)
    with _connected(redis_url, settings, connection) as conn:
        job = _fetch(conn, job_id)
        request_cancel(conn, job_id, ttl_s=settings.result_ttl)  # first the mark, then the status
        current = job.get_status(refresh=True)
        if current in TERMINAL:
            if current != JobStatus.CANCELED:  # keep a cancel's mark: a worker may hold the job
                withdraw_cancel(conn, job_id)  # ran to its end: a later re-queue must run
            raise CannotCancel(f"job {job_id} already ended with status {current.value}")
        if current == JobStatus.STARTED:
            send_stop_job_command(conn, job_id, serializer=JSONSerializer)
            return _wait_status(conn, job_id, {JobStatus.STOPPED, *TERMINAL}, stop_timeout)
        try:
            job.cancel()
        except InvalidJobOperation as exc:
            raise CannotCancel(f"job {job_id}: {exc}") from exc
        # A worker that dequeued it meanwhile finds the mark and cancels it without running it.
        return JobStatus.CANCELED.value


def _wait_status(
    connection: redis.Redis,
    job_id: str,
    wanted: set[JobStatus] | frozenset[JobStatus],
    timeout: float,
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        current = _fetch(connection, job_id).get_status()
        if current in wanted or time.monotonic() > deadline:
            return str(current.value)
        time.sleep(0.1)


def poll(
    job_id: str,
    redis_url: str | None = None,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    settings: WorkerSettings | None = None,
    on_update: Callable[[JobInfo], None] | None = None,
    lost_after: float = 30.0,
    connection: redis.Redis | None = None,
) -> JobInfo:
    """Poll the job until it ends; `on_update` sees every snapshot.

    A job that cannot be found for `lost_after` seconds in a row (e.g. Redis restarted without
    persistence and no worker wrote it back) raises `JobNotFound`; Redis being unreachable is
    retried the same way.

    Raises:
        JobNotFound: the job is gone.
        TimeoutError: `timeout` elapsed first.
    """
    settings = _settings(settings)
    deadline = None if timeout is None else time.monotonic() + timeout
    missing_since: float | None = None
    with _connected(redis_url, settings, connection) as conn:
        while True:
            try:
                info = _info(_fetch(conn, job_id))
                missing_since = None
            except (JobNotFound, redis.ConnectionError, redis.TimeoutError):
                now = time.monotonic()
                missing_since = missing_since if missing_since is not None else now
                if now - missing_since > lost_after:
                    raise
                time.sleep(interval)
                continue
            if on_update is not None:
                on_update(info)
            if info.terminal:
                return info
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {info.status} after {timeout} s")
            time.sleep(interval)


def watch(
    job_id: str,
    redis_url: str | None = None,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    settings: WorkerSettings | None = None,
    console: Any = None,
) -> JobInfo:
    """Show a live progress bar (epoch, step, loss, accuracy, images/s, ETA) until the job ends.

    Returns:
        the final `JobInfo`; the caller decides the exit status (`info.status == "finished"`).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = console if console is not None else Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as bar:
        task = bar.add_task(f"{job_id[:8]} queued", total=None, detail="")

        def show(info: JobInfo) -> None:
            p = info.progress or {}
            total = p.get("total_steps")
            description = f"{info.model or job_id[:8]} {info.status}"
            if p:
                description = f"{info.model or job_id[:8]} epoch {p.get('epoch')}/{p.get('epochs')}"
            bar.update(
                task,
                total=total,
                completed=p.get("step", 0),
                description=description,
                detail=format_progress(p) if p else (info.stage or info.status),
            )

        info = poll(
            job_id, redis_url, interval=interval, timeout=timeout, settings=settings, on_update=show
        )
    if info.status == JobStatus.FINISHED.value and info.result:
        r = info.result
        console.print(
            f"[green]finished[/green]: {r.get('model')} version {r.get('version')} "
            f"({_metrics_line(r.get('metrics') or {})})"
        )
    else:
        console.print(f"[red]{info.status}[/red]: {info.error or 'no reason recorded'}")
    return info


def format_progress(p: dict[str, Any]) -> str:
    """``loss 0.412 acc 0.873 val 0.861 1234 img/s ETA 0:12`` from a progress dict."""
    parts = []
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("train_accuracy") is not None:
        parts.append(f"acc {p['train_accuracy']:.3f}")
    if p.get("val_accuracy") is not None:
        parts.append(f"val {p['val_accuracy']:.3f}")
    if p.get("images_per_s") is not None:
        parts.append(f"{p['images_per_s']:.0f} img/s")
    if p.get("eta_s") is not None:
        eta = int(p["eta_s"])
        parts.append(f"ETA {eta // 60}:{eta % 60:02d}")
    return "  ".join(parts)


def _metrics_line(metrics: dict[str, Any]) -> str:
    keys = [k for k in ("val_accuracy", "test_accuracy", "train_accuracy") if k in metrics]
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if isinstance(metrics[k], int | float))
