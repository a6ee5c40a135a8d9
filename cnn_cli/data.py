"""`cnn data upload|list|show|rm`: the server's uploaded data sets (`cnn.v1.Datasets`).

`upload` streams the file from disk with a progress bar on stderr (plain lines, one per tenth,
when stderr is not a terminal), then prints the stored version on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError

if TYPE_CHECKING:
    from cnn_client import DatasetInfo

_REF_RE = re.compile(r"(?P<name>[^:]+):(?P<version>[1-9][0-9]*)")
MiB = 1024 * 1024


def add_data_commands(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data",
        help="upload, list, show or delete the server's data sets",
        description="Data sets uploaded to the gRPC server (.npz or image-folder archives).",
    )
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("upload", help="upload an .npz or a .zip/.tar/.tar.gz image folder")
    p.add_argument("file", type=Path, help="the data set file")
    p.add_argument("--name", required=True, help="data set name (a new version each upload)")
    p.add_argument(
        "--format",
        choices=("npz", "zip", "tar", "tar.gz"),
        help="container format (default: from the file name)",
    )
    p.add_argument("--json", action="store_true", help="print the stored version as JSON")
    add_connection_options(p, timeout=False)
    p.set_defaults(func=run_upload)

    p = sub.add_parser("list", help="stored data sets: name, version, samples, classes, size")
    p.add_argument("name", nargs="?", default="", help="only the versions of this name")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser("show", help="one version: classes with counts, sizes, mean/std, split")
    p.add_argument("ref", help='"name" (newest), "name:version" or "sha256:<hex>"')
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(func=run_show)

    p = sub.add_parser("rm", help="delete one version (refused while a job trains on it)")
    p.add_argument("ref", metavar="NAME:VERSION", help="the version to delete")
    add_connection_options(p)
    p.set_defaults(func=run_rm)


def run_upload(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    with client_from_args(args) as client, _progress(path.name) as on_progress:
        try:
            info = client.upload(path, args.name, args.format, on_progress=on_progress)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(asdict(info), indent=2))
    else:
        print(f"stored {info.ref}: {info.samples:,} samples, {_outputs(info)}, {info.id}")
    return 0


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """An ``on_progress(sent, total)`` drawing a bar on stderr, or printing a plain line per
    tenth of the file when stderr is not a terminal."""
    if not sys.stderr.isatty():
        shown = [-1]

        def line(sent: int, total: int) -> None:
            tenth = 10 * sent // total if total else 10
            if tenth > shown[0]:
                shown[0] = tenth
                print(
                    f"uploading {label}: {sent / MiB:.1f} of {total / MiB:.1f} MiB ({10 * tenth}%)",
                    file=sys.stderr,
                    flush=True,
                )

        yield line
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[bold]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task(f"uploading {label}", total=None)
    with bar:
        yield lambda sent, total: bar.update(task, completed=sent, total=total)


def run_list(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        infos = client.list_datasets(args.name)
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    if not infos:
        where = f" named {args.name!r}" if args.name else ""
        print(f"no data sets{where} on the server at {client.address}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("data set", "format", "samples", "classes", "C×H×W", "size", "id", "created")
    for info in infos:
        table.add_row(
            info.ref,
            info.format,
            f"{info.samples:,}",
            str(len(info.classes)),
            f"{info.channels}×{_sizes(info)}",
            f"{info.size_bytes / MiB:.1f} MiB",
            info.id.removeprefix("sha256:")[:12],
            info.created_at,
        )
    Console(width=max(120, Console().width)).print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        info = client.get_dataset(args.ref)
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    print(f"data set  {info.ref} ({info.format}, from {info.source})")
    print(f"id        {info.id}")
    print(f"created   {info.created_at}, {info.size_bytes:,} bytes")
    split = (
        f", split train {info.train_samples:,} / test {info.test_samples:,}"
        if info.train_samples is not None and info.test_samples is not None
        else ", no split (the worker holds out 20% of each class)"
    )
    print(f"samples   {info.samples:,}{split}")
    print(f"images    {info.channels} channel(s), H×W {_sizes(info)}")
    print(f"mean      {_values(info.mean)}")
    print(f"std       {_values(info.std)}")
    if info.task == "regression":
        print(f"targets   {len(info.targets)} (regression: float targets; mean, std):")
        for index, (name, mean, std) in enumerate(
            zip(info.targets, info.target_mean, info.target_std, strict=True)
        ):
            print(f"  {index:>4}  {name:<24} {mean:>12.6g} {std:>12.6g}")
        return 0
    print(f"classes   {len(info.classes)}:")
    for index, (name, count) in enumerate(zip(info.classes, info.class_counts, strict=True)):
        print(f"  {index:>4}  {name:<24} {count:>9,}")
    return 0


def _outputs(info: DatasetInfo) -> str:
    """``10 classes`` or, for a regression set, ``3 targets (regression)``."""
    if info.task == "regression":
        return f"{len(info.targets)} targets (regression)"
    return f"{len(info.classes)} classes"


def run_rm(args: argparse.Namespace) -> int:
    match = _REF_RE.fullmatch(args.ref)
    if match is None:
        raise CliError(
            f"give the version to delete as NAME:VERSION (e.g. cats:2), got {args.ref!r}"
        )
    name, version = match["name"], int(match["version"])
    with client_from_args(args) as client:
        client.delete_dataset(name, version)
    print(f"deleted {name}:{version}")
    return 0


def _sizes(info: DatasetInfo) -> str:
    heights = _span(info.min_height, info.max_height)
    widths = _span(info.min_width, info.max_width)
    return f"{heights}×{widths}"


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)
