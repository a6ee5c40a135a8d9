"""`cnn` entry point: sub-commands are thin wrappers over the services and core.

Heavy modules (numba, grpc, rq) are imported inside each command so that `cnn --help`
stays fast and a missing optional piece only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnn_cli.errors import CliError


def _cmd_serve(args: argparse.Namespace) -> int:
    from server.main import main as server_main

    return server_main(args.rest)


def _cmd_worker(args: argparse.Namespace) -> int:
    from worker.main import main as worker_main

    return worker_main(args.rest)


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnn_cli.summary import print_summary

    print_summary(args.spec, args.input_shape)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cnn_cli.demo import run_demo

    return run_demo(workdir=args.workdir, epochs=args.epochs)


def _cmd_settings(args: argparse.Namespace) -> int:
    from cnn_cli.settings import CliSettings
    from core.settings import settings_table

    print(settings_table(CliSettings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnn",
        description="cnn-service: train CNNs on an RQ worker, serve them over gRPC.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the gRPC classification server (python -m server)")
    serve.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the server")
    serve.set_defaults(func=_cmd_serve)

    worker = sub.add_parser("worker", help="run an RQ training worker (python -m worker)")
    worker.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the worker")
    worker.set_defaults(func=_cmd_worker)

    from cnn_cli.classify import add_classify_command
    from cnn_cli.data import add_data_commands
    from cnn_cli.explain import add_explain_command
    from cnn_cli.inspect import add_inspect_command
    from cnn_cli.models import add_models_commands
    from cnn_cli.train import add_train_commands

    add_classify_command(sub)
    add_explain_command(sub)
    add_models_commands(sub)
    add_train_commands(sub)
    add_data_commands(sub)

    summary = sub.add_parser(
        "summary", help="print a model's layers, shapes, parameters and receptive fields"
    )
    summary.add_argument("spec", help="training spec or architecture JSON file, or a model dir")
    summary.add_argument(
        "--input-shape",
        help="C,H,W of the input when the file does not say it (e.g. 1,28,28)",
    )
    summary.set_defaults(func=_cmd_summary)

    add_inspect_command(sub)

    demo = sub.add_parser(
        "demo",
        help="start redis-server, a worker and the server locally, train digits, classify",
    )
    demo.add_argument("--workdir", default="demo-data", help="where models and logs go")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs for the demo model")
    demo.set_defaults(func=_cmd_demo)

    settings = sub.add_parser(
        "settings", help="print the CNN_* variables the cnn command reads (a Markdown table)"
    )
    settings.set_defaults(func=_cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not (_is_user_error(exc) or _is_client_error(exc)):
            raise
        print(f"cnn: {_one_line(exc)}", file=sys.stderr)
        return 2


def _is_client_error(exc: Exception) -> bool:
    """A failed gRPC call: its message already says what to do."""
    client = sys.modules.get("cnn_client.client")
    return client is not None and isinstance(exc, client.CnnClientError)


def _is_user_error(exc: Exception) -> bool:
    """Errors that mean "your input or your setup is wrong": one line, no traceback."""
    if isinstance(exc, CliError | FileNotFoundError):
        return True
    for module, name in (
        ("core.errors", "CnnError"),
        ("core.settings", "SettingsError"),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return True
    return False


def _one_line(exc: Exception) -> str:
    """The message of a user error on one line; a gRPC error ends with its status code."""
    client = sys.modules.get("cnn_client.client")
    text = " ".join(str(exc).split())
    if client is not None and isinstance(exc, client.CnnClientError):
        return f"{text} [{exc.code.name}]"
    return text


if __name__ == "__main__":
    sys.exit(main())
