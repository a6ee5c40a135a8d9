"""`cnn inspect MODEL[:V] --image FILE --out DIR`: pictures of what the network sees, and a page.

For every conv layer: kernels (diverging scale, filters and channels labelled; RGB first-layer
filters as colour images too), the image's feature maps, the receptive field of each channel's
most active unit drawn on the image, and the top-9 test-split patches per filter; plus the
saliency of the predicted class, the learning curve and the confusion matrix, all in one
self-contained ``index.html`` (:mod:`core.inspection`). Runs locally on the model repository;
heavy modules (numba, matplotlib) are imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.errors import CliError
from cnn_cli.model_ref import parse_model_ref

if TYPE_CHECKING:
    from core.inspection.report import Inspection


def add_inspect_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="draw kernels, feature maps, receptive fields, top patches and saliency of a "
        "model for one image, and an HTML page of them",
    )
    p.add_argument(
        "model",
        metavar="MODEL[:V]",
        help="a model name in the repository (optionally :version), or a version directory",
    )
    p.add_argument("--image", required=True, help="an image file (PNG/JPEG)")
    p.add_argument("--out", required=True, help="output directory (PNGs and index.html)")
    p.add_argument("--version", "-v", type=int, default=0, help="version (default: newest)")
    p.add_argument("--models-dir", help="model repository (default: CNN_MODELS_DIR or ./models)")
    p.add_argument(
        "--data-dir",
        help="data directory holding uploaded and npz/folder data sets, for the top patches "
        "(default: CNN_DATA_DIR or ./data)",
    )
    p.add_argument(
        "--max-test-images",
        type=int,
        default=0,
        metavar="N",
        help="look for top patches in the first N test images only (default: all)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnn_cli.settings import cli_settings

    image = Path(args.image)
    if not image.is_file():
        raise CliError(f"{args.image}: no such image file")
    if args.max_test_images < 0:
        raise CliError(f"--max-test-images must be >= 0 (0 = all), got {args.max_test_images}")
    settings = cli_settings()
    models_dir = args.models_dir or settings.models_dir
    model_dir = model_version_dir(args.model, args.version, models_dir)
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    result = inspect_model(
        model_dir, image, Path(args.out), data_dir=data_dir, max_test_images=args.max_test_images
    )
    for path in result.paths:
        print(path)
    for section, notes in result.notes.items():
        for note in notes:
            print(f"note ({section}): {note}")
    return 0


def model_version_dir(model: str, version: int, models_dir: str | Path | None) -> Path:
    """A model version directory: ``model`` itself, or <models dir>/<model>/<V or newest> for
    ``model`` = ``NAME`` or ``NAME:V``.

    Raises:
        CliError: no such directory, model or version (naming what there is).
    """
    path = Path(model)
    if (path / "model.json").is_file():
        return path
    from core.repository import ModelRepository

    name, version = parse_model_ref(model, version)
    root = Path(models_dir or "models")
    if not root.is_dir():
        raise CliError(
            f"{model!r} is not a model directory and the repository {root} does not exist "
            "(pass --models-dir or set CNN_MODELS_DIR)"
        )
    repository = ModelRepository(root)
    versions = repository.versions(name) if "/" not in name else []
    if not versions:
        known = ", ".join(repository.names()) or "none"
        raise CliError(f"no model {name!r} in {root} (models there: {known})")
    if version and version not in versions:
        listed = ", ".join(map(str, versions))
        raise CliError(f"model {name!r} has no version {version} in {root} (versions: {listed})")
    return repository.path(name, version or max(versions))


def inspect_model(
    model_dir: Path,
    image_path: Path,
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    max_test_images: int = 0,
) -> Inspection:
    """Inspect the version in ``model_dir`` looking at the image file ``image_path``: write the
    pictures and ``index.html`` into ``out_dir`` (see :mod:`core.inspection.report`).

    The image is converted to the model's channels, resized to its input size and scaled to
    its pixel range, as the server does with an encoded image. The top patches come from the
    test split of the version's data set when ``data_dir`` (or an installed package) has it.

    Raises:
        core.errors.CnnError: an unreadable model or image (one line for the user).
    """
    from dataclasses import replace

    from cnn_cli.held_out import load_test_images
    from core.artifacts import image_input, load_artifact
    from core.images import open_image
    from core.inspection.report import inspect_model as draw

    loaded = load_artifact(model_dir)
    pixels = image_input(open_image(image_path.read_bytes(), str(image_path)), loaded.meta.input)
    test, why = load_test_images(loaded.meta, data_dir or Path("data"))
    if test is not None and max_test_images:
        shown = min(max_test_images, test.images.shape[0])
        test = replace(test, images=test.images[:shown], source=f"{test.source}, first {shown:,}")
    return draw(loaded, pixels, out_dir, image_name=image_path.name, test=test, test_note=why)
