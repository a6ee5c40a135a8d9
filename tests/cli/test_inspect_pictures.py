"""`cnn inspect` on the example models: every picture, its pixel size and labels, and the page.

Models are built from the repository's own architectures (examples/digits-small.json, LeNet-5
from core.zoo, examples/shapes-rgb.json), published untrained with a learning curve (and, for
digits, an evaluation report): what is checked is the drawing, not what the model learned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cnn_cli.inspect import inspect_model
from core.inspection.page import SECTION_IDS
from core.inspection.report import Inspection
from tests.cli.conftest import REPO_ROOT

HISTORY = [
    {
        "epoch": e,
        "loss": 1 / e,
        "accuracy": 1 - 1 / (e + 1),
        "val_loss": 1.2 / e,
        "val_accuracy": 0.6,
    }
    for e in range(1, 4)
]


def _example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REPO_ROOT / "examples" / name).read_text())
    return doc


@dataclass(frozen=True)
class Case:
    model_dir: Path
    image: Path
    data_dir: Path
    conv: list[tuple[int, int, int]]  # (layer index, filters, input channels)


def _publish(
    directory: Path,
    arch: list[dict[str, Any]],
    shape: tuple[int, int, int],
    classes: list[str],
    *,
    pixel_range: tuple[float, float] = (0.0, 255.0),
    dataset: dict[str, Any] | None = None,
    resize: str = "stretch",
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Path, list[tuple[int, int, int]]]:
    from core.artifacts import make_meta, save_artifact
    from core.datasets import Normalisation
    from core.evaluation import evaluate
    from core.model import Sequential

    model = Sequential.from_spec(arch, shape, seed=0)
    c = shape[0]
    norm = Normalisation(mean=[pixel_range[1] / 2] * c, std=[pixel_range[1] / 4] * c)
    meta = make_meta(
        model,
        name=directory.name,
        class_names=classes,
        normalisation=norm,
        pixel_range=pixel_range,
        resize=resize,  # type: ignore[arg-type]
        dataset=dataset,
        version=1,
    )
    report = evaluate(model, *test, classes, normalisation=norm) if test else None
    save_artifact(directory, model, meta, history=HISTORY, evaluation=report)
    conv = [
        (
            i,
            layer.parameters()["weight"].value.shape[0],
            layer.parameters()["weight"].value.shape[1],
        )
        for i, layer in enumerate(model.layers)
        if layer.type_name == "conv2d"
    ]
    return directory, conv


def _png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Case:
    from core.datasets import DIGIT_CLASSES, load_dataset

    tmp = tmp_path_factory.mktemp("digits")
    data = load_dataset({"name": "digits"})
    assert data.x_test is not None and data.y_test is not None
    model_dir, conv = _publish(
        tmp / "digits-small",
        _example("digits-small.json")["architecture"],
        (1, 8, 8),
        list(DIGIT_CLASSES),
        pixel_range=(0.0, 16.0),
        dataset={"name": "digits"},
        test=(data.x_test, data.y_test),
    )
    image = _png(tmp / "seven.png", (data.x_test[0, 0] * 255 // 16).astype(np.uint8))
    return Case(model_dir, image, tmp / "data", conv)


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> Case:
    from core.zoo import lenet5

    tmp = tmp_path_factory.mktemp("lenet")
    model_dir, conv = _publish(
        tmp / "lenet5",
        lenet5(),
        (1, 28, 28),
        [str(d) for d in range(10)],
        dataset={"name": "mnist-5k"},
    )
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    return Case(model_dir, _png(tmp / "noise.png", pixels), tmp / "data", conv)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The RGB example on an uploaded data set of coloured shapes (40x40, cropped to 32x32)."""
    from core.datastore import DataStore
    from tests.support.shapes import CLASSES, draw_shape
    from tests.support.stored_datasets import store_npz

    tmp = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(1)
    x = np.stack([draw_shape(i % 3, 40, 40, rng).transpose(2, 0, 1) for i in range(30)])
    stored = store_npz(DataStore(tmp / "data"), "shapes", x, np.arange(30) % 3, list(CLASSES))
    spec = _example("shapes-rgb.json")
    model_dir, conv = _publish(
        tmp / "shapes-rgb",
        spec["architecture"],
        (3, 32, 32),
        list(CLASSES),
        dataset={"name": "shapes", "version": stored.version, "id": f"sha256:{stored.digest}"},
        resize="crop",
    )
    image = _png(tmp / "circle.png", draw_shape(0, 50, 60, rng))
    return Case(model_dir, image, tmp / "data", conv)


