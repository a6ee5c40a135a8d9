"""`cnn models list|show`: what the gRPC server has loaded, with layer summaries (`export` and
`import` of ONNX files live in `cnn_cli.model_files`).

`show` prints the input (C×H×W, pixel range, and how encoded images of another size are
resized) and the layer table the server computed from the artifact: output shape, parameters
and the receptive field of each layer (size, jump between neighbouring units, start), then the
version's evaluation report on its held-out test split when it has one. Everything comes from
the server (GetModel); ``--models-dir`` (a local copy or mount of the server's model
repository) only lets `show` say where the version's pictures are on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError
from cnn_cli.model_ref import parse_model_ref
from core.confusion_plot import CONFUSION_MATRIX_PNG
from core.regression import RegressionReport

#: Metrics shown in `models list` and at the top of `models show`, when recorded.
HEADLINE_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy")
#: A regression model's headline: R² (unitless) where a classifier shows accuracy.
REGRESSION_HEADLINE_METRICS = ("test_r2", "val_r2", "train_r2")


def add_models_commands(subparsers: Any) -> None:
    models = subparsers.add_parser(
        "models",
        help="list the server's models, show one with its layer summary, export or import "
        "ONNX files",
        description="Models loaded by the gRPC server.",
    )
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "list", help="models: state, version policy, served versions, data set and accuracy"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "show", help="one model version: input, classes, metrics, layers with receptive fields"
    )
    p.add_argument("name", metavar="MODEL[:V]", help="model name, optionally :version")
    p.add_argument("--version", "-v", type=int, default=0, help="version (default: newest)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="the server's model repository as seen from here: print the pictures' paths",
    )
    add_connection_options(p)
    p.set_defaults(func=run_show)

    from cnn_cli.model_files import add_model_file_commands
    from cnn_cli.model_lifecycle import add_lifecycle_commands

    add_model_file_commands(sub)
    add_lifecycle_commands(sub)


def _get_model(client: Any, name: str, version: int) -> Any:
    from cnn_client import CnnClientError

    try:
        return client.get_model(name, version)
    except CnnClientError as exc:
        if exc.code.name == "NOT_FOUND":
            raise CliError(f"{exc}; see `cnn models list`") from None
        raise


def run_list(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        statuses = client.model_statuses()
        # An unloaded model (or one whose versions all failed) has no version to describe.
        infos = {s.name: _get_model(client, s.name, 0) for s in statuses if s.versions}
    if args.json:
        doc = []
        for status in statuses:
            info = infos.get(status.name)
            doc.append(
                {
                    "name": status.name,
                    "state": status.state,
                    "policy": str(status.policy) if status.policy else None,
                    "versions": status.versions,
                    "default_version": status.default_version,
                    "version_states": [dataclasses.asdict(v) for v in status.version_states],
                    "dataset": info.dataset if info else None,
                    "input_shape": list(info.input_shape) if info else None,
                    "classes": len(info.class_names) if info else None,
                    "metrics": info.metrics if info else {},
                }
            )
        print(json.dumps(doc, indent=2))
        return 0
    if not statuses:
        print(f"no models in the repository of the server at {client.address}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "model",
        "state",
        "policy",
        "serving",
        "default",
        "data set",
        "input C×H×W",
        "classes",
        "accuracy",
    )
    for status in statuses:
        info = infos.get(status.name)
        table.add_row(
            status.name,
            status.state.lower(),
            str(status.policy or ""),
            ", ".join(map(str, status.versions)) or "none",
            str(status.default_version or "-"),
            info.dataset if info else "",
            "×".join(map(str, info.input_shape)) if info else "",
            str(len(info.class_names)) if info else "",
            _headline(info.metrics) if info else "",
        )
    Console(width=max(120, Console().width)).print(table)
    return 0


def _headline(metrics: dict[str, float]) -> str:
    accuracy = ", ".join(
        f"{key.removesuffix('_accuracy')} {metrics[key]:.3f}"
        for key in HEADLINE_METRICS
        if key in metrics
    )
    return accuracy or ", ".join(
        f"{key.removesuffix('_r2')} R² {metrics[key]:.3f}"
        for key in REGRESSION_HEADLINE_METRICS
        if key in metrics
    )


def run_show(args: argparse.Namespace) -> int:
    name, version = parse_model_ref(args.name, args.version)
    with client_from_args(args) as client:
        info = _get_model(client, name, version)
    if args.json:
        doc = dataclasses.asdict(info)
        doc["evaluation"] = info.evaluation.model_dump() if info.evaluation else None
        print(json.dumps(doc, indent=2))
        return 0
    c, h, w = info.input_shape
    lo, hi = info.pixel_range
    print(f"model     {info.name} version {info.version} (loaded: {_versions(info.versions)})")
    print(f"input     {c}×{h}×{w}, pixel range [{lo:g}, {hi:g}]{_resize(info.resize)}")
    if info.task == "regression":
        targets = ", ".join(info.target_names)
        print(f"targets   {len(info.target_names)}: {targets} (regression: served by ModelInfer)")
    else:
        print(f"classes   {len(info.class_names)}: {', '.join(info.class_names)}")
    print(f"data set  {info.dataset or 'unknown'}")
    print(f"created   {info.created_at}" + (f" by job {info.job_id}" if info.job_id else ""))
    if info.metrics:
        print(f"metrics   {_headline(info.metrics) or _all_metrics(info.metrics)}")
    print(f"params    {info.total_parameters:,}")
    print()
    print(info.summary_text.rstrip() or _layer_table(info))
    print()
    if info.evaluation is None:
        print("evaluation  none (the data set had no test split, or the version predates reports)")
        return 0
    from cnn_cli.evaluation_render import headline, regression_lines, render_details

    if isinstance(info.evaluation, RegressionReport):
        first, *rest = regression_lines(info.evaluation)
        print(f"evaluation  {first}")
        print("\n".join(rest))
        return 0
    first, *rest = headline(info.evaluation)
    print(f"evaluation  {first}")
    for line in rest:
        print(f"            {line}")
    print(f"picture     {_picture(args.models_dir, info.name, info.version)}")
    print()
    print(render_details(info.evaluation))
    return 0


#: How each resize mode brings an encoded image of another size to the input's H x W.
RESIZE_MODES = {
    "stretch": "both sides resized, aspect not kept",
    "crop": "aspect kept, centre cropped",
}


def _resize(mode: str) -> str:
    """The input line's resize part: empty when the server does not say."""
    if not mode:
        return ""
    return f", images resized by {mode}" + (
        f" ({RESIZE_MODES[mode]})" if mode in RESIZE_MODES else ""
    )


