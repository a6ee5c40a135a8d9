"""The evaluation report stored with a model version: ``evaluation.json`` and
``confusion_matrix.png`` beside ``model.json``; missing means no report, damaged means a damaged
version; the picture is a real PNG; core stays importable without matplotlib."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.artifacts import (
    CONFUSION_MATRIX_PNG,
    EVALUATION_JSON,
    MODEL_JSON,
    ModelMeta,
    load_artifact,
    make_meta,
    read_evaluation,
    save_artifact,
)
from core.confusion_plot import confusion_matrix_image_bytes
from core.datasets import Normalisation
from core.errors import ArtifactError
from core.evaluation import EvaluationReport, report_from_logits
from core.model import Sequential

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["zero", "one", "two"]


def _model_and_meta() -> tuple[Sequential, ModelMeta]:
    model = Sequential.from_spec(
        [{"type": "flatten"}, {"type": "dense", "units": 3}], (1, 4, 4), seed=2
    )
    meta = make_meta(
        model,
        name="tiny",
        class_names=CLASSES,
        normalisation=Normalisation(mean=[8.0], std=[4.0]),
        pixel_range=(0.0, 16.0),
    )
    return model, meta


def _report(k: int = 3, n: int = 60, seed: int = 0, names: list[str] | None = None):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    return report_from_logits(logits, y, names or [f"c{i}" for i in range(k)])


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, EvaluationReport]:
    model, meta = _model_and_meta()
    report = _report(names=CLASSES)
    save_artifact(tmp_path / "v", model, meta, evaluation=report)
    return tmp_path / "v", report


def test_report_round_trips_through_the_version_directory(saved) -> None:  # type: ignore[no-untyped-def]
    directory, report = saved
    assert read_evaluation(directory) == report
    assert load_artifact(directory).evaluation == report


def test_saved_report_and_picture_sit_beside_model_json(saved) -> None:  # type: ignore[no-untyped-def]
    directory, _ = saved
    names = {p.name for p in directory.iterdir()}
    assert {MODEL_JSON, EVALUATION_JSON, CONFUSION_MATRIX_PNG} <= names
    assert not any(name.startswith(".") for name in names)  # no temporary files left


def test_a_version_without_report_loads_with_none(tmp_path: Path) -> None:
    model, meta = _model_and_meta()
    save_artifact(tmp_path / "v", model, meta)
    assert not (tmp_path / "v" / EVALUATION_JSON).exists()
    assert not (tmp_path / "v" / CONFUSION_MATRIX_PNG).exists()
    assert read_evaluation(tmp_path / "v") is None
    assert load_artifact(tmp_path / "v").evaluation is None


def test_a_truncated_report_names_the_file(saved) -> None:  # type: ignore[no-untyped-def]
    directory, _ = saved
    path = directory / EVALUATION_JSON
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ArtifactError, match=r"evaluation\.json: not valid JSON"):
        load_artifact(directory)


def test_an_inconsistent_report_names_the_file_and_the_field(saved) -> None:  # type: ignore[no-untyped-def]
    directory, report = saved
    doc = report.model_dump() | {"confusion_matrix": [0] * 4}
    (directory / EVALUATION_JSON).write_text(json.dumps(doc))
    with pytest.raises(
        ArtifactError, match=r"(?s)evaluation\.json: invalid evaluation report.*K\*K"
    ):
        read_evaluation(directory)


def test_a_report_of_other_classes_is_refused(saved) -> None:  # type: ignore[no-untyped-def]
    directory, _ = saved
    (directory / EVALUATION_JSON).write_text(_report(names=["a", "b", "c"]).model_dump_json())
    with pytest.raises(ArtifactError, match=r"evaluation\.json: classes \['a', 'b', 'c'\] differ"):
        load_artifact(directory)


def test_saving_a_report_of_other_classes_is_refused(tmp_path: Path) -> None:
    model, meta = _model_and_meta()
    with pytest.raises(ArtifactError, match="differ from the meta's class_names"):
        save_artifact(tmp_path / "v", model, meta, evaluation=_report(names=["a", "b", "c"]))
    assert not (tmp_path / "v" / MODEL_JSON).exists()


def test_loaded_model_evaluates_raw_images_with_its_own_preprocessing(saved) -> None:  # type: ignore[no-untyped-def]
    directory, _ = saved
    loaded = load_artifact(directory)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 17, (30, 1, 4, 4)).astype(np.uint8)
    y = rng.integers(0, 3, 30)
    report = loaded.evaluate(x, y, batch_size=8)
    assert report.class_names == CLASSES and report.samples == 30
    assert report.accuracy == pytest.approx(float((loaded.predict(x) == y).mean()))


@pytest.mark.parametrize(
    ("k", "names"),
    [
        (3, CLASSES),
        (12, [f"a rather long class name {i}" for i in range(12)]),
        (40, None),  # more than 30 classes: colour only, no counts in the cells
    ],
)
def test_confusion_matrix_picture_is_a_png_of_sane_size(k: int, names: list[str] | None) -> None:
    data = confusion_matrix_image_bytes(_report(k=k, n=20 * k, names=names))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        assert 400 <= width <= 2200 and 400 <= height <= 2200
        pixels = np.asarray(image.convert("L"))
        assert pixels.min() < 64 and pixels.max() > 192  # drawn, not a blank canvas


def test_the_saved_picture_is_a_valid_png(saved) -> None:  # type: ignore[no-untyped-def]
    directory, _ = saved
    with Image.open(directory / CONFUSION_MATRIX_PNG) as image:
        image.verify()
        assert image.format == "PNG"


def test_server_and_artifact_imports_do_not_load_matplotlib() -> None:
    code = (
        "import sys, core.artifacts, core.evaluation, core.confusion_plot, server.app, "
        "server.codec, cnn_client; print('matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_the_import_check_sees_matplotlib_when_it_is_loaded() -> None:
    code = "import sys, core.confusion_plot, matplotlib; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "True"
