"""Softmax cross-entropy: values, stability, gradient, label smoothing, errors."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ShapeError, SpecError
from core.gradcheck import numerical_gradient, relative_error
from core.losses import softmax_cross_entropy


def test_loss_matches_hand_computation():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    loss, cost, _ = softmax_cross_entropy(logits, np.array([2, 0]))
    expect0 = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(loss, [expect0, np.log(3)], rtol=1e-12)
    assert cost == pytest.approx((expect0 + np.log(3)) / 2)


def test_large_logits_are_stable():
    logits = np.array([[1000.0, 0.0], [-1000.0, 1000.0]], np.float32)
    loss, cost, d = softmax_cross_entropy(logits, np.array([0, 0]))
    assert np.all(np.isfinite(loss)) and np.isfinite(cost) and np.all(np.isfinite(d))
    np.testing.assert_allclose(loss, [0.0, 2000.0], rtol=1e-6)
    assert loss.dtype == np.float32 and d.dtype == np.float32


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_dlogits_is_the_gradient_of_the_mean_cost(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    _, _, d = softmax_cross_entropy(logits, labels, smoothing)
    num = numerical_gradient(lambda: softmax_cross_entropy(logits, labels, smoothing)[1], logits)
    assert relative_error(d, num) < 1e-6


def test_label_smoothing_targets():
    logits = np.zeros((1, 4))
    loss, _, d = softmax_cross_entropy(logits, np.array([1]), label_smoothing=0.2)
    # target = 0.8 onehot + 0.05: loss = log 4 (uniform p), d = p - t
    np.testing.assert_allclose(loss, [np.log(4)])
    np.testing.assert_allclose(d, [[0.2, 0.25 - 0.85, 0.2, 0.2]])


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros(3), np.array([0]), r"\(N, K\)"),
        (np.zeros((2, 3)), np.array([0]), r"\(2,\)"),
        (np.zeros((2, 3)), np.array([0, 3]), r"\[0, 3\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), "integers"),
    ],
)
def test_bad_inputs_name_the_shape(logits, labels, match):
    with pytest.raises(ShapeError, match=match):
        softmax_cross_entropy(logits, labels)


def test_bad_label_smoothing():
    with pytest.raises(SpecError, match="label_smoothing"):
        softmax_cross_entropy(np.zeros((1, 2)), np.array([0]), 1.0)
