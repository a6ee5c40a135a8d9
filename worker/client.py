"""Submit, inspect, cancel and watch training jobs (the code behind `cnn train ...`).

Everything goes through RQ with the JSON serializer: the payload is the validated spec as JSON,
the function is named by path string (``worker.jobs.train_job``), so the submitter needs no
worker code and nothing is ever pickled. Specs are validated *before* Redis is contacted: an
invalid spec enqueues nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

from worker.connection import CLIENT_RETRIES, connect
from worker.settings import WorkerSettings
from worker.spec import TrainSpec, load_spec, parse_spec

TRAIN_JOB_PATH = "worker.jobs.train_job"
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


class JobNotFound(LookupError):
    """No job with this id in Redis (never submitted, expired, or Redis lost its data)."""


class CannotCancel(ValueError):
    """The job already ended."""


@dataclass
class JobInfo:
    """A job as `cnn train status/list` show it (JSON-able through `as_dict`)."""

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

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings(settings: WorkerSettings | None) -> WorkerSettings:
    return settings if settings is not None else WorkerSettings.from_env()


def _connection(redis_url: str | None, settings: WorkerSettings) -> redis.Redis:
    return connect(redis_url or settings.redis_url, retries=CLIENT_RETRIES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def submit(
    spec: TrainSpec | dict[str, Any] | str | Path,
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    settings: WorkerSettings | None = None,
) -> str:
    """Validate `spec` and enqueue a training job.

    Args:
        spec: a `TrainSpec`, a decoded JSON dict, or the path of a spec file.
        redis_url: overrides CNN_REDIS_URL.
        queue: overrides the first of CNN_QUEUES.

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
    with _connection(redis_url, settings) as connection:
        q = Queue(queue or settings.queue, connection=connection, serializer=JSONSerializer)
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
    )


def _fetch(connection: redis.Redis, job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        raise JobNotFound(
            f"job {job_id!r} not found (unknown id, expired, or Redis lost it)"
        ) from None


def status(
    job_id: str, redis_url: str | None = None, *, settings: WorkerSettings | None = None
) -> JobInfo:
    """The job's status, progress, error (one line) or result.

    Raises:
        JobNotFound: no such job.
    """
    settings = _settings(settings)
    with _connection(redis_url, settings) as connection:
        return _info(_fetch(connection, job_id))


def list_jobs(
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    limit: int = 50,
    settings: WorkerSettings | None = None,
) -> list[JobInfo]:
    """Training jobs of `queue` in every state, newest first, at most `limit`."""
    settings = _settings(settings)
    name = queue or settings.queue
    with _connection(redis_url, settings) as connection:
        q = Queue(name, connection=connection, serializer=JSONSerializer)
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
            for j in Job.fetch_many(unique, connection=connection, serializer=JSONSerializer)
            if j is not None
        ]
        infos = [_info(j) for j in jobs if (j.meta or {}).get("kind") == "train"]
    infos.sort(key=lambda i: i.enqueued_at or "", reverse=True)
    return infos[:limit]


def cancel(
    job_id: str, redis_url: str | None = None, *, settings: WorkerSettings | None = None
) -> str:
    """Stop a running job (-> "stopped") or cancel a waiting one (-> "canceled").

    Returns:
        the resulting status.

    Raises:
        JobNotFound: no such job.
        CannotCancel: the job already ended.
    """
    settings = _settings(settings)
    with _connection(redis_url, settings) as connection:
        job = _fetch(connection, job_id)
        current = job.get_status()
        if current in TERMINAL:
            raise CannotCancel(f"job {job_id} already ended with status {current.value}")
        if current == JobStatus.STARTED:
            send_stop_job_command(connection, job_id, serializer=JSONSerializer)
            return _wait_status(connection, job_id, {JobStatus.STOPPED, *TERMINAL}, 30.0)
        try:
            job.cancel()
        except InvalidJobOperation as exc:
            raise CannotCancel(f"job {job_id}: {exc}") from exc
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
    with _connection(redis_url, settings) as connection:
        while True:
            try:
                info = _info(_fetch(connection, job_id))
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
