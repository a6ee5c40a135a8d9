"""`cnn models export|import`: model versions as ONNX files.

Over gRPC (`cnn.v1.Models`, `--address` / `CNN_ADDRESS`) by default; with ``--models-dir`` on
a model repository directly (no server), through the same `core` functions the server calls.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError
from cnn_cli.model_ref import parse_model_ref


def add_model_file_commands(sub: Any) -> None:
    """Register `export` and `import` under `cnn models`."""
    p = sub.add_parser(
        "export",
        help="write one model version as an ONNX file (raw pixels in, probabilities out)",
    )
    p.add_argument("name", metavar="MODEL[:V]", help="model name, optionally :version")
    p.add_argument("out", type=Path, metavar="OUT.onnx", help="file to write")
    p.add_argument("--version", "-v", type=int, default=0, help="version (default: newest)")
    _add_local_option(p)
    add_connection_options(p)
    p.set_defaults(func=run_export)

    p = sub.add_parser("import", help="publish an ONNX file as the next version of a model")
    p.add_argument("file", type=Path, metavar="MODEL.onnx", help="the ONNX file")
    p.add_argument("--name", required=True, help="model name to publish under")
    p.add_argument(
        "--class-names",
        metavar="A,B,...",
        help="class names, comma-separated, one per output (default: the file's, else 0, 1, ...)",
    )
    p.add_argument(
        "--pixel-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="range of raw pixel values (default: the file's, else 0 1)",
    )
    p.add_argument(
        "--mean",
        metavar="M[,M...]",
        help="per-channel mean subtracted first (default: the graph's Sub node, else 0)",
    )
    p.add_argument(
        "--std",
        metavar="S[,S...]",
        help="per-channel std divided by next (default: the graph's Mul/Div node, else 1)",
    )
    p.add_argument(
        "--resize",
        choices=("stretch", "crop"),
        help="how encoded images are brought to the input size (default: the file's, else stretch)",
    )
    _add_local_option(p)
    add_connection_options(p)
    p.set_defaults(func=run_import)


def _add_local_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="work on this model repository directly instead of through the server",
    )


def _floats(text: str | None, option: str) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise CliError(f"{option} must be comma-separated numbers, got {text!r}") from None


def run_export(args: argparse.Namespace) -> int:
    name, version = parse_model_ref(args.name, args.version)
    if args.models_dir is not None:
        version, data = _export_local(args.models_dir, name, version)
    else:
        with client_from_args(args) as client:
            exported = client.export_model(name, version)
        version, data = exported.version, exported.data
    args.out.write_bytes(data)
    print(f"exported {name} version {version} to {args.out} ({len(data):,} bytes)")
    return 0


def _export_local(models_dir: Path, name: str, version: int) -> tuple[int, bytes]:
    from core.artifacts import load_artifact
    from core.onnx_export import export_bytes
    from core.repository import ModelRepository

    repository = ModelRepository(models_dir)
    published = repository.versions(name)
    version = version or (published[-1] if published else 0)
    if version not in published:
        raise CliError(
            f"{models_dir}: model {name!r} has no version {version or ''}".rstrip()
            + f" (published: {', '.join(map(str, published)) or 'none'})"
        )
    return version, export_bytes(load_artifact(repository.path(name, version)), version)


def run_import(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    class_names = [n.strip() for n in args.class_names.split(",")] if args.class_names else []
    mean, std = _floats(args.mean, "--mean"), _floats(args.std, "--std")
    pixel_range = tuple(args.pixel_range) if args.pixel_range else None
    if args.models_dir is not None:
        from core.onnx_import import ImportOptions, import_onnx
        from core.repository import ModelRepository

        options = ImportOptions(
            class_names=class_names or None,
            pixel_range=pixel_range,
            mean=mean or None,
            std=std or None,
            resize=args.resize,
        )
        result = import_onnx(ModelRepository(args.models_dir), args.name, data, options)
        version, summary = result.version, str(result.model.summary())
    else:
        with client_from_args(args) as client:
            imported = client.import_model(
                data,
                args.name,
                class_names=class_names,
                pixel_range=pixel_range,
                mean=mean,
                std=std,
                resize=args.resize or "",
            )
        version, summary = imported.version, imported.summary_text
    digest = hashlib.sha256(data).hexdigest()[:12]
    print(f"imported {args.file} (sha256 {digest}…) as {args.name} version {version}")
    print(summary)
    return 0