def _picture(models_dir: Path | None, name: str, version: int) -> str:
    """Where the version's confusion-matrix PNG is: a path when ``models_dir`` holds it."""
    if models_dir is not None:
        path = models_dir / name / str(version) / CONFUSION_MATRIX_PNG
        if path.is_file():
            return str(path.resolve())
        return f"not found at {path} (is --models-dir the server's model repository?)"
    return f"{name}/{version}/{CONFUSION_MATRIX_PNG} in the server's model repository"


def _versions(versions: list[int]) -> str:
    return ", ".join(map(str, versions)) or "none"


def _all_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))


def _layer_table(info: Any) -> str:
    """Fallback when the server sent no text summary: the structured layer rows."""
    lines = [f"{'#':>3}  {'layer':<18} {'output':<14} {'params':>9}  receptive field"]
    for layer in info.layers:
        shape = "×".join(map(str, layer.output_shape))
        if layer.receptive_field is None:
            field = "whole input"
        else:
            (rh, rw), (jh, jw) = layer.receptive_field, layer.jump
            field = f"{rh}×{rw} (jump {jh}×{jw})"
        lines.append(
            f"{layer.index:>3}  {layer.type:<18} {shape:<14} {layer.parameters:>9,}  {field}"
        )
    return "\n".join(lines)
