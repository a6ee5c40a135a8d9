"""``.npz`` uploads with float ``y``: regression data sets, stored and loaded as float targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.datastore import DataStore
from core.ingest import IngestError, IngestLimits, inspect_npz
from core.stored_datasets import load_stored_dataset, regression_holdout_mask
from tests.support.discs import DISC_TARGETS, make_discs
from tests.support.stored_datasets import store_npz


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _refused(kind: str, path: Path, limits: IngestLimits | None = None) -> str:
    with pytest.raises(IngestError) as caught:
        inspect_npz(path, limits)
    assert caught.value.kind == kind, str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_targets_make_a_regression_summary(tmp_path: Path, dtype: type) -> None:
    x = np.zeros((4, 2, 2), np.uint8)
    y = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 20.0], [4.0, 20.0]], dtype)
    path = _save(tmp_path / "d.npz", x=x, y=y, target_names=np.array(["size", "weight"]))
    summary = inspect_npz(path)
    assert summary.task == "regression"
    assert summary.classes == () and summary.class_counts == {}
    assert summary.targets == ("size", "weight")
    # mean (1+2+3+4)/4 = 2.5, std sqrt(1.25); column 2: mean 15, std 5
    assert summary.target_mean == pytest.approx((2.5, 15.0))
    assert summary.target_std == pytest.approx((np.sqrt(1.25), 5.0))


def test_a_1d_float_y_is_one_target_named_0(tmp_path: Path) -> None:
    path = _save(tmp_path / "d.npz", x=np.zeros((3, 2, 2), np.uint8), y=np.array([0.5, 1, 2]))
    summary = inspect_npz(path)
    assert summary.task == "regression" and summary.targets == ("0",)


def test_non_finite_targets_are_refused_naming_the_sample(tmp_path: Path) -> None:
    y = np.array([[1.0], [np.nan], [2.0]])
    path = _save(tmp_path / "d.npz", x=np.zeros((3, 2, 2), np.uint8), y=y)
    assert "target of sample 1 is NaN or infinite" in _refused("labels", path)


def test_names_must_fit_the_targets(tmp_path: Path) -> None:
    x = np.zeros((2, 2, 2), np.uint8)
    path = _save(tmp_path / "a.npz", x=x, y=np.zeros((2, 2)), target_names=np.array(["a"]))
    assert "1 names for 2 targets" in _refused("labels", path)
    path = _save(tmp_path / "b.npz", x=x, y=np.zeros((2, 2)), class_names=np.array(["a", "b"]))
    assert "name them with target_names" in _refused("classes", path)
    path = _save(tmp_path / "c.npz", x=x, y=np.array([0, 1]), target_names=np.array(["a"]))
    assert "target_names is for float targets" in _refused("labels", path)


def test_target_count_and_row_count_are_checked(tmp_path: Path) -> None:
    x = np.zeros((2, 2, 2), np.uint8)
    path = _save(tmp_path / "a.npz", x=x, y=np.zeros((3, 1)))
    assert "3 targets for 2 images" in _refused("labels", path)
    path = _save(tmp_path / "b.npz", x=x, y=np.zeros((2, 5)))
    assert "over max_classes 4" in _refused("too_large", path, IngestLimits(max_classes=4))
    path = _save(tmp_path / "c.npz", x=x, y=np.zeros((2, 1, 1)))
    assert "(N,) or (N, K)" in _refused("labels", path)


def test_a_stored_regression_npz_loads_float_targets_with_a_random_holdout(
    tmp_path: Path,
) -> None:
    x, y = make_discs(50, side=16, radius=(2.0, 4.0), seed=3)
    stored = store_npz(DataStore(tmp_path), "discs", x, y, target_names=list(DISC_TARGETS))
    assert stored.meta.task == "regression"
    assert stored.meta.targets == DISC_TARGETS and stored.meta.classes == ()
    assert stored.meta.num_outputs == 3
    data = load_stored_dataset(stored, (1, 16, 16), "stretch")
    assert data.task == "regression" and data.target_names == list(DISC_TARGETS)
    assert data.y_train.dtype == np.float32 and data.y_train.shape == (40, 3)
    assert data.y_test is not None and data.y_test.shape == (10, 3)
    # the held-out rows are exactly the mask's, each image still beside its own targets
    mask = regression_holdout_mask(50)
    assert mask.sum() == 10
    np.testing.assert_array_equal(data.y_test, y[mask])
    np.testing.assert_array_equal(data.x_train[:, 0], x[~mask])


def test_the_regression_holdout_keeps_a_training_sample() -> None:
    assert regression_holdout_mask(1).sum() == 0
    assert regression_holdout_mask(2).sum() == 0  # floor(0.4 + 0.5) = 0
    assert regression_holdout_mask(3).sum() == 1
    assert np.array_equal(regression_holdout_mask(100), regression_holdout_mask(100))
