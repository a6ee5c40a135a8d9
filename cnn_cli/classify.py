"""`cnn classify IMAGE...`: classify image files with a served model (table, or JSON).

Images are PNG/JPEG files (the server converts and resizes them to the model's input) or
`.npy` arrays already in the model's input size and pixel range: (H, W), (C, H, W), or a
stack (N, C, H, W) of N images.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError

if TYPE_CHECKING:
    import numpy as np

#: Images per Classify request (well below the server's default limit of 256).
CHUNK = 64


@dataclass(frozen=True)
class _Input:
    label: str  # what the table shows: the path, or path[i] for one image of a stack
    data: bytes | np.ndarray


def add_classify_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "classify",
        help="classify images with a served model (table, or --json)",
        description="Classify PNG/JPEG files, or .npy arrays in the model's input size and "
        "pixel range, with a model the gRPC server has loaded.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG file or .npy array")
    p.add_argument(
        "--model", "-m", help="model name (default: the only loaded model; see `cnn models list`)"
    )
    p.add_argument("--version", "-v", type=int, default=0, help="model version (default: newest)")
    p.add_argument("--top-k", "-k", type=int, default=3, help="classes shown per image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_connection_options(p)
    p.set_defaults(func=run)


def _inputs(paths: list[str]) -> list[_Input]:
    import numpy as np

    inputs: list[_Input] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CliError(f"{name}: no such image file")
        if path.suffix.lower() != ".npy":
            inputs.append(_Input(name, path.read_bytes()))
            continue
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CliError(f"{name}: not a readable .npy array ({exc})") from None
        if array.dtype not in (np.uint8, np.float32):
            array = array.astype(np.float32)
        if array.ndim == 4:
            inputs.extend(_Input(f"{name}[{i}]", image) for i, image in enumerate(array))
        elif array.ndim in (2, 3):
            inputs.append(_Input(name, array))
        else:
            raise CliError(
                f"{name}: array shape {array.shape} is not (H, W), (C, H, W) or (N, C, H, W)"
            )
    return inputs


def _default_model(client: Any) -> str:
    models = client.list_models()
    if len(models) == 1:
        return next(iter(models))
    if not models:
        raise CliError(
            f"the server at {client.address} has no models loaded yet: train one "
            "(`cnn train submit SPEC --watch`) or wait for it to load"
        )
    raise CliError(f"the server has several models ({', '.join(sorted(models))}): pass --model")


def run(args: argparse.Namespace) -> int:
    from cnn_client import CnnClientError

    if args.top_k < 1:
        raise CliError(f"--top-k must be >= 1, got {args.top_k}")
    if args.version < 0:
        raise CliError(f"--version must be >= 1 (or 0 for the newest), got {args.version}")
    inputs = _inputs(args.images)
    with client_from_args(args) as client:
        model = args.model or _default_model(client)
        version = args.version
        rows: list[tuple[_Input, Any]] = []
        try:
            for start in range(0, len(inputs), CHUNK):
                chunk = inputs[start : start + CHUNK]
                result = client.classify(
                    [item.data for item in chunk], model=model, version=version, top_k=args.top_k
                )
                version = result.version  # later chunks use the same version
                rows.extend(zip(chunk, result.results, strict=True))
        except CnnClientError as exc:
            if exc.code.name == "NOT_FOUND":
                raise CliError(f"{exc}; see `cnn models list`") from None
            raise
    if args.json:
        print(json.dumps(_as_json(model, version, rows), indent=2))
    else:
        _print_table(model, version, rows)
    return 0


def _as_json(model: str, version: int, rows: list[tuple[_Input, Any]]) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "results": [
            {
                "image": item.label,
                "predictions": [
                    {"class_index": i, "class_name": n, "probability": round(p, 6)}
                    for i, n, p in zip(r.class_indices, r.class_names, r.probabilities, strict=True)
                ],
            }
            for item, r in rows
        ],
    }


def _print_table(model: str, version: int, rows: list[tuple[_Input, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model} version {version}")
    table.add_column("image")
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("runners-up")
    for item, r in rows:
        others = "  ".join(
            f"{n} {p:.3f}" for n, p in zip(r.class_names[1:], r.probabilities[1:], strict=True)
        )
        table.add_row(item.label, r.class_names[0], f"{r.probabilities[0]:.3f}", others)
    Console(width=max(100, Console().width)).print(table)
