"""Layer construction, options, shapes, errors, modes and config round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ShapeError, SpecError
from core.layers import (
    LAYER_TYPES,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Spatial,
    layer_from_config,
)

EXAMPLES = {
    "conv2d": {"filters": 4, "kernel_size": [3, 2], "stride": 2, "padding": [1, 0, 1, 1]},
    "maxpool2d": {"size": 2},
    "avgpool2d": {"size": 3, "stride": 1, "padding": 1},
    "global_avgpool2d": {},
    "flatten": {},
    "dense": {"units": 5},
    "relu": {},
    "leaky_relu": {"alpha": 0.1},
    "sigmoid": {},
    "tanh": {},
    "dropout": {"rate": 0.25},
    "batchnorm2d": {"momentum": 0.2},
}


def test_every_contract_layer_type_is_registered():
    assert set(LAYER_TYPES) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_config_round_trips_through_json(name, rng):
    layer = layer_from_config({"type": name, **EXAMPLES[name]})
    cfg = json.loads(json.dumps(layer.config()))
    again = layer_from_config(cfg)
    assert again.config() == cfg
    assert cfg["type"] == name
    assert layer.build((3, 8, 8), rng) == again.build((3, 8, 8), np.random.default_rng(1234))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_forward_and_backward_keep_shapes_and_dtype(name, rng):
    layer = layer_from_config({"type": name, **EXAMPLES[name]})
    out_shape = layer.build((3, 8, 7), rng)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (2, *out_shape) and y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_unknown_option_is_named():
    with pytest.raises(SpecError, match="'kernal_size'"):
        Conv2D(filters=3, kernal_size=3)


def test_unknown_type_lists_known_types():
    with pytest.raises(SpecError, match=r"'conv3d'.*conv2d"):
        layer_from_config({"type": "conv3d"})


def test_missing_required_option_is_named():
    with pytest.raises(SpecError, match="'units'"):
        Dense()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"stride": -1}, "stride"),
        ({"stride": 0}, "stride"),
        ({"padding": "full"}, "padding"),
        ({"padding": [-1, 0]}, "padding"),
        ({"dilation": 0}, "dilation"),
        ({"groups": 3}, "groups"),
        ({"filters": 0}, "filters"),
        ({"kernel_size": [3, 3, 3]}, "kernel_size"),
        ({"use_bias": "yes"}, "use_bias"),
    ],
)
def test_bad_conv_options_raise_naming_the_option(options, field):
    with pytest.raises(SpecError, match=field):
        Conv2D(**{"filters": 4, "kernel_size": 3, **options})


def test_kernel_larger_than_padded_input_names_the_shapes(rng):
    layer = Conv2D(filters=2, kernel_size=5, padding=1)
    with pytest.raises(ShapeError, match=r"5x5.*4x4.*\(1, 2, 2\)"):
        layer.build((1, 2, 2), rng)


def test_dilated_kernel_larger_than_input_is_rejected(rng):
    with pytest.raises(ShapeError, match="dilated extent 5x5"):
        Conv2D(filters=2, kernel_size=3, dilation=2).build((1, 4, 4), rng)


def test_pool_window_larger_than_input_is_rejected(rng):
    with pytest.raises(ShapeError, match=r"3x3.*\(2, 2, 2\)"):
        MaxPool2D(size=3).build((2, 2, 2), rng)


@pytest.mark.parametrize("layer", [Conv2D(filters=2, kernel_size=3), MaxPool2D(), BatchNorm2D()])
def test_wrong_rank_names_the_shape(layer, rng):
    with pytest.raises(ShapeError, match=r"\(10,\).*rank 1"):
        layer.build((10,), rng)


def test_channel_mismatch_at_forward_names_both_shapes(rng):
    layer = Conv2D(filters=2, kernel_size=3)
    layer.build((3, 8, 8), rng)
    with pytest.raises(ShapeError, match=r"\(N, 3, 8, 8\).*\(2, 1, 8, 8\)"):
        layer.forward(np.zeros((2, 1, 8, 8), np.float32))


def test_groups_must_divide_input_channels(rng):
    with pytest.raises(ShapeError, match=r"channels 3.*groups 2"):
        Conv2D(filters=4, kernel_size=1, groups=2).build((3, 5, 5), rng)


@pytest.mark.parametrize(("size", "stride"), [(7, 1), (8, 2), (9, 3), (5, 2)])
def test_same_padding_gives_ceil_output(size, stride, rng):
    layer = Conv2D(filters=1, kernel_size=(3, 4), stride=stride, padding="same")
    out = layer.build((1, size, size + 1), rng)
    assert out == (1, -(-size // stride), -(-(size + 1) // stride))


def test_conv_output_size_formula(rng):
    layer = Conv2D(filters=3, kernel_size=(3, 2), stride=(2, 3), padding=[1, 2, 0, 1], dilation=2)
    # H' = 1 + (9 + 1 + 2 - 2*(3-1) - 1) // 2 = 4 ; W' = 1 + (10 + 0 + 1 - 2*(2-1) - 1) // 3 = 3
    assert layer.build((2, 9, 10), rng) == (3, 4, 3)
    assert layer.weight.value.shape == (3, 2, 3, 2)


def test_depthwise_conv_weight_shape(rng):
    layer = Conv2D(filters=6, kernel_size=3, groups=6, padding=1)
    assert layer.build((6, 5, 5), rng) == (6, 5, 5)
    assert layer.weight.value.shape == (6, 1, 3, 3)


def test_spatial_reports_geometry(rng):
    conv = Conv2D(filters=2, kernel_size=(3, 5), stride=2, padding=[1, 1, 2, 2], dilation=(1, 2))
    assert conv.spatial() == Spatial((3, 5), (2, 2), (1, 2), (1, 2))
    assert MaxPool2D(size=2).spatial() == Spatial((2, 2), (2, 2), (0, 0), (1, 1))
    assert Dense(units=3).spatial() is None
    assert Flatten().spatial() is None


def test_he_init_is_seeded_and_scaled():
    a, b = Conv2D(filters=64, kernel_size=3), Conv2D(filters=64, kernel_size=3)
    a.build((16, 8, 8), np.random.default_rng(7))
    b.build((16, 8, 8), np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.value, b.weight.value)
    assert abs(a.weight.value.std() - np.sqrt(2 / (16 * 9))) < 0.01
    np.testing.assert_array_equal(a.bias.value, 0)


def test_xavier_init_bounds(rng):
    layer = Dense(units=50, init="xavier")
    layer.build((30,), rng)
    limit = np.sqrt(6 / 80)
    assert np.abs(layer.weight.value).max() <= limit
    assert np.abs(layer.weight.value).max() > 0.9 * limit


def test_dense_flattens_image_input(rng):
    layer = Dense(units=4)
    assert layer.build((2, 3, 3), rng) == (4,)
    x = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(
        layer.forward(x), x.reshape(5, 18) @ layer.weight.value + layer.bias.value, rtol=1e-5
    )
    assert layer.backward(np.ones((5, 4), np.float32)).shape == x.shape


def test_backward_adds_into_parameter_grads(rng):
    layer = Dense(units=3)
    layer.build((4,), rng)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    layer.forward(x)
    layer.backward(np.ones((2, 3), np.float32))
    once = layer.weight.grad.copy()
    layer.forward(x)
    layer.backward(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-6)
    layer.weight.zero_grad()
    assert not layer.weight.grad.any()


def test_dropout_is_identity_in_inference_and_masks_in_training(rng):
    layer = Dropout(rate=0.5)
    layer.build((1000,), rng)
    x = np.ones((4, 1000), np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)


def test_dropout_masks_are_reproducible_from_the_build_rng():
    a, b = Dropout(rate=0.3), Dropout(rate=0.3)
    a.build((50,), np.random.default_rng(3))
    b.build((50,), np.random.default_rng(3))
    x = np.ones((2, 50), np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_batchnorm_train_normalises_and_updates_running_stats(rng):
    layer = BatchNorm2D(momentum=0.1)
    layer.build((3, 4, 4), rng)
    x = (rng.standard_normal((8, 3, 4, 4)) * 3 + 5).astype(np.float32)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3)
    rm, rv = layer.buffers()["running_mean"], layer.buffers()["running_var"]
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)


def test_batchnorm_eval_uses_running_stats(rng):
    layer = BatchNorm2D()
    layer.build((2, 3, 3), rng)
    layer.running_mean[...] = [1.0, -1.0]
    layer.running_var[...] = [4.0, 0.25]
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    y = layer.forward(x, training=False)
    expect = (x - np.array([1.0, -1.0])[:, None, None]) / np.sqrt(
        np.array([4.0, 0.25])[:, None, None] + 1e-5
    )
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer.running_mean, [1.0, -1.0])


def test_global_avgpool_averages_each_channel(rng):
    layer = GlobalAvgPool2D()
    assert layer.build((3, 4, 5), rng) == (3,)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)), rtol=1e-6)


def test_float64_layers_compute_in_float64(rng):
    layer = Conv2D(filters=2, kernel_size=3)
    layer.build((1, 5, 5), rng, np.float64)
    assert layer.weight.value.dtype == np.float64
    assert layer.forward(np.ones((1, 1, 5, 5), np.float32)).dtype == np.float64


def test_forward_before_build_is_an_error():
    with pytest.raises(RuntimeError, match="build"):
        Dense(units=2).forward(np.ones((1, 2)))
