"""How `cnn train` shows a job: progress line, metrics line, status block, list table, bar.

Every function takes a `jobs.views.JobView`, whichever transport (Redis or gRPC) delivered it,
and returns text: the same job prints the same words, columns and times either way. Nothing
here knows about transports; `cnn_cli.train` decides where the text goes.
"""

from __future__ import annotations

import io
import json
import shlex
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.status import JobStatus

if TYPE_CHECKING:
    from rich.console import Console

    from jobs.views import JobView, Progress

#: Metrics named in the metrics line, in this order, when the job recorded them.
HEADLINE_METRICS = ("val_accuracy", "test_accuracy", "train_accuracy")
#: The same for a regression job (R², unitless).
REGRESSION_METRICS = ("val_r2", "test_r2", "train_r2")

#: Columns of `cnn train list`.
LIST_COLUMNS = ("job", "model", "status", "progress", "version / error", "enqueued")

#: Width the list table is laid out for, whatever the terminal: output that scripts and the
#: transport comparison can rely on (rows wider than this wrap inside their cells).
LIST_WIDTH = 140


def progress_line(p: Progress) -> str:
    """``loss 0.4120  acc 0.873  val 0.861  1234 img/s  ETA 0:12`` (figures not reported are
    left out)."""
    parts = []
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.train_accuracy is not None:
        parts.append(f"acc {p.train_accuracy:.3f}")
    if p.val_accuracy is not None:
        parts.append(f"val {p.val_accuracy:.3f}")
    if p.train_r2 is not None:
        parts.append(f"R² {p.train_r2:.3f}")
    if p.val_r2 is not None:
        parts.append(f"val R² {p.val_r2:.3f}")
    if p.images_per_s is not None:
        parts.append(f"{p.images_per_s:.0f} img/s")
    if p.eta_s is not None:
        eta = max(0, int(p.eta_s))
        parts.append(f"ETA {eta // 60}:{eta % 60:02d}")
    return "  ".join(parts)


def metrics_line(metrics: Mapping[str, float]) -> str:
    """``val_accuracy 0.912, test_accuracy 0.905`` (the headline metrics the job recorded)."""
    shown = [f"{key} {metrics[key]:.3f}" for key in HEADLINE_METRICS if key in metrics]
    shown = shown or [f"{key} {metrics[key]:.3f}" for key in REGRESSION_METRICS if key in metrics]
    return ", ".join(shown) or "no metrics"


def when(seconds: float | None) -> str:
    """A Unix time as local ``YYYY-mm-dd HH:MM:SS``; ``-`` when not reached."""
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def outcome_line(job: JobView) -> str:
    """How a job ended: ``finished: digits version 3 (val_accuracy 0.912)`` or
    ``failed: <reason>`` / ``cancelled: <reason>``."""
    if job.status is JobStatus.FINISHED:
        return f"finished: {job.model} version {job.model_version} ({metrics_line(job.metrics)})"
    return f"{job.status}: {job.error or 'no reason recorded'}"


def status_block(job: JobView) -> str:
    """`cnn train status`: one ``label    value`` line per fact about the job."""
    lines = [
        f"job      {job.id}",
        f"model    {job.model or '-'}",
        f"status   {job.status}",
    ]
    p = job.progress
    if p is not None:
        lines.append(
            f"progress epoch {p.epoch}/{p.epochs} step {p.step}/{p.total_steps}  "
            f"{progress_line(p)}".rstrip()
        )
    if job.status is JobStatus.FINISHED:
        lines.append(f"result   {outcome_line(job).removeprefix('finished: ')}")
    if job.error:
        lines.append(f"error    {job.error}")
    if job.tensorboard_dir:
        lines.append(f"events   {job.tensorboard_dir} in the data volume (cnn train logs {job.id})")
    lines.append(
        f"times    enqueued {when(job.enqueued_at)}, started {when(job.started_at)}, "
        f"ended {when(job.ended_at)}"
    )
    return "\n".join(lines)


