"""Every layer's gradients (input, weights, bias) against centred finite differences in float64,
and the gradient checker itself shown to fail on a deliberately wrong backward."""

from __future__ import annotations

import numpy as np
import pytest

from core.gradcheck import check_layer, numerical_gradient, relative_error
from core.layers import Dense, layer_from_config

TOL = 1e-6  # correct float64 gradients land near 1e-9; wrong ones far above 1e-3

CASES = [
    ({"type": "conv2d", "filters": 3, "kernel_size": 3}, (2, 5, 6)),
    (
        {"type": "conv2d", "filters": 2, "kernel_size": [2, 3], "stride": 2, "padding": "same"},
        (2, 7, 5),
    ),
    (
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 3, "padding": [1, 0, 2, 1]},
        (1, 7, 8),
    ),
    (
        {
            "type": "conv2d",
            "filters": 4,
            "kernel_size": 3,
            "groups": 2,
            "dilation": 2,
            "padding": 1,
        },
        (2, 6, 6),
    ),
    ({"type": "conv2d", "filters": 3, "kernel_size": 3, "groups": 3, "use_bias": False}, (3, 5, 5)),
    ({"type": "maxpool2d", "size": 2}, (2, 6, 5)),
    ({"type": "maxpool2d", "size": [3, 2], "stride": [2, 1], "padding": 1}, (2, 7, 5)),
    ({"type": "avgpool2d", "size": 3, "stride": 2, "padding": 1}, (2, 7, 6)),
    ({"type": "global_avgpool2d"}, (3, 4, 5)),
    ({"type": "flatten"}, (2, 3, 3)),
    ({"type": "dense", "units": 4}, (7,)),
    ({"type": "dense", "units": 3}, (2, 3, 2)),
    ({"type": "relu"}, (3, 4, 4)),
    ({"type": "leaky_relu", "alpha": 0.1}, (3, 4, 4)),
    ({"type": "sigmoid"}, (10,)),
    ({"type": "tanh"}, (2, 3, 3)),
    ({"type": "dropout", "rate": 0.5}, (2, 3, 3)),
    ({"type": "batchnorm2d"}, (3, 4, 3)),
]


@pytest.mark.parametrize(("cfg", "in_shape"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("batch", [1, 3])
def test_layer_gradients_match_finite_differences(cfg, in_shape, batch):
    rng = np.random.default_rng(7)  # check_layer projects with seed 0: keep x independent of it
    layer = layer_from_config(cfg)
    layer.build(in_shape, rng, np.float64)
    for p in layer.parameters().values():  # non-trivial gamma/beta/bias
        p.value[...] += rng.standard_normal(p.value.shape) * 0.5
    x = rng.standard_normal((batch, *in_shape))
    training = cfg["type"] == "batchnorm2d" and batch * in_shape[1] * in_shape[2] > 1
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"input", *layer.parameters()}
    assert max(errors.values()) < TOL, errors


def test_batchnorm_eval_mode_gradients():
    rng = np.random.default_rng(1)
    layer = layer_from_config({"type": "batchnorm2d"})
    layer.build((2, 3, 3), rng, np.float64)
    layer.running_mean[...] = [0.5, -0.5]
    layer.running_var[...] = [2.0, 0.5]
    layer.weight.value[...] = [1.5, -0.7]
    errors = check_layer(layer, rng.standard_normal((2, 2, 3, 3)), training=False)
    assert max(errors.values()) < TOL, errors


def test_dropout_training_gradient_is_the_mask():
    layer = layer_from_config({"type": "dropout", "rate": 0.4})
    layer.build((20,), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((3, 20))
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(layer.backward(np.ones_like(y)) * x, y)


class _WrongDense(Dense):
    """Dense whose input gradient forgets to transpose-multiply by W (a classic bug)."""

    def backward(self, dout):
        dx = super().backward(dout)
        return dx * 1.01


class _WrongBiasDense(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.bias.grad *= 0.5  # bias gradient halved
        return dx


@pytest.mark.parametrize(("cls", "bad"), [(_WrongDense, "input"), (_WrongBiasDense, "bias")])
def test_gradcheck_fails_on_a_deliberately_wrong_backward(cls, bad):
    layer = cls(units=3)
    layer.build((4,), np.random.default_rng(0), np.float64)
    errors = check_layer(layer, np.random.default_rng(1).standard_normal((2, 4)))
    assert errors[bad] > 1e-3
    assert errors["weight"] < TOL


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])


def test_relative_error_is_scale_free_and_zero_safe():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1e-9, 2e-9]), np.array([1e-9, 2e-9])) == 0.0
    assert relative_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 2.1)
