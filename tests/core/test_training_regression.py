"""Training a regression: losses, standardised targets, R² in progress, exact resume, checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from pydantic import ValidationError

from core.datasets import Dataset, load_digits
from core.errors import ShapeError, SpecError
from core.model import Sequential
from core.training import Progress, TrainConfig, fit
from tests.support.discs import DISC_TARGETS, make_discs

ARCH: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


@pytest.fixture(autouse=True)
def one_numba_thread() -> Iterator[None]:
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@pytest.fixture(scope="module")
def discs() -> Dataset:
    """200 training and 50 test discs of 16x16 px."""
    x, y = make_discs(250, side=16, radius=(2.0, 5.0), seed=1)
    x = x[:, None]
    return Dataset(x[:200], y[:200], x[200:], y[200:], [], target_names=list(DISC_TARGETS))


def _config(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "task": "regression",
        "epochs": 2,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.01},
        "seed": 3,
        "validation_split": 0.2,
    }
    base.update(overrides)
    return TrainConfig.model_validate(base)


def _model() -> Sequential:
    return Sequential.from_spec(ARCH, (1, 16, 16), seed=2)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_progress_and_metrics_report_r2_mae_rmse(discs: Dataset, loss: str) -> None:
    reports: list[Progress] = []
    result = fit(_model(), discs, _config(loss=loss), on_progress=reports.append)
    ends = [p for p in reports if p.phase == "epoch_end"]
    assert len(ends) == 2
    assert all(p.train_accuracy is None and p.val_accuracy is None for p in reports)
    assert all(p.train_r2 is not None and p.val_r2 is not None for p in ends)
    assert all(p.val_mae is not None and p.val_mae > 0 for p in ends)
    last = result.history[-1]
    assert {"r2", "mae", "rmse", "val_r2", "val_mae", "val_rmse"} <= set(last)
    metrics = result.metrics
    assert metrics["test"]["task"] == "regression" and metrics["test"]["samples"] == 50
    assert metrics["test_r2"] == metrics["test"]["r2"]
    assert "test_accuracy" not in metrics


def test_the_loss_is_on_standardised_targets(discs: Dataset) -> None:
    # an untrained net's outputs are near 0 = the target mean after standardisation, so the
    # first MSE is near 1 (the variance of a standardised target), not the pixels' ~20
    reports: list[Progress] = []
    fit(_model(), discs, _config(epochs=1), on_progress=reports.append)
    assert 0.2 < reports[0].loss < 5.0


def test_resume_after_a_stop_gives_the_run_of_an_uninterrupted_one(
    discs: Dataset, tmp_path: Path
) -> None:
    config = _config()
    reference = _model()
    expected = fit(reference, discs, config)
    calls = {"n": 0}

    def stop_after_7_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 7

    stopped = fit(_model(), discs, config, checkpoint_dir=tmp_path, should_stop=stop_after_7_steps)
    assert stopped.cancelled
    resumed_model = _model()
    resumed = fit(resumed_model, discs, config, checkpoint_dir=tmp_path)
    for key, value in reference.named_arrays().items():
        np.testing.assert_array_equal(value, resumed_model.named_arrays()[key], err_msg=key)
    # the running R² of the interrupted epoch survived the checkpoint
    assert [h["r2"] for h in resumed.history] == [h["r2"] for h in expected.history]


def test_task_and_data_must_agree(discs: Dataset) -> None:
    digits = load_digits()
    with pytest.raises(SpecError, match="task: the spec trains regression, but data set"):
        fit(
            Sequential.from_spec([*ARCH[:-1], {"type": "dense", "units": 10}], (1, 8, 8)),
            digits,
            _config(),
        )
    with pytest.raises(SpecError, match="is a regression data set"):
        fit(_model(), discs, _config(task="classification"))
    two = Sequential.from_spec([*ARCH[:-1], {"type": "dense", "units": 2}], (1, 16, 16))
    with pytest.raises(ShapeError, match="data set has 3 targets, the model outputs 2"):
        fit(two, discs, _config())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "cross_entropy"}, "a regression task trains with 'mse' or 'huber'"),
        ({"label_smoothing": 0.1}, "only a classification task has labels"),
        (
            {"early_stopping": {"monitor": "val_accuracy"}},
            "a regression task monitors val_loss",
        ),
        ({"task": "classification", "loss": "huber"}, "'huber' is a regression loss"),
    ],
)
def test_bad_combinations_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**overrides)
