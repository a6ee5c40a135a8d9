"""Regression metrics, target scaling and reports: scikit-learn and the reference twin agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from core.artifacts import ModelMeta, make_meta
from core.datasets import Dataset, Normalisation
from core.errors import DatasetError
from core.evaluation import EvaluationReport, parse_report
from core.model import Sequential
from core.regression import (
    RegressionCounts,
    RegressionError,
    RegressionReport,
    TargetScaling,
    regression_report,
    regression_report_reference,
)


def _pair(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(5.0, 3.0, (n, k))
    return y + rng.normal(0.0, 1.0, (n, k)), y


@pytest.mark.parametrize(("n", "k"), [(2, 1), (10, 3), (257, 2)])
def test_report_matches_scikit_learn(n: int, k: int) -> None:
    pred, y = _pair(n, k, n + k)
    report = regression_report(pred, y, [f"t{i}" for i in range(k)])
    assert report.samples == n
    assert report.r2 == pytest.approx(r2_score(y, pred), rel=1e-9)
    assert report.mae == pytest.approx(mean_absolute_error(y, pred), rel=1e-9)
    assert report.rmse == pytest.approx(root_mean_squared_error(y, pred), rel=1e-9)
    per_target_r2 = r2_score(y, pred, multioutput="raw_values")
    per_target_mae = mean_absolute_error(y, pred, multioutput="raw_values")
    for i, target in enumerate(report.targets):
        assert target.name == f"t{i}"
        assert target.r2 == pytest.approx(per_target_r2[i], rel=1e-9)
        assert target.mae == pytest.approx(per_target_mae[i], rel=1e-9)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 2), (64, 4)])
def test_report_matches_its_reference_twin(n: int, k: int) -> None:
    pred, y = _pair(n, k, 7 * n + k)
    names = [str(i) for i in range(k)]
    fast, slow = regression_report(pred, y, names), regression_report_reference(pred, y, names)
    assert fast.samples == slow.samples
    for a, b in zip(fast.targets, slow.targets, strict=True):
        assert (a.mae, a.rmse) == pytest.approx((b.mae, b.rmse), rel=1e-9)
        assert a.r2 == pytest.approx(b.r2, rel=1e-9, abs=1e-12)


def test_a_constant_target_scores_like_scikit_learn() -> None:
    y = np.array([[2.0], [2.0], [2.0]])
    exact = regression_report(y.copy(), y, ["c"])
    off = regression_report(y + 1, y, ["c"])
    assert exact.r2 == r2_score(y, y) == 1.0
    assert off.r2 == r2_score(y, y + 1) == 0.0


def test_counts_folded_by_batches_equal_one_pass() -> None:
    pred, y = _pair(100, 2, 3)
    counts = RegressionCounts(2)
    for start in range(0, 100, 30):
        counts.add(pred[start : start + 30], y[start : start + 30])
    whole = regression_report(pred, y, ["a", "b"])
    batched = counts.report(["a", "b"])
    assert batched.r2 == pytest.approx(whole.r2, rel=1e-12)
    restored = RegressionCounts.from_json(2, json.loads(json.dumps(counts.to_json())))
    assert restored.report(["a", "b"]) == batched


def test_bad_inputs_are_refused_naming_the_problem() -> None:
    with pytest.raises(RegressionError, match="must both be"):
        regression_report(np.zeros((3, 2)), np.zeros((3, 1)), ["a", "b"])
    with pytest.raises(RegressionError, match="1 target names given for 2"):
        regression_report(np.zeros((3, 2)), np.zeros((3, 2)), ["a"])
    with pytest.raises(RegressionError, match="not finite"):
        regression_report(np.full((2, 1), np.inf), np.zeros((2, 1)), ["a"])


def test_target_scaling_round_trips_and_guards_a_constant_target() -> None:
    y = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], np.float32)
    scaling = TargetScaling.of(y)
    # column 0: mean 3, std sqrt(8/3); column 1 constant: std 0 -> 1
    assert scaling.mean == pytest.approx([3.0, 5.0])
    assert scaling.std == pytest.approx([np.sqrt(8 / 3), 1.0])
    z = scaling.apply(y)
    assert z[:, 0].mean() == pytest.approx(0.0, abs=1e-7)
    assert z[:, 0].std() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(scaling.undo(z), y, rtol=1e-6)
    with pytest.raises(ValueError, match="std must be > 0"):
        TargetScaling(mean=[0.0], std=[0.0])


def test_evaluation_json_tells_the_task() -> None:
    pred, y = _pair(10, 2, 0)
    report = regression_report(pred, y, ["x", "y"])
    raw = report.model_dump_json()
    assert json.loads(raw)["task"] == "regression"
    assert parse_report(raw) == report
    classification = EvaluationReport.model_validate(
        {
            "samples": 2,
            "accuracy": 0.5,
            "top_k": [],
            "classes": [
                {"name": "a", "precision": 1, "recall": 0.5, "f1": 2 / 3, "support": 2},
                {"name": "b", "precision": 0, "recall": 0, "f1": 0, "support": 0},
            ],
            "macro_precision": 0.5,
            "macro_recall": 0.25,
            "macro_f1": 1 / 3,
            "confusion_matrix": [1, 1, 0, 0],
            "loss": 0.7,
        }
    )
    legacy = json.loads(classification.model_dump_json())
    del legacy["task"]  # reports written before regression existed
    assert parse_report(json.dumps(legacy)) == classification
    assert isinstance(parse_report(raw), RegressionReport)


def _regression_data() -> Dataset:
    x = np.zeros((4, 1, 4, 4), np.uint8)
    y = np.arange(8, dtype=np.float32).reshape(4, 2)
    return Dataset(x, y, None, None, [], target_names=["a", "b"])


def test_a_regression_dataset_holds_float_targets() -> None:
    data = _regression_data()
    assert data.task == "regression" and data.num_outputs == 2
    assert data.target_scaling.mean == pytest.approx([3.0, 4.0])
    with pytest.raises(DatasetError, match=r"float32 targets of shape \(4, 2\)"):
        Dataset(data.x_train, data.y_train[:, :1], None, None, [], target_names=["a", "b"])
    with pytest.raises(DatasetError, match="NaN"):
        bad = data.y_train.copy()
        bad[0, 0] = np.nan
        Dataset(data.x_train, bad, None, None, [], target_names=["a", "b"])


def test_model_meta_knows_the_task() -> None:
    model = Sequential.from_spec(
        [{"type": "flatten"}, {"type": "dense", "units": 1}], (1, 4, 4), seed=0
    )
    meta = make_meta(
        model,
        name="r",
        class_names=[],
        normalisation=Normalisation(mean=[0.0], std=[1.0]),
        target_names=["height"],
        target_scaling=TargetScaling(mean=[170.0], std=[10.0]),
    )
    assert meta.task == "regression"
    doc = json.loads(meta.model_dump_json())
    assert ModelMeta.model_validate(doc) == meta
    with pytest.raises(ValueError, match="regression model needs target_names"):
        ModelMeta.model_validate({**doc, "target_names": []})
    with pytest.raises(ValueError, match="classification model needs class_names"):
        ModelMeta.model_validate({**doc, "task": "classification"})
    legacy = {k: v for k, v in doc.items() if k not in ("task", "target_names", "target_scaling")}
    with pytest.raises(ValueError, match="at least 2"):  # an old classifier without classes
        ModelMeta.model_validate(legacy)


def test_a_one_target_model_builds() -> None:
    # a single regression target is one output; a classifier's K >= 2 comes from its classes
    model = Sequential.from_spec([{"type": "flatten"}, {"type": "dense", "units": 1}], (1, 4, 4))
    assert model.num_classes == 1
    assert model.logits(np.zeros((2, 1, 4, 4), np.float32)).shape == (2, 1)