def _check_pictures(result: Inspection, case: Case, patches: bool, rgb: bool) -> dict[str, Any]:
    by_name = {p.path.name: p for p in result.pictures}
    expected = {"saliency.png", "learning_curve.png"}
    for i, _, _ in case.conv:
        expected |= {f"kernels_layer{i}.png", f"features_layer{i}.png", f"fields_layer{i}.png"}
        if patches:
            expected.add(f"top_patches_layer{i}.png")
    if rgb:
        expected.add(f"kernels_rgb_layer{case.conv[0][0]}.png")
    assert expected <= set(by_name), expected - set(by_name)
    for picture in result.pictures:
        with Image.open(picture.path) as im:
            assert im.format == "PNG"
            assert im.size == picture.size
            assert im.size[0] >= 300 and im.size[1] >= 200, (picture.path.name, im.size)
    for i, filters, channels in case.conv:
        title = f"layer {i} conv2d"
        kernels = by_name[f"kernels_layer{i}.png"].texts
        assert any(t.startswith(f"{title}: kernels") for t in kernels)
        assert {"f0", f"f{min(filters, 32) - 1}", "c0", f"c{min(channels, 16) - 1}"} <= set(kernels)
        assert "weight" in kernels  # the colour bar
        features = by_name[f"features_layer{i}.png"].texts
        assert {"ch 0", f"ch {filters - 1}"} <= set(features)
        fields = by_name[f"fields_layer{i}.png"].texts
        assert any("receptive field" in t and "jump" in t for t in fields)
        assert any(t.startswith(f"ch {filters - 1} @ (") for t in fields)
        if patches:
            top = by_name[f"top_patches_layer{i}.png"].texts
            assert {"f0", f"f{filters - 1}", "1", "9"} <= set(top)
    if rgb:
        colour = by_name[f"kernels_rgb_layer{case.conv[0][0]}.png"].texts
        assert {"f0", f"f{case.conv[0][1] - 1}"} <= set(colour)
    assert any(t.startswith("saliency of class") for t in by_name["saliency.png"].texts)
    page = result.page
    assert page is not None and page.name == "index.html"
    text = page.read_text()
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in text
    assert text.count("data:image/png;base64,") == len(result.pictures)
    return by_name


def test_digits_model_gets_every_picture_and_its_top_patches(digits: Case, tmp_path: Path) -> None:
    result = inspect_model(digits.model_dir, digits.image, tmp_path, data_dir=digits.data_dir)
    by_name = _check_pictures(result, digits, patches=True, rgb=False)
    assert "confusion_matrix.png" in by_name
    assert result.notes == {}
    probabilities = [p for _, p in result.prediction]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6


def test_lenet5_gets_every_picture_for_both_conv_layers(lenet: Case, tmp_path: Path) -> None:
    result = inspect_model(
        lenet.model_dir, lenet.image, tmp_path, data_dir=lenet.data_dir, max_test_images=50
    )
    assert [i for i, _, _ in lenet.conv] == [0, 3]
    _check_pictures(result, lenet, patches=True, rgb=False)
    # no evaluation report was published with this version
    assert "no evaluation report" in " ".join(result.notes["confusion-matrix"])


def test_rgb_model_on_an_uploaded_data_set_gets_colour_kernels_and_patches(
    shapes: Case, tmp_path: Path
) -> None:
    result = inspect_model(shapes.model_dir, shapes.image, tmp_path, data_dir=shapes.data_dir)
    _check_pictures(result, shapes, patches=True, rgb=True)
    assert "top-patches" not in result.notes
    assert "shapes:1" in (tmp_path / "index.html").read_text()  # the patches' source


def test_a_data_set_that_is_not_here_skips_the_top_patches_with_a_note(
    shapes: Case, tmp_path: Path
) -> None:
    result = inspect_model(
        shapes.model_dir, shapes.image, tmp_path / "out", data_dir=tmp_path / "empty"
    )
    _check_pictures(result, shapes, patches=False, rgb=True)
    (note,) = result.notes["top-patches"]
    assert "the data set shapes:1 is not available here" in note
    assert not any(p.path.name.startswith("top_patches") for p in result.pictures)
    assert "is not available here" in (tmp_path / "out" / "index.html").read_text()
