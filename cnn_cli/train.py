"""`cnn train submit|watch|status|list|cancel|logs`: one set of commands over either transport.

The transport is chosen per invocation (`cnn_cli.job_transport`):

- `--address HOST:PORT` (or CNN_ADDRESS) and no `--redis-url`: the server's gRPC Training
  API, so a machine that can reach the server but not Redis can train models;
- otherwise Redis (`--redis-url` or CNN_REDIS_URL) through `jobs.queue.JobQueue`.

Either way the commands get the same `JobView`s and print them with `cnn_cli.job_render`: the
same words, columns and exit statuses. Exit statuses: 0 success, 1 the job failed or was
cancelled, or `--timeout` passed (`watch`, `submit --watch`), 2 an error printed as one line
(invalid spec, unknown job, unreachable server or Redis).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnn_cli import job_render as render
from cnn_cli.connection import add_connection_options, client_from_args, requested_address
from cnn_cli.errors import CliError
from cnn_cli.job_transport import GrpcJobs, JobTransport, RedisJobs, WatchTimedOut
from jobs.status import JobStatus
from jobs.views import JobView

EXIT_OK = 0
EXIT_JOB_FAILED = 1

Command = Callable[[argparse.Namespace], int]


def add_train_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` command group to an ``add_subparsers()`` object; returns its parser."""
    train = subparsers.add_parser(
        "train",
        help="submit and follow training jobs (Redis, or the gRPC server with --address)",
        description="Training jobs. Over the gRPC server with --address HOST:PORT (or "
        "CNN_ADDRESS), otherwise directly on the job queue in Redis (--redis-url or "
        "CNN_REDIS_URL). The output is the same either way.",
    )
    sub = train.add_subparsers(dest="train_command", metavar="ACTION", required=True)

    def command(name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
        parser.add_argument("--redis-url", help="Redis of the job queue (default: CNN_REDIS_URL)")
        add_connection_options(
            parser,
            address_help="use the gRPC server at HOST:PORT instead of Redis (default: "
            "CNN_ADDRESS; --redis-url wins over CNN_ADDRESS)",
            timeout=False,  # `watch` has its own --timeout (the whole watch)
        )
        parser.set_defaults(func=func)
        return parser

    p = command("submit", _submit, help="validate a spec and enqueue it; prints the job id")
    p.add_argument("spec", help="training spec JSON file (see examples/)")
    p.add_argument("--queue", help="Redis only: queue name (default: first of CNN_QUEUES)")
    p.add_argument("--watch", action="store_true", help="then watch it like `cnn train watch`")
    p.add_argument(
        "--request-id",
        help="idempotency key: the same key (and spec) again within CNN_REQUEST_ID_TTL_S prints "
        "the job the first submit queued instead of queuing another (default over --address: "
        "a new key per run, reused by the client's retries)",
    )

    p = command("watch", _watch, help="live progress until the job ends (exit 1 if it fails)")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print one JSON line per update")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")

    p = command("status", _status, help="status, progress and error or result of one job")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("list", _list, help="training jobs in every state, newest first")
    p.add_argument("--queue", help="Redis only: queue name (default: first of CNN_QUEUES)")
    p.add_argument(
        "--status", choices=[s.value for s in JobStatus], help="only jobs with this status"
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("cancel", _cancel, help="stop a running job or cancel a queued one")
    p.add_argument("job_id")

    p = command(
        "logs",
        _logs,
        help="where a job's TensorBoard event files are and the command that shows them",
        description="Where the job writes its TensorBoard event files (a spec with "
        '"tensorboard": true), in the data volume and on this machine (CNN_DATA_DIR), and the '
        "`tensorboard --logdir` command line that shows them.",
    )
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    return train


# -- transports --------------------------------------------------------------------------------


@contextmanager
def _transport(args: argparse.Namespace) -> Iterator[JobTransport]:
    """The gRPC transport when an address is asked for and no Redis URL, else Redis."""
    if args.address and args.redis_url:
        raise CliError("give --address (gRPC server) or --redis-url (Redis), not both")
    queue_name = getattr(args, "queue", None)
    transport: JobTransport
    if requested_address(args) and not args.redis_url:
        if queue_name:
            raise CliError("--queue applies to Redis only: the server enqueues on its own queue")
        transport = GrpcJobs(client_from_args(args))
    else:
        transport = RedisJobs(_job_queue(args.redis_url, queue_name))
    try:
        yield transport
    finally:
        transport.close()


def _job_queue(redis_url: str | None, queue_name: str | None) -> Any:
    from cnn_cli.settings import CliSettings, cli_settings
    from core.repository import ModelRepository
    from jobs.queue import JobQueue

    settings = cli_settings()
    overrides: dict[str, Any] = {}
    if redis_url:
        overrides["redis_url"] = redis_url
    if queue_name:
        overrides["queues"] = queue_name
    if overrides:  # validated like the environment's values
        settings = CliSettings.from_env(**overrides)
    models = ModelRepository(settings.models_dir) if settings.models_dir else None
    return JobQueue.connect(settings, models=models)


# -- commands ----------------------------------------------------------------------------------


def _read_spec(name: str) -> str:
    """The text of a spec file (parsed and validated by the queue, or by the server)."""
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"spec file {name!r} not found") from None
    except IsADirectoryError:
        raise CliError(f"spec file {name!r} is a directory") from None


