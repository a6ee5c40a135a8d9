"""`cnn explain MODEL[:V] IMAGE --out DIR`: why a served model predicts what it does.

Asks the server's Classifier.Explain for the image's saliency map and the feature maps of the
chosen layers (default: every conv layer), prints the prediction and writes into DIR:
``saliency.png`` (heat map), ``layer-<index>-<type>.png`` (a grid of the layer's maps) and
``explain.npz`` (the float32 tensors: ``saliency`` (H, W), ``layer_<index>`` (C, H', W')).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError
from cnn_cli.model_ref import parse_model_ref

if TYPE_CHECKING:
    import numpy as np

    from cnn_client import ExplainResult


def add_explain_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain",
        help="saliency and feature maps of one image's prediction (PNGs in --out)",
        description="Explain a served model's prediction for one PNG/JPEG file or .npy array: "
        "writes saliency.png, one layer-<index>-<type>.png per layer and explain.npz to --out, "
        "and prints the prediction.",
    )
    p.add_argument("model", metavar="MODEL[:V]", help="model name, optionally :version")
    p.add_argument("image", metavar="IMAGE", help="PNG/JPEG file, or .npy (H, W) / (C, H, W)")
    p.add_argument("--out", "-o", type=Path, required=True, help="directory for the pictures")
    p.add_argument("--version", "-v", type=int, default=0, help="model version (default: newest)")
    p.add_argument(
        "--target",
        "-t",
        type=int,
        help="class (or regression output) index to explain (default: the predicted class)",
    )
    p.add_argument(
        "--layer",
        "-l",
        type=int,
        action="append",
        default=[],
        metavar="INDEX",
        help="layer index whose feature maps to draw (repeatable; default: every conv layer)",
    )
    p.add_argument(
        "--layer-type",
        action="append",
        default=[],
        metavar="TYPE",
        help="draw every layer of this type, e.g. relu (repeatable)",
    )
    p.add_argument("--top-k", "-k", type=int, default=3, help="classes printed")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_connection_options(p)
    p.set_defaults(func=run)


def _image(name: str) -> bytes | np.ndarray:
    import numpy as np

    path = Path(name)
    if not path.is_file():
        raise CliError(f"{name}: no such image file")
    if path.suffix.lower() != ".npy":
        return path.read_bytes()
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CliError(f"{name}: not a readable .npy array ({exc})") from None
    if array.ndim not in (2, 3):
        raise CliError(f"{name}: array shape {array.shape} is not (H, W) or (C, H, W)")
    return array if array.dtype in (np.uint8, np.float32) else array.astype(np.float32)


def write_pictures(result: ExplainResult, out: Path) -> list[Path]:
    """Write the PNGs and explain.npz of `result` into `out`; return the paths written."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    written = []
    saliency = out / "saliency.png"
    saliency.write_bytes(result.saliency_png)
    written.append(saliency)
    for layer in result.layers:
        path = out / f"layer-{layer.index}-{layer.type}.png"
        path.write_bytes(layer.png)
        written.append(path)
    arrays = {"saliency": result.saliency}
    arrays.update({f"layer_{layer.index}": layer.maps for layer in result.layers})
    tensors = out / "explain.npz"
    np.savez(tensors, **arrays)  # type: ignore[arg-type]
    written.append(tensors)
    return written


def run(args: argparse.Namespace) -> int:
    from cnn_client import CnnClientError

    name, version = parse_model_ref(args.model, args.version)
    if args.top_k < 1:
        raise CliError(f"--top-k must be >= 1, got {args.top_k}")
    image = _image(args.image)
    with client_from_args(args) as client:
        try:
            result = client.explain(
                image,
                model=name,
                version=version,
                target=args.target,
                layers=args.layer,
                layer_types=args.layer_type,
                top_k=args.top_k,
            )
        except CnnClientError as exc:
            if exc.code.name == "NOT_FOUND":
                raise CliError(f"{exc}; see `cnn models list`") from None
            raise
    written = write_pictures(result, args.out)
    if args.json:
        print(json.dumps(_as_json(result, written), indent=2))
    else:
        _print(result, written)
    return 0


def _as_json(result: ExplainResult, written: list[Path]) -> dict[str, Any]:
    return {
        "model": result.model,
        "version": result.version,
        "task": result.task,
        "predictions": [
            {"class_index": i, "class_name": n, "probability": round(p, 6)}
            for i, n, p in zip(
                result.class_indices, result.class_names, result.probabilities, strict=True
            )
        ],
        "outputs": [round(float(v), 6) for v in result.outputs],
        "target": result.target,
        "target_name": result.target_name,
        "files": [str(p) for p in written],
    }


def _print(result: ExplainResult, written: list[Path]) -> None:
    print(f"{result.model} version {result.version}")
    if result.task == "regression":
        print("predictions: " + ", ".join(f"{v:.4g}" for v in result.outputs))
    else:
        print(
            "prediction: "
            + "  ".join(
                f"{n} {p:.3f}"
                for n, p in zip(result.class_names, result.probabilities, strict=True)
            )
        )
    print(f"explained: {result.target_name} (output {result.target})")
    for path in written:
        print(f"wrote {path}")
