"""Training loop: exact resume, progress reports, cancellation, early stopping, config checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from pydantic import ValidationError

from core.datasets import Dataset, load_digits
from core.errors import ArtifactError, ShapeError, SpecError
from core.model import Sequential
from core.training import Progress, TrainConfig, fit

ARCH: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 10},
]


@pytest.fixture(autouse=True)
def one_numba_thread() -> Iterator[None]:
    """Tiny batches run faster on one thread on shared CI cores (restored afterwards)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@pytest.fixture(scope="module")
def small() -> Dataset:
    """300 digits for training, 100 for testing."""
    d = load_digits()
    assert d.x_test is not None and d.y_test is not None
    return Dataset(
        d.x_train[:300],
        d.y_train[:300],
        d.x_test[:100],
        d.y_test[:100],
        d.class_names,
        d.pixel_range,
    )


def _config(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.01},
        "seed": 5,
        "validation_split": 0.2,
        "augmentation": {"shift": 1, "flip": False},
    }
    base.update(overrides)
    return TrainConfig.model_validate(base)


def _model() -> Sequential:
    return Sequential.from_spec(ARCH, (1, 8, 8), seed=1)


def _assert_same_weights(a: Sequential, b: Sequential) -> None:
    wa, wb = a.named_arrays(), b.named_arrays()
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def test_resume_after_a_stop_gives_the_weights_of_an_uninterrupted_run(
    small: Dataset, tmp_path: Path
) -> None:
    config = _config()
    reference = _model()
    ref_result = fit(reference, small, config)
    assert ref_result.steps_run == 16  # 240 training images / 32 -> 8 steps x 2 epochs

    calls = {"n": 0}

    def stop_after_11_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 11

    first = _model()
    stopped = fit(first, small, config, checkpoint_dir=tmp_path, should_stop=stop_after_11_steps)
    assert stopped.cancelled and stopped.steps_run == 11 and stopped.epochs_run == 1

    resumed_model = _model()  # a fresh process would rebuild the model from the spec
    resumed = fit(resumed_model, small, config, checkpoint_dir=tmp_path)
    assert not resumed.cancelled and resumed.steps_run == 16
    _assert_same_weights(reference, resumed_model)
    assert resumed.history == [
        {**h, "time_s": resumed.history[i]["time_s"]} for i, h in enumerate(ref_result.history)
    ]
    assert resumed.metrics["test_accuracy"] == ref_result.metrics["test_accuracy"]


def test_resume_after_a_crash_uses_the_last_periodic_checkpoint(
    small: Dataset, tmp_path: Path
) -> None:
    config = _config(checkpoint_every=3, epochs=2)
    reference = _model()
    fit(reference, small, config)

    def crash_at_step_13(p: Progress) -> None:
        if p.step == 13:
            raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        fit(_model(), small, config, checkpoint_dir=tmp_path, on_progress=crash_at_step_13)
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert saved["state"]["global_step"] == 12
    assert len(list(tmp_path.glob("ckpt-*.npz"))) == 1

    resumed_model = _model()
    fit(resumed_model, small, config, checkpoint_dir=tmp_path)
    _assert_same_weights(reference, resumed_model)


def test_a_finished_checkpoint_returns_the_result_without_training(
    small: Dataset, tmp_path: Path
) -> None:
    config = _config(epochs=1)
    model = _model()
    first = fit(model, small, config, checkpoint_dir=tmp_path)
    again_model = _model()
    again = fit(again_model, small, config, checkpoint_dir=tmp_path, should_stop=lambda: True)
    assert not again.cancelled and again.metrics == first.metrics
    _assert_same_weights(model, again_model)


def test_a_checkpoint_of_another_run_is_refused(small: Dataset, tmp_path: Path) -> None:
    fit(_model(), small, _config(epochs=1), checkpoint_dir=tmp_path, should_stop=lambda: True)
    with pytest.raises(SpecError, match="belongs to a different run"):
        fit(_model(), small, _config(epochs=1, batch_size=16), checkpoint_dir=tmp_path)


def test_a_corrupt_checkpoint_is_a_clear_error(small: Dataset, tmp_path: Path) -> None:
    fit(
        _model(),
        small,
        _config(epochs=1, checkpoint_every=2),
        checkpoint_dir=tmp_path,
        should_stop=lambda: False,
    )
    npz = next(tmp_path.glob("ckpt-*.npz"))
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="corrupt or truncated checkpoint"):
        fit(_model(), small, _config(epochs=1, checkpoint_every=2), checkpoint_dir=tmp_path)


def test_progress_reports_every_step_and_each_epoch_end(small: Dataset) -> None:
    reports: list[Progress] = []
    result = fit(_model(), small, _config(), on_progress=reports.append)
    steps = [p for p in reports if p.phase == "train"]
    ends = [p for p in reports if p.phase == "epoch_end"]
    assert [p.step for p in steps] == list(range(1, 17))
    assert all(p.total_steps == 16 and p.epochs == 2 for p in reports)
    assert [p.epoch for p in ends] == [1, 2]
    assert all(p.val_accuracy is not None for p in ends)
    assert ends[-1].eta_s == 0.0 and steps[0].eta_s > 0 and steps[0].images_per_s > 0
    assert [h["val_accuracy"] for h in result.history] == [p.val_accuracy for p in ends]
    assert set(result.metrics) >= {"train_accuracy", "val_accuracy", "test_accuracy", "test"}
    assert len(result.metrics["test"]["confusion"]) == 10


def test_cancellation_stops_between_steps(small: Dataset) -> None:
    result = fit(_model(), small, _config(), should_stop=lambda: True)
    assert result.cancelled and result.steps_run == 0 and result.history == []


def test_early_stopping_restores_the_best_epoch(small: Dataset) -> None:
    config = _config(
        epochs=30,
        optimizer={"type": "sgd", "lr": 0.0},  # nothing improves after the first epoch
        early_stopping={"patience": 2, "monitor": "val_accuracy"},
    )
    result = fit(_model(), small, config)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1


def test_training_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="learning_rate"):
        TrainConfig.model_validate({"learning_rate": 0.1})
    with pytest.raises(ValidationError, match="early_stopping needs validation_split"):
        TrainConfig.model_validate({"validation_split": 0, "early_stopping": {"patience": 1}})
    with pytest.raises(ValidationError):
        TrainConfig.model_validate({"epochs": 0})


def test_data_that_does_not_fit_the_model_is_refused(small: Dataset) -> None:
    model = Sequential.from_spec(ARCH, (1, 9, 9))
    with pytest.raises(ShapeError, match=r"images are \(1, 8, 8\), the model expects \(1, 9, 9\)"):
        fit(model, small, _config())
