"""The spec of a regression job: task, loss and Huber delta validated; the last layer checked
against the stored data set's target count when the job is submitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.datastore import DataStore
from jobs.datasets import pin_dataset
from jobs.errors import InvalidSpec
from jobs.limits import DEFAULT_LIMITS
from jobs.spec import parse_spec
from tests.support.discs import DISC_TARGETS, make_discs
from tests.support.stored_datasets import store_npz
from tests.worker.helpers import tiny_spec


@pytest.fixture()
def store(tmp_path: Path) -> DataStore:
    store = DataStore(tmp_path / "data")
    x, y = make_discs(10, side=8, radius=(1.0, 2.0), seed=0)
    store_npz(store, "discs", x, y, target_names=list(DISC_TARGETS))
    rng = np.random.default_rng(0)
    store_npz(store, "labels", rng.integers(0, 256, (8, 8, 8), np.uint8), np.arange(8) % 2)
    return store


def _regression(units: int = 3, **overrides: Any) -> dict[str, Any]:
    spec = tiny_spec(name="discs", dataset={"name": "discs"}, task="regression", loss="mse")
    spec["architecture"][-1] = {"type": "dense", "units": units}
    spec.update(overrides)
    return spec


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(data)
    return info.value.errors


def _pin_errors(data: dict[str, Any], store: DataStore) -> list[str]:
    with pytest.raises(InvalidSpec) as info:
        pin_dataset(parse_spec(data), store, DEFAULT_LIMITS)
    return info.value.errors


def test_a_regression_spec_defaults_to_mse_and_round_trips() -> None:
    spec = parse_spec(_regression(loss=None))
    assert spec.task == "regression" and spec.loss_name == "mse"
    assert parse_spec(spec.payload()) == spec
    huber = parse_spec(_regression(loss="huber", huber_delta=0.5)).train_config()
    assert (huber.loss_name, huber.huber_delta) == ("huber", 0.5)


def test_a_classification_spec_keeps_cross_entropy() -> None:
    spec = parse_spec(tiny_spec())
    assert spec.task == "classification" and spec.loss_name == "cross_entropy"
    assert "regression loss" in _errors(tiny_spec(loss="mse"))[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "cross_entropy"}, "loss: a regression task trains with 'mse' or 'huber'"),
        ({"label_smoothing": 0.1}, "label_smoothing: only a classification task has labels"),
        ({"task": "ranking"}, "task: Input should be 'classification' or 'regression'"),
        ({"loss": "huber", "huber_delta": 0}, "huber_delta: Input should be greater than 0"),
    ],
)
def test_bad_regression_options_name_the_field(overrides: dict[str, Any], message: str) -> None:
    assert message in "\n".join(_errors(_regression(**overrides)))


def test_a_bundled_data_set_cannot_train_a_regression() -> None:
    errors = _errors(_regression(dataset={"name": "digits"}, units=10))
    assert any(e.startswith("task: bundled data set 'digits' has class labels") for e in errors)


def test_the_last_layer_must_give_one_output_per_target(store: DataStore) -> None:
    pinned = pin_dataset(parse_spec(_regression()), store, DEFAULT_LIMITS)
    assert pinned.dataset.name == "discs" and pinned.input is not None
    (error,) = _pin_errors(_regression(units=2), store)
    assert error.startswith("architecture.4: ")
    assert "2 scores" in error
    assert "3 targets: the last layer must give one output per target" in error


def test_task_and_data_set_must_agree(store: DataStore) -> None:
    (error,) = _pin_errors(_regression(dataset={"name": "labels"}), store)
    assert error.startswith("task: the spec trains regression, but data set labels:1 holds class")
    (error,) = _pin_errors(tiny_spec(dataset={"name": "discs"}), store)
    assert error.startswith("task: the spec trains classification, but data set discs:1 holds")
    assert 'set "task": "regression"' in error
