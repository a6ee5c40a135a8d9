"""A regression job run by the worker's training function on a generated, uploaded ``.npz``
(disc centre x, y and radius from 32x32 images): it reaches the stated R² on the held-out
split, and the artifact records the task, the targets and their scaling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import r2_score

from core.artifacts import load_artifact
from core.regression import RegressionReport
from tests.support.discs import DISC_TARGETS
from tests.support.regression_run import DISC_MIN_R2, DiscRun, train_discs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DiscRun:
    return train_discs(tmp_path_factory.mktemp("discs"))


def test_the_disc_model_reaches_the_stated_r2(run: DiscRun) -> None:
    metrics = run.outcome.metrics
    assert metrics["test_r2"] >= DISC_MIN_R2, metrics
    assert metrics["val_r2"] >= DISC_MIN_R2, metrics
    assert {"test_mae", "test_rmse", "train_r2", "val_mae"} <= set(metrics)
    assert "test_accuracy" not in metrics


def test_the_artifact_serves_predictions_in_target_units(run: DiscRun) -> None:
    loaded = load_artifact(run.outcome.path)
    meta = loaded.meta
    assert meta.task == "regression" and meta.class_names == []
    assert meta.target_names == list(DISC_TARGETS)
    assert meta.target_scaling is not None
    predictions = loaded.regress(run.x_test)
    assert predictions.dtype == np.float32 and predictions.shape == run.y_test.shape
    # in pixels, not standardised: the radius column lies around the radii drawn (3..8 px)
    assert 2.0 < float(np.median(predictions[:, 2])) < 9.0
    assert r2_score(run.y_test, predictions) >= DISC_MIN_R2


def test_the_evaluation_report_is_a_regression_report(run: DiscRun) -> None:
    loaded = load_artifact(run.outcome.path)
    report = loaded.evaluation
    assert isinstance(report, RegressionReport)
    assert report.samples == run.y_test.shape[0] == 160  # the seeded 20% of 800
    assert report.target_names == list(DISC_TARGETS)
    assert report.r2 == pytest.approx(run.outcome.metrics["test_r2"], rel=1e-6)
    assert report.r2 == pytest.approx(r2_score(run.y_test, loaded.regress(run.x_test)), rel=1e-5)
    doc = json.loads((Path(run.outcome.path) / "evaluation.json").read_text())
    assert doc["task"] == "regression"
    assert not (Path(run.outcome.path) / "confusion_matrix.png").exists()


def test_a_learning_curve_is_drawn(run: DiscRun) -> None:
    assert (Path(run.outcome.path) / "learning_curve.png").is_file()
