"""Model artifacts: exact round trip, sha256 verification, clear errors for damaged files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.artifacts import (
    InputRangeError,
    ModelMeta,
    load_artifact,
    make_meta,
    preprocess,
    save_artifact,
)
from core.datasets import Normalisation
from core.errors import ArtifactError, ShapeError
from core.model import Sequential

ARCH: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dropout", "rate": 0.3},
    {"type": "dense", "units": 3},
]


def _model_and_meta() -> tuple[Sequential, ModelMeta]:
    model = Sequential.from_spec(ARCH, (1, 8, 8), seed=7)
    # move the batchnorm running statistics away from their initial values
    model.forward(np.random.default_rng(0).normal(2.0, 3.0, (16, 1, 8, 8)), training=True)
    meta = make_meta(
        model,
        name="tiny",
        class_names=["a", "b", "c"],
        normalisation=Normalisation(mean=[4.5], std=[6.0]),
        pixel_range=(0.0, 16.0),
        metrics={"test_accuracy": 0.5},
        dataset={"name": "digits"},
        job_id="job-1",
    )
    return model, meta


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, Sequential, ModelMeta]:
    model, meta = _model_and_meta()
    written = save_artifact(tmp_path / "m", model, meta)
    return tmp_path / "m", model, written


def test_save_load_predict_gives_identical_outputs(saved) -> None:
    directory, model, meta = saved
    loaded = load_artifact(directory)
    images = np.random.default_rng(1).integers(0, 17, (10, 1, 8, 8)).astype(np.uint8)
    x = preprocess(meta, images)
    np.testing.assert_array_equal(loaded.model.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict_proba(images), model.predict_proba(x))
    for key, value in model.named_arrays().items():
        np.testing.assert_array_equal(loaded.model.named_arrays()[key], value)
    assert loaded.meta == meta
    assert loaded.meta.weights_sha256 and loaded.meta.architecture == model.architecture


def test_model_json_records_input_preprocessing_and_provenance(saved) -> None:
    directory, _, _ = saved
    doc = json.loads((directory / "model.json").read_text())
    assert doc["format_version"] == 1
    assert doc["input"] == {
        "channels": 1,
        "height": 8,
        "width": 8,
        "dtype": "uint8",
        "pixel_range": [0.0, 16.0],
        "resize": "stretch",
    }
    assert doc["preprocessing"] == {"mean": [4.5], "std": [6.0]}
    assert doc["class_names"] == ["a", "b", "c"] and doc["job_id"] == "job-1"
    assert doc["dataset"] == {"name": "digits"} and doc["created_at"]
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_truncated_weights_are_detected(saved) -> None:
    directory, _, _ = saved
    weights = directory / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"sha256 .* does not match .*corrupt or truncated"):
        load_artifact(directory)


def test_a_flipped_byte_in_the_weights_is_detected(saved) -> None:
    directory, _, _ = saved
    weights = directory / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(directory)


def test_truncated_model_json_is_a_clear_error(saved) -> None:
    directory, _, _ = saved
    path = directory / "model.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(ArtifactError, match=r"model\.json: not valid JSON"):
        load_artifact(directory)


def test_missing_weights_file_is_a_clear_error(saved) -> None:
    directory, _, _ = saved
    (directory / "weights.npz").unlink()
    with pytest.raises(ArtifactError, match=r"weights\.npz: cannot read"):
        load_artifact(directory)


def test_unsupported_format_version_is_refused(saved) -> None:
    directory, _, _ = saved
    doc = json.loads((directory / "model.json").read_text())
    doc["format_version"] = 99
    (directory / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported"):
        load_artifact(directory)


def test_pickled_arrays_are_refused_even_with_a_matching_digest(saved) -> None:
    import hashlib

    directory, _, _ = saved
    weights = directory / "weights.npz"
    evil: dict[str, Any] = {"0.weight": np.array([{"x": 1}], dtype=object)}
    np.savez(weights, **evil)
    doc = json.loads((directory / "model.json").read_text())
    doc["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (directory / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"not a readable \.npz"):
        load_artifact(directory)


def test_weights_for_another_architecture_are_refused(saved, tmp_path: Path) -> None:
    directory, _, meta = saved
    other = Sequential.from_spec(
        [*ARCH[:4], {"type": "flatten"}, {"type": "dense", "units": 3}], (1, 8, 8)
    )
    save_artifact(tmp_path / "other", other, meta.model_copy())
    (directory / "weights.npz").write_bytes((tmp_path / "other" / "weights.npz").read_bytes())
    doc = json.loads((directory / "model.json").read_text())
    doc["weights_sha256"] = json.loads((tmp_path / "other" / "model.json").read_text())[
        "weights_sha256"
    ]
    (directory / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="weights do not match the architecture"):
        load_artifact(directory)


def test_preprocess_checks_shape_and_pixel_range(saved) -> None:
    _, _, meta = saved
    x = preprocess(meta, np.full((2, 8, 8), 16, np.uint8))  # (N, H, W) for one channel
    assert x.shape == (2, 1, 8, 8) and x.dtype == np.float32
    assert float(x[0, 0, 0, 0]) == pytest.approx((16 - 4.5) / 6.0)
    with pytest.raises(ShapeError, match=r"expected \(N, 1, 8, 8\)"):
        preprocess(meta, np.zeros((2, 1, 8, 9), np.uint8))
    with pytest.raises(InputRangeError, match=r"outside the model's range 0..16"):
        preprocess(meta, np.full((1, 1, 8, 8), 200, np.uint8))
    with pytest.raises(InputRangeError, match="NaN"):
        preprocess(meta, np.full((1, 1, 8, 8), np.nan, np.float32))


def test_save_refuses_meta_that_does_not_fit_the_model(tmp_path: Path) -> None:
    model, meta = _model_and_meta()
    with pytest.raises(ArtifactError, match="2 class names, the model outputs 3"):
        save_artifact(tmp_path, model, meta.model_copy(update={"class_names": ["a", "b"]}))


def test_history_adds_a_learning_curve_png(tmp_path: Path) -> None:
    from PIL import Image

    model, meta = _model_and_meta()
    history = [
        {
            "epoch": e,
            "loss": 1 / e,
            "accuracy": 1 - 1 / (e + 1),
            "val_loss": 1.2 / e,
            "val_accuracy": 0.9,
        }
        for e in range(1, 6)
    ]
    save_artifact(tmp_path, model, meta, history=history)
    with Image.open(tmp_path / "learning_curve.png") as im:
        assert im.size == (960, 380)
        assert im.info["Software"].startswith("Matplotlib")  # not the old hand-drawn axes
    load_artifact(tmp_path)
