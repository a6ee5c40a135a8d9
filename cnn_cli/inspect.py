"""`cnn inspect MODEL --image FILE --out DIR`: first-layer kernels and one image's feature maps.

Writes ``kernels_layer<i>.png`` (the first conv layer's kernels) and
``features_layer<i>_conv2d.png`` (the image's maps after each conv layer) as PNG grids drawn by
:mod:`core.pictures`. Heavy modules (numba, Pillow) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cnn_cli.errors import CliError


def add_inspect_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect", help="write first-layer kernels and feature maps of an image as PNG grids"
    )
    p.add_argument(
        "model", help="a model name in the repository, or a version directory (model.json)"
    )
    p.add_argument("--image", required=True, help="an image file (PNG/JPEG)")
    p.add_argument("--out", required=True, help="output directory for the PNGs")
    p.add_argument("--version", "-v", type=int, default=0, help="version (default: newest)")
    p.add_argument("--models-dir", help="model repository (default: CNN_MODELS_DIR or ./models)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    image = Path(args.image)
    if not image.is_file():
        raise CliError(f"{args.image}: no such image file")
    model_dir = model_version_dir(args.model, args.version, args.models_dir)
    for path in inspect_model(model_dir, image, Path(args.out)):
        print(path)
    return 0


def model_version_dir(model: str, version: int, models_dir: str | None) -> Path:
    """A model version directory: `model` itself, or <models dir>/<model>/<version or newest>.

    Raises:
        CliError: no such directory, model or version (naming what there is).
    """
    path = Path(model)
    if (path / "model.json").is_file():
        return path
    from core.repository import ModelRepository

    root = Path(models_dir or os.environ.get("CNN_MODELS_DIR") or "models")
    if not root.is_dir():
        raise CliError(
            f"{model!r} is not a model directory and the repository {root} does not exist "
            "(pass --models-dir or set CNN_MODELS_DIR)"
        )
    repository = ModelRepository(root)
    versions = repository.versions(model) if "/" not in model else []
    if not versions:
        known = ", ".join(repository.names()) or "none"
        raise CliError(f"no model {model!r} in {root} (models there: {known})")
    if version and version not in versions:
        listed = ", ".join(map(str, versions))
        raise CliError(f"model {model!r} has no version {version} in {root} (versions: {listed})")
    return repository.path(model, version or max(versions))


def inspect_model(model_dir: Path, image_path: Path, out_dir: Path) -> list[Path]:
    """Write the kernel grid of the first conv layer and the feature-map grid of every conv
    layer for one image into ``out_dir``; returns the paths written, in layer order.

    The image is converted to the model's channels, resized to its input size and scaled to
    its pixel range, as the server does with an encoded image.

    Raises:
        core.errors.CnnError: an unreadable model or image (one line for the user).
    """
    from core.artifacts import image_input, load_artifact, preprocess
    from core.images import open_image
    from core.pictures import feature_map_grid, kernel_grid

    loaded = load_artifact(model_dir)
    model, meta = loaded.model, loaded.meta
    out_dir.mkdir(parents=True, exist_ok=True)
    pixels = image_input(open_image(image_path.read_bytes(), str(image_path)), meta.input)
    x = preprocess(meta, pixels[None])
    written: list[Path] = []
    for index, layer in enumerate(model.layers):
        x = layer.forward(x, training=False)
        if layer.type_name != "conv2d":
            continue
        if not written:  # the first conv layer: its kernels see the image itself
            path = out_dir / f"kernels_layer{index}.png"
            kernel_grid(layer.parameters()["weight"].value).save(path)
            written.append(path)
        path = out_dir / f"features_layer{index}_conv2d.png"
        feature_map_grid(x[0]).save(path)
        written.append(path)
    return written