def _submit(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    with _transport(args) as jobs:
        job_id = jobs.submit(spec, request_id=args.request_id)
        print(job_id, flush=True)
        if not args.watch:
            return EXIT_OK
        return _follow(jobs, job_id, as_json=False, timeout_s=None)


def _watch(args: argparse.Namespace) -> int:
    if args.timeout is not None and args.timeout <= 0:
        raise CliError(f"--timeout must be > 0 seconds, got {args.timeout}")
    with _transport(args) as jobs:
        return _follow(jobs, args.job_id, as_json=args.json, timeout_s=args.timeout)


def _follow(jobs: JobTransport, job_id: str, *, as_json: bool, timeout_s: float | None) -> int:
    """Show the job until it ends: JSON lines on stdout, or a bar and the outcome on stderr."""
    try:
        if as_json:
            last = None
            for last in jobs.follow(job_id, timeout_s=timeout_s):
                print(render.job_json(last), flush=True)
            last = _ended(last, job_id)
        else:
            last = follow_with_bar(jobs, job_id, timeout_s=timeout_s)
    except WatchTimedOut:
        print(f"cnn train: job {job_id} not finished after {timeout_s:g} s", file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK if last.status is JobStatus.FINISHED else EXIT_JOB_FAILED


def follow_with_bar(jobs: JobTransport, job_id: str, *, timeout_s: float | None) -> JobView:
    """A live bar on stderr until the job ends, then its outcome line; returns its last view.

    Raises:
        WatchTimedOut: `timeout_s` passed first.
        CliError: the transport stopped following before the job ended.
    """
    from rich.console import Console

    console = Console(stderr=True)
    bar = render.JobBar(console, job_id)
    last = None
    with bar.shown():
        for last in jobs.follow(job_id, timeout_s=timeout_s):
            bar.update(last)
    last = _ended(last, job_id)
    console.print(render.outcome_line(last), highlight=False, markup=False, soft_wrap=True)
    return last


def _ended(last: JobView | None, job_id: str) -> JobView:
    if last is None or not last.terminal:
        raise CliError(f"the watch of job {job_id} ended before the job did")
    return last


def _status(args: argparse.Namespace) -> int:
    with _transport(args) as jobs:
        job = jobs.get(args.job_id)
    print(render.job_json(job, indent=2) if args.json else render.status_block(job))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    status = JobStatus(args.status) if args.status else None
    with _transport(args) as jobs:
        listed = jobs.list(status=status, limit=args.limit)
    print(render.jobs_json(listed) if args.json else render.list_table(listed))
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    from cnn_cli.settings import cli_settings
    from jobs.tensorboard import local_path

    with _transport(args) as jobs:
        job = jobs.get(args.job_id)
    relative = job.tensorboard_dir or render.planned_tensorboard_dir(job)
    if relative is None:
        raise CliError(
            f"job {job.id} writes no TensorBoard event files (its spec has no "
            '"tensorboard": true; submit it again with one)'
        )
    logs = render.EventFiles(job, relative, local_path(cli_settings().data_dir, relative))
    print(render.logs_json(logs) if args.json else render.logs_block(logs))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    with _transport(args) as jobs:
        print(jobs.cancel(args.job_id))
    return EXIT_OK
