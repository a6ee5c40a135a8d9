"""`cnn train submit|watch|status|list|cancel` over Redis (RQ) or over the gRPC server.

The Redis commands are `worker.cli`'s, unchanged. This module mounts them and adds the server
connection options to each; the transport is chosen per invocation:

- `--address HOST:PORT` (or `CNN_ADDRESS`) and no `--redis-url`: the gRPC Training API, so a
  machine that can reach the server but not Redis can train models;
- otherwise Redis (`--redis-url` or `CNN_REDIS_URL`), as `worker.cli` does.

Both speak the same sub-commands and exit statuses: 0 success, 1 the job failed or was
cancelled (`watch`, `submit --watch`), 2 an error printed as one line (invalid spec, unknown
job, unreachable server or Redis).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnn_cli.connection import add_connection_options, client_from_args, requested_address
from cnn_cli.main import CliError

EXIT_OK = 0
EXIT_JOB_FAILED = 1

Command = Callable[[argparse.Namespace], int]

#: Advice after "cannot reach Redis at URL (reason):".
REDIS_HINT = (
    "start redis-server, pass --redis-url / set CNN_REDIS_URL, or go through the server with "
    "--address"
)


def add_train_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Mount `worker.cli`'s ``train`` group and make every action gRPC-capable."""
    from worker.cli import add_train_commands as add_redis_train_commands

    commands = add_redis_train_commands(subparsers, redis_hint=REDIS_HINT)
    train = commands.parser
    train.description = (
        "Training jobs. Over the gRPC server with --address HOST:PORT (or CNN_ADDRESS), "
        "otherwise directly on the RQ queue in Redis (--redis-url or CNN_REDIS_URL)."
    )
    for action, parser in commands.actions.items():
        add_connection_options(
            parser,
            address_help="use the gRPC server at HOST:PORT instead of Redis (default: "
            "CNN_ADDRESS; --redis-url wins over CNN_ADDRESS)",
            timeout=False,  # `watch` has its own --timeout (the whole watch)
        )
        if action == "watch":
            _add_if_missing(parser, "--json", action="store_true", help="print JSON lines")
        redis_command = parser.get_default("func")
        parser.set_defaults(func=functools.partial(_dispatch, action, redis_command))
    return train


