"""`cnn summary` and `cnn inspect`, called in-process (no servers needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cnn_cli.errors import CliError
from cnn_cli.inspect import inspect_model, model_version_dir
from cnn_cli.summary import parse_shape, spec_file_summary
from core.zoo import lenet5

LENET = lenet5()


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_summary_takes_the_input_shape_from_the_bundled_dataset(tmp_path: Path) -> None:
    spec = _write(
        tmp_path / "spec.json", {"dataset": {"name": "digits"}, "architecture": LENET[-3:]}
    )
    text = str(spec_file_summary(spec))
    assert "dense 84" in text and "1×8×8" in text


def test_summary_takes_the_input_shape_from_the_file_or_the_option(tmp_path: Path) -> None:
    spec = _write(tmp_path / "a.json", {"input_shape": [3, 8, 8], "architecture": LENET[-3:]})
    assert spec_file_summary(spec).input_shape == (3, 8, 8)
    assert spec_file_summary(spec, (1, 4, 4)).input_shape == (1, 4, 4)
    model_json = {"input": {"channels": 1, "height": 28, "width": 28}, "architecture": LENET}
    _write(tmp_path / "model.json", model_json)
    assert spec_file_summary(tmp_path).input_shape == (1, 28, 28)  # a model directory


def test_summary_without_an_input_shape_is_an_error(tmp_path: Path) -> None:
    spec = _write(tmp_path / "spec.json", LENET)
    with pytest.raises(CliError, match="input shape is unknown; pass --input-shape"):
        spec_file_summary(spec)
    assert "global" in str(spec_file_summary(spec, parse_shape("1,28,28")))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{", "not valid JSON"),
        ('{"layers": []}', "expected an architecture list"),
        ('{"architecture": [], "input_shape": "big"}', "three integers C, H, W"),
    ],
)
def test_summary_file_problems_are_one_line_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "spec.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CliError, match=message):
        spec_file_summary(path)


def test_input_shape_option_needs_three_integers() -> None:
    with pytest.raises(CliError, match="C,H,W"):
        parse_shape("28,28")


def _small_model(tmp_path: Path) -> Path:
    from core.artifacts import make_meta, save_artifact
    from core.datasets import Normalisation
    from core.model import Sequential

    arch: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 8, "kernel_size": 3},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ]
    model = Sequential.from_spec(arch, (1, 12, 12))
    meta = make_meta(
        model,
        name="m",
        class_names=["no", "yes"],
        normalisation=Normalisation(mean=[100.0], std=[50.0]),
    )
    save_artifact(tmp_path / "model", model, meta)
    return tmp_path / "model"


def test_inspect_writes_pictures_per_conv_layer_and_notes_the_missing_data_set(
    tmp_path: Path,
) -> None:
    model_dir = _small_model(tmp_path)  # records no data set, has no history or report
    image = tmp_path / "x.png"
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(image)  # RGB and 20x30: converted to grey and resized to 12x12
    result = inspect_model(model_dir, image, tmp_path / "out")
    assert [p.name for p in result.paths] == [
        "kernels_layer0.png",
        "features_layer0.png",
        "fields_layer0.png",
        "kernels_layer3.png",
        "features_layer3.png",
        "fields_layer3.png",
        "saliency.png",
        "index.html",
    ]
    for path in result.paths[:-1]:
        with Image.open(path) as im:
            assert im.format == "PNG"
    assert "does not record its data set" in result.notes["top-patches"][0]
    assert set(result.notes) == {"top-patches", "learning-curve", "confusion-matrix"}


def test_inspect_finds_the_newest_version_or_names_what_there_is(tmp_path: Path) -> None:
    from core.repository import ModelRepository

    repository = ModelRepository(tmp_path / "models")
    for _ in range(2):
        repository.publish("digits", lambda d: (d / "model.json").write_text("{}"))
    root = str(tmp_path / "models")
    assert model_version_dir("digits", 0, root) == repository.path("digits", 2)
    assert model_version_dir("digits", 1, root) == repository.path("digits", 1)
    assert model_version_dir("digits:1", 0, root) == repository.path("digits", 1)
    with pytest.raises(CliError, match=r"has no version 3 .* \(versions: 1, 2\)"):
        model_version_dir("digits", 3, root)
    with pytest.raises(CliError, match=r"no model 'cats' .* \(models there: digits\)"):
        model_version_dir("cats", 0, root)


def test_cnn_inspect_command_prints_what_it_wrote_and_why_patches_are_missing(
    tmp_path: Path,
) -> None:
    from tests.cli.conftest import run_cnn

    model_dir = _small_model(tmp_path)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(image)
    out = tmp_path / "out"
    done = run_cnn("inspect", str(model_dir), "--image", str(image), "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert str(out / "index.html") in lines and str(out / "fields_layer3.png") in lines
    assert any(line.startswith("note (top-patches): skipped: ") for line in lines)
    bad = run_cnn(
        "inspect",
        str(model_dir),
        "--image",
        str(image),
        "--out",
        str(out),
        "--max-test-images",
        "-1",
    )
    assert bad.returncode != 0 and "--max-test-images must be >= 0" in bad.stderr
