"""`cnn train submit|watch|status|list|cancel`: argparse wiring over `worker.client`.

Mounted with ``add_train_commands(subparsers)``, which returns the ``train`` parser and its
action parsers (`TrainCommands`) so a caller can extend them; each action sets ``func``
(``args -> exit status``). Exit statuses: 0 success, 1 the job failed / was stopped / was
canceled (`watch`), 2 a user error (invalid spec, unknown job, Redis unreachable) printed as
one line.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USER_ERROR = 2

#: What to do when Redis cannot be reached (the `cnn` command adds its gRPC alternative).
REDIS_HINT = "start redis-server, or pass --redis-url / set CNN_REDIS_URL"

Command = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class TrainCommands:
    """The ``train`` group: its parser and one parser per action ("submit", "watch", ...)."""

    parser: argparse.ArgumentParser
    actions: dict[str, argparse.ArgumentParser]


def add_train_commands(subparsers: Any, *, redis_hint: str = REDIS_HINT) -> TrainCommands:
    """Add the ``train`` command group to an ``add_subparsers()`` object.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.
        redis_hint: the advice printed after "cannot reach Redis at URL (reason):".

    Returns:
        the group's parser and its action parsers.
    """
    train = subparsers.add_parser(
        "train",
        help="submit and follow training jobs (Redis, or gRPC with --address)",
        description="Training jobs on the RQ queue (CNN_REDIS_URL, CNN_QUEUES).",
    )
    sub = train.add_subparsers(dest="train_command", metavar="ACTION", required=True)
    actions: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
        parser.set_defaults(func=functools.partial(_run, func, redis_hint))
        actions[name] = parser
        return parser

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis-url", help="Redis URL (default: CNN_REDIS_URL)")

    p = command("submit", _cmd_submit, help="validate a spec and enqueue it; prints the job id")
    p.add_argument("spec", help="training spec JSON file (see examples/)")
    p.add_argument("--queue", help="queue name (default: first of CNN_QUEUES)")
    p.add_argument("--watch", action="store_true", help="then watch it like `cnn train watch`")
    common(p)

    p = command(
        "watch", _cmd_watch, help="live progress bar until the job ends (non-zero if it fails)"
    )
    p.add_argument("job_id")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many s")
    common(p)

    p = command("status", _cmd_status, help="status, progress and error or result of one job")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)

    p = command("list", _cmd_list, help="training jobs in every state, newest first")
    p.add_argument("--queue", help="queue name (default: first of CNN_QUEUES)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)

    p = command("cancel", _cmd_cancel, help="stop a running job or cancel a queued one")
    p.add_argument("job_id")
    common(p)
    return TrainCommands(train, actions)


def _user_error(message: str) -> int:
    print(f"cnn train: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def redis_unreachable(redis_url: str | None, exc: BaseException, hint: str = REDIS_HINT) -> str:
    """``cannot reach Redis at URL (reason): hint``, credentials hidden, on one line."""
    from worker.settings import WorkerSettings

    url = redis_url or WorkerSettings.from_env().redis_url
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot reach Redis at {redact_url(url)} ({reason}): {hint}"


def redact_url(url: str) -> str:
    """Hide the credentials of a Redis URL."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}" if sep and "@" in rest else url


def _run(func: Command, redis_hint: str, args: argparse.Namespace) -> int:
    """Run an action; Redis being unreachable is a one-line user error, not a traceback."""
    import redis

    try:
        return func(args)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return _user_error(redis_unreachable(getattr(args, "redis_url", None), exc, redis_hint))


def _cmd_submit(args: argparse.Namespace) -> int:
    from jobs.spec import InvalidSpec
    from worker import client

    try:
        job_id = client.submit(args.spec, args.redis_url, queue=args.queue)
    except InvalidSpec as exc:
        return _user_error(str(exc))
    except FileNotFoundError:
        return _user_error(f"spec file {args.spec!r} not found")
    print(job_id, flush=True)
    if args.watch:
        return _finish(client.watch(job_id, args.redis_url))
    return EXIT_OK


def _finish(info: Any) -> int:
    return EXIT_OK if info.status == "finished" else EXIT_JOB_FAILED


def _cmd_watch(args: argparse.Namespace) -> int:
    from worker import client

    try:
        info = client.watch(
            args.job_id, args.redis_url, interval=args.interval, timeout=args.timeout
        )
    except client.JobNotFound as exc:
        return _user_error(str(exc))
    except TimeoutError as exc:
        print(f"cnn train: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return _finish(info)


def _cmd_status(args: argparse.Namespace) -> int:
    from worker import client

    try:
        info = client.status(args.job_id, args.redis_url)
    except client.JobNotFound as exc:
        return _user_error(str(exc))
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
        return EXIT_OK
    print(f"job      {info.id}")
    print(f"model    {info.model}")
    print(f"status   {info.status}" + (f" ({info.stage})" if info.stage else ""))
    if info.progress:
        p = info.progress
        print(
            f"progress epoch {p.get('epoch')}/{p.get('epochs')} step "
            f"{p.get('step')}/{p.get('total_steps')}  {client.format_progress(p)}"
        )
    if info.result:
        print(f"result   {info.result.get('model')} version {info.result.get('version')}")
    if info.error:
        print(f"error    {info.error}")
    if info.attempts > 1 or info.previous_errors:
        print(f"attempts {info.attempts}; earlier: {'; '.join(info.previous_errors)}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    from worker import client

    infos = client.list_jobs(args.redis_url, queue=args.queue, limit=args.limit)
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("job", "model", "status", "progress", "version / error")
    for i in infos:
        p = i.progress or {}
        progress = f"{p.get('step')}/{p.get('total_steps')}" if p else ""
        outcome = str(i.result.get("version")) if i.result else (i.error or "")
        table.add_row(i.id, i.model or "", i.status, progress, outcome)
    Console().print(table)
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    from worker import client

    try:
        result = client.cancel(args.job_id, args.redis_url)
    except (client.JobNotFound, client.CannotCancel) as exc:
        return _user_error(str(exc))
    print(result)
    return EXIT_OK