def _add_if_missing(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    with contextlib.suppress(argparse.ArgumentError):  # worker.cli may have it already
        parser.add_argument(flag, **kwargs)


def _dispatch(action: str, redis_command: Command, args: argparse.Namespace) -> int:
    address = requested_address(args)
    if args.address and args.redis_url:
        raise CliError("give --address (gRPC server) or --redis-url (Redis), not both")
    if address and not args.redis_url:
        return GRPC_COMMANDS[action](args)
    return _over_redis(action, redis_command, args)


# -- Redis -------------------------------------------------------------------------------------


def _over_redis(action: str, redis_command: Command, args: argparse.Namespace) -> int:
    """`worker.cli`'s command (which reports an unreachable Redis itself), or JSON lines."""
    if action == "watch" and args.json:
        import redis

        from worker.cli import redis_unreachable

        try:
            return _redis_watch_json(args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise CliError(redis_unreachable(args.redis_url, exc, REDIS_HINT)) from None
    return redis_command(args)


def _redis_watch_json(args: argparse.Namespace) -> int:
    from worker import client

    last: list[str] = []

    def show(info: Any) -> None:
        line = json.dumps(info.as_dict())
        if not last or line != last[0]:
            print(line, flush=True)
            last[:] = [line]

    try:
        info = client.poll(
            args.job_id,
            args.redis_url,
            interval=args.interval,
            timeout=args.timeout,
            on_update=show,
        )
    except client.JobNotFound as exc:
        raise CliError(str(exc)) from None
    except TimeoutError as exc:
        print(f"cnn train: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK if info.status == "finished" else EXIT_JOB_FAILED


# -- gRPC --------------------------------------------------------------------------------------


def _no_queue(args: argparse.Namespace) -> None:
    if getattr(args, "queue", None):
        raise CliError("--queue applies to Redis only: the server enqueues on its own queue")


def _read_spec(name: str) -> str:
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"spec file {name!r} not found") from None
    except IsADirectoryError:
        raise CliError(f"spec file {name!r} is a directory") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name}: not valid JSON: {exc}") from None
    return text


def _grpc_submit(args: argparse.Namespace) -> int:
    _no_queue(args)
    spec_json = _read_spec(args.spec)
    with client_from_args(args) as client:
        job_id = client.submit(spec_json)
        print(job_id, flush=True)
        if not args.watch:
            return EXIT_OK
        return _follow(client, job_id, as_json=False, timeout=None)


def _grpc_watch(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        return _follow(client, args.job_id, as_json=args.json, timeout=args.timeout)


def _follow(client: Any, job_id: str, *, as_json: bool, timeout: float | None) -> int:
    from cnn_client import CnnClientError

    try:
        if as_json:
            job = None
            for job in client.watch(job_id, timeout=timeout):
                print(json.dumps(dataclasses.asdict(job)), flush=True)
        else:
            job = _watch_with_bar(client, job_id, timeout)
    except CnnClientError as exc:
        if exc.code.name == "DEADLINE_EXCEEDED" and timeout is not None:
            print(f"cnn train: job {job_id} not finished after {timeout:g} s", file=sys.stderr)
            return EXIT_JOB_FAILED
        raise
    if job is None or not job.done:
        raise CliError(f"the watch of job {job_id} ended before the job did")
    return EXIT_OK if job.status == "finished" else EXIT_JOB_FAILED


def _watch_with_bar(client: Any, job_id: str, timeout: float | None) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    job = None
    with Progress(*columns, console=console, refresh_per_second=4) as bar:
        task = bar.add_task(f"{job_id[:8]} queued", total=None, detail="")
        for job in client.watch(job_id, timeout=timeout):
            name = job.model_name or job_id[:8]
            p = job.progress
            if p is None:
                bar.update(task, description=f"{name} {job.status}", detail="")
            else:
                bar.update(
                    task,
                    total=p.total_steps or None,
                    completed=p.step,
                    description=f"{name} epoch {p.epoch}/{p.epochs}",
                    detail=format_progress(p),
                )
    if job is not None and job.status == "finished":
        console.print(
            f"[green]finished[/green]: {job.model_name} version {job.model_version} "
            f"({_metrics_line(job.metrics)})"
        )
    elif job is not None:
        console.print(f"[red]{job.status}[/red]: {job.error or 'no reason recorded'}")
    return job


def format_progress(p: Any) -> str:
    """``loss 0.4120  acc 0.873  val 0.861  1234 img/s  ETA 0:12`` from a `JobProgress`."""
    parts = [f"loss {p.loss:.4f}", f"acc {p.train_accuracy:.3f}"]
    if p.val_accuracy is not None:
        parts.append(f"val {p.val_accuracy:.3f}")
    parts.append(f"{p.images_per_s:.0f} img/s")
    eta = int(p.eta_s)
    parts.append(f"ETA {eta // 60}:{eta % 60:02d}")
    return "  ".join(parts)


def _metrics_line(metrics: dict[str, float]) -> str:
    keys = ("val_accuracy", "test_accuracy", "train_accuracy")
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics) or "no metrics"


def _when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _grpc_status(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        job = client.get_job(args.job_id)
    if args.json:
        print(json.dumps(dataclasses.asdict(job), indent=2))
        return EXIT_OK
    print(f"job      {job.job_id}")
    print(f"model    {job.model_name}")
    print(f"status   {job.status}")
    if job.progress is not None:
        p = job.progress
        print(
            f"progress epoch {p.epoch}/{p.epochs} step {p.step}/{p.total_steps}  "
            f"{format_progress(p)}"
        )
    if job.status == "finished":
        metrics = _metrics_line(job.metrics)
        print(f"result   {job.model_name} version {job.model_version} ({metrics})")
    if job.error:
        print(f"error    {job.error}")
    print(f"times    enqueued {_when(job.enqueued_at)}, started {_when(job.started_at)}, ", end="")
    print(f"ended {_when(job.ended_at)}")
    return EXIT_OK


def _grpc_list(args: argparse.Namespace) -> int:
    _no_queue(args)
    if args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    with client_from_args(args) as client:
        jobs = client.list_jobs(limit=args.limit)
    if args.json:
        print(json.dumps([dataclasses.asdict(job) for job in jobs], indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("job", "model", "status", "progress", "version / error")
    for job in jobs:
        p = job.progress
        progress = f"{p.step}/{p.total_steps}" if p is not None else ""
        outcome = str(job.model_version) if job.status == "finished" else job.error
        table.add_row(job.job_id, job.model_name, job.status, progress, outcome)
    Console(width=max(120, Console().width)).print(table)
    return EXIT_OK


def _grpc_cancel(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        print(client.cancel(args.job_id))
    return EXIT_OK


GRPC_COMMANDS: dict[str, Command] = {
    "submit": _grpc_submit,
    "watch": _grpc_watch,
    "status": _grpc_status,
    "list": _grpc_list,
    "cancel": _grpc_cancel,
}
