"""`cnn` entry point: sub-commands are thin wrappers over the services and core.

Heavy modules (numba, grpc, rq) are imported inside each command so that `cnn --help`
stays fast and a missing optional piece only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


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


def _cmd_inspect(args: argparse.Namespace) -> int:
    from core.pictures import inspect_model

    for path in inspect_model(args.model_dir, args.image, args.out):
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cnn_cli.demo import run_demo

    return run_demo(workdir=args.workdir, epochs=args.epochs)


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

    from worker.cli import add_train_commands

    add_train_commands(sub)

    summary = sub.add_parser(
        "summary", help="print a model's layers, shapes, parameters and receptive fields"
    )
    summary.add_argument("spec", help="training spec or architecture JSON file, or a model dir")
    summary.add_argument(
        "--input-shape",
        help="C,H,W of the input when the file does not say it (e.g. 1,28,28)",
    )
    summary.set_defaults(func=_cmd_summary)

    inspect = sub.add_parser(
        "inspect", help="write first-layer kernels and feature maps of an image as PNG grids"
    )
    inspect.add_argument("model_dir", help="a model version directory (model.json, weights.npz)")
    inspect.add_argument("--image", required=True, help="an image file (PNG/JPEG)")
    inspect.add_argument("--out", required=True, help="output directory for the PNGs")
    inspect.set_defaults(func=_cmd_inspect)

    demo = sub.add_parser(
        "demo",
        help="start redis-server, a worker and the server locally, train digits, classify",
    )
    demo.add_argument("--workdir", default="demo-data", help="where models and logs go")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs for the demo model")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        print(f"cnn: {exc}", file=sys.stderr)
        return 2


def _is_user_error(exc: Exception) -> bool:
    """Errors that mean "your input is wrong": one line, no traceback."""
    if isinstance(exc, CliError | FileNotFoundError):
        return True
    core_errors = sys.modules.get("core.errors")
    return core_errors is not None and isinstance(exc, core_errors.CnnError)


if __name__ == "__main__":
    sys.exit(main())