def _list_row(job: JobView) -> tuple[str, ...]:
    p = job.progress
    progress = f"{p.step}/{p.total_steps}" if p is not None else ""
    finished = job.status is JobStatus.FINISHED
    outcome = str(job.model_version) if finished else (job.error or "")
    return (job.id, job.model or "", str(job.status), progress, outcome, when(job.enqueued_at))


def list_table(jobs: Sequence[JobView]) -> str:
    """`cnn train list`: one row per job, newest first as given (`LIST_COLUMNS`)."""
    if not jobs:
        return "no training jobs"
    from rich.table import Table

    table = Table(*LIST_COLUMNS)
    for job in jobs:
        table.add_row(*_list_row(job))
    return _render(table, LIST_WIDTH)


def _render(renderable: Any, width: int) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(renderable)
    return buffer.getvalue().rstrip("\n")


def job_json(job: JobView, *, indent: int | None = None) -> str:
    """The job as JSON (`JobView.as_dict`, keys sorted): ``--json`` output."""
    return json.dumps(job.as_dict(), indent=indent, sort_keys=True)


def jobs_json(jobs: Iterable[JobView]) -> str:
    """A JSON array of jobs (``cnn train list --json``)."""
    return json.dumps([job.as_dict() for job in jobs], indent=2, sort_keys=True)


class JobBar:
    """A live progress bar of one job: epoch, step, loss, accuracy, images/s, ETA.

    Feed it every view `follow` yields (`update`); it draws on `console` (stderr).
    """

    def __init__(self, console: Console, job_id: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self._job_id = job_id
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            refresh_per_second=4,
        )
        self._task = self._bar.add_task(f"{job_id[:8]} queued", total=None, detail="")

    def update(self, job: JobView) -> None:
        name = job.model or self._job_id[:8]
        p = job.progress
        if p is None:
            self._bar.update(self._task, description=f"{name} {job.status}", detail="")
            return
        self._bar.update(
            self._task,
            total=p.total_steps or None,
            completed=p.step,
            description=f"{name} epoch {p.epoch}/{p.epochs}",
            detail=progress_line(p),
        )

    @contextmanager
    def shown(self) -> Iterator[JobBar]:
        with self._bar:
            yield self


# -- cnn train logs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFiles:
    """Where a job's TensorBoard event files are: ``relative`` to the data volume (what the
    job reports), ``local``: that directory on this machine (under CNN_DATA_DIR)."""

    job: JobView
    relative: str
    local: Path

    @property
    def started(self) -> bool:
        """Whether a worker has said it writes there (else the spec asks, and none has yet)."""
        return self.job.tensorboard_dir is not None

    def command(self) -> list[str]:
        """The command line that shows this job in TensorBoard."""
        return ["tensorboard", "--logdir", str(self.local)]


def planned_tensorboard_dir(job: JobView) -> str | None:
    """Where a job that no worker has started yet will write event files, when its spec asks
    for them (the worker reports the directory once it starts), else None."""
    from jobs.tensorboard import log_dir

    wanted = job.spec.get("tensorboard") if job.spec is not None else None
    if job.status is not JobStatus.QUEUED or wanted in (None, False):
        return None
    return log_dir(job.id)


def logs_block(logs: EventFiles) -> str:
    """`cnn train logs`: the event files' directory, here and in the volume, and the command."""
    lines = [
        f"job      {logs.job.id}",
        f"volume   {logs.relative} (in the data volume)",
        f"here     {logs.local}" + ("" if logs.local.is_dir() else "  (not there yet)"),
        f"view     {shlex.join(logs.command())}",
        f"all jobs {shlex.join(['tensorboard', '--logdir', str(logs.local.parent)])}",
        "compose  docker compose --profile tensorboard up -d tensorboard  (http://127.0.0.1:6006)",
    ]
    if not logs.started:
        lines.insert(1, "note     no worker has started the job yet: the directory comes then")
    return "\n".join(lines)


def logs_json(logs: EventFiles) -> str:
    """`cnn train logs --json`: the same facts as one JSON object."""
    return json.dumps(
        {
            "job": logs.job.id,
            "tensorboard_dir": logs.relative,
            "path": str(logs.local),
            "exists": logs.local.is_dir(),
            "started": logs.started,
            "command": logs.command(),
        }
    )
