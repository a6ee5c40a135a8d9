"""MSE and Huber losses: hand-computed values, PyTorch's mean reduction, gradients, twins."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ShapeError, SpecError
from core.gradcheck import numerical_gradient, relative_error
from core.losses import huber_loss, huber_loss_reference, mse_loss, mse_loss_reference


def test_mse_is_the_mean_over_all_elements():
    pred = np.array([[1.0, 2.0], [0.0, -1.0]])
    target = np.array([[0.0, 2.0], [3.0, -1.0]])
    loss, cost, grad = mse_loss(pred, target)
    # errors 1, 0, -3, 0: per sample (1 + 0) / 2 = 0.5 and (9 + 0) / 2 = 4.5; cost 10 / 4 = 2.5
    np.testing.assert_allclose(loss, [0.5, 4.5])
    assert cost == pytest.approx(2.5)
    # d/dp mean(e^2) = 2 e / 4
    np.testing.assert_allclose(grad, [[0.5, 0.0], [-1.5, 0.0]])


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    pred = np.array([[0.5, 3.0, -2.0]])
    target = np.zeros((1, 3))
    loss, cost, grad = huber_loss(pred, target, delta=1.0)
    # 0.5 * 0.25 = 0.125; 1 * (3 - 0.5) = 2.5; 1 * (2 - 0.5) = 1.5; mean = 4.125 / 3
    np.testing.assert_allclose(loss, [4.125 / 3])
    assert cost == pytest.approx(4.125 / 3)
    np.testing.assert_allclose(grad, [[0.5 / 3, 1 / 3, -1 / 3]])


def test_huber_with_a_large_delta_is_half_the_mse():
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    _, huber_cost, huber_grad = huber_loss(pred, target, delta=100.0)
    _, mse_cost, mse_grad = mse_loss(pred, target)
    assert huber_cost == pytest.approx(mse_cost / 2)
    np.testing.assert_allclose(huber_grad, mse_grad / 2)


@pytest.mark.parametrize("loss_fn", [mse_loss, lambda p, t: huber_loss(p, t, delta=0.7)])
def test_dpred_is_the_gradient_of_the_cost(loss_fn):
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((4, 3)) * 2
    target = rng.standard_normal((4, 3))
    _, _, grad = loss_fn(pred, target)
    numeric = numerical_gradient(lambda: loss_fn(pred, target)[1], pred)
    assert relative_error(grad, numeric) < 1e-6


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (3, 5), (64, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_losses_match_their_reference_twins(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    pred = (rng.standard_normal(shape) * 3).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for fast, slow in [
        (mse_loss, mse_loss_reference),
        (lambda p, t: huber_loss(p, t, 1.5), lambda p, t: huber_loss_reference(p, t, 1.5)),
    ]:
        loss, cost, grad = fast(pred, target)
        ref_loss, ref_cost, ref_grad = slow(pred, target)
        assert loss.dtype == dtype and grad.dtype == dtype
        np.testing.assert_allclose(loss, ref_loss, rtol=tol, atol=tol)
        np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)
        assert cost == pytest.approx(ref_cost, rel=tol)


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (np.zeros(3), np.zeros(3), r"\(N, K\)"),
        (np.zeros((2, 3)), np.zeros((2, 2)), r"\(2, 3\)"),
        (np.zeros((2, 1)), np.zeros((2, 1), dtype=np.int64), "floats"),
    ],
)
def test_bad_inputs_name_the_shape(pred, target, match):
    with pytest.raises(ShapeError, match=match):
        mse_loss(pred, target)


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan")])
def test_huber_delta_must_be_positive(delta):
    with pytest.raises(SpecError, match="huber_delta"):
        huber_loss(np.zeros((1, 1)), np.zeros((1, 1)), delta)
