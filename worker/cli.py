"""`cnn train submit|watch|status|list|cancel`: argparse wiring over `worker.client`.

The lead mounts this with ``add_train_commands(subparsers)``; each sub-command sets ``func``
(``args -> exit status``). Exit statuses: 0 success, 1 the job failed / was stopped / was
canceled (`watch`), 2 a user error (invalid spec, unknown job) printed as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USER_ERROR = 2


def add_train_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` command group to an ``add_subparsers()`` object; returns its parser."""
    train = subparsers.add_parser(
        "train",
        help="submit and follow training jobs (RQ queue)",
        description="Training jobs on the RQ queue (CNN_REDIS_URL, CNN_QUEUES).",
    )
    sub = train.add_subparsers(dest="train_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis-url", help="Redis URL (default: CNN_REDIS_URL)")

    p = sub.add_parser("submit", help="validate a spec and enqueue it; prints the job id")
    p.add_argument("spec", help="training spec JSON file (see examples/)")
    p.add_argument("--queue", help="queue name (default: first of CNN_QUEUES)")
    p.add_argument("--watch", action="store_true", help="then watch it like `cnn train watch`")
    common(p)
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("watch", help="live progress bar until the job ends (non-zero if it fails)")
    p.add_argument("job_id")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many s")
    common(p)
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser("status", help="status, progress and error or result of one job")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("list", help="training jobs in every state, newest first")
    p.add_argument("--queue", help="queue name (default: first of CNN_QUEUES)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("cancel", help="stop a running job or cancel a queued one")
    p.add_argument("job_id")
    common(p)
    p.set_defaults(func=_cmd_cancel)
    return train


def _user_error(message: str) -> int:
    print(f"cnn train: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def _cmd_submit(args: argparse.Namespace) -> int:
    from worker import client
    from worker.spec import InvalidSpec

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
