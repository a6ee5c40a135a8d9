"""Winograd F(2x2,3x3) / F(4x4,3x3) convolution: fast kernels against their reference twins, and
both against the direct convolution (the im2col kernels' plain-loop oracle), within measured
float32 tolerances; the Conv2D layer and the inference plan on each forced algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from core import conv_algorithms
from core.gradcheck import check_layer
from core.inference import InferencePlan
from core.kernels import blas, conv_wgrad
from core.kernels import conv as conv_k
from core.kernels import winograd as wk
from core.layers import Conv2D
from core.model import Sequential

# (N, C, H, W, F, pad_top, pad_bottom, pad_left, pad_right): odd sizes (not multiples of either
# tile), padding 0 / 1 / asymmetric, batch 1 and 64, one channel and many
CASES = [
    (1, 1, 5, 5, 1, 0, 0, 0, 0),
    (2, 3, 7, 9, 4, 1, 1, 1, 1),
    (1, 2, 3, 3, 3, 1, 1, 1, 1),
    (3, 4, 6, 11, 2, 0, 0, 1, 1),
    (2, 3, 9, 8, 5, 2, 0, 1, 2),
    (1, 64, 10, 13, 48, 1, 1, 1, 1),
    (64, 3, 5, 6, 4, 1, 1, 1, 1),
    # F(4x4)'s vectorised input transform: rows of 10 tiles (one vector of 8, then 2 one by one)
    # and of 7 tiles (a vector of 4, then 3), several samples per block of tile rows
    (3, 3, 30, 37, 4, 1, 1, 1, 1),
    (2, 2, 21, 26, 3, 0, 2, 1, 1),
]


def _data(case, dtype, seed=0):
    n, c, h, w, f, pt, pb, pl, pr = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((f, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(dtype)  # He init
    b = rng.standard_normal(f).astype(dtype) * 0.1
    out_shape = (n, f, h + pt + pb - 2, w + pl + pr - 2)
    return x, wt, b, out_shape


def _direct(x, wt, b, pt, pl, out_shape):
    """The direct convolution in float64 (the im2col kernels' oracle)."""
    key = (x.tobytes(), wt.tobytes(), b.tobytes(), pt, pl, out_shape)
    if key not in _DIRECT:  # the plain loops take seconds on the many-channel case
        _DIRECT[key] = _direct_uncached(x, wt, b, pt, pl, out_shape)
    return _DIRECT[key]


_DIRECT: dict[tuple, np.ndarray] = {}


def _direct_uncached(x, wt, b, pt, pl, out_shape):
    ref = np.empty(out_shape)
    conv_k.conv2d_forward_reference(
        np.asarray(x, np.float64), np.asarray(wt, np.float64), np.asarray(b, np.float64),
        1, 1, pt, pl, 1, 1, 1, ref,
    )  # fmt: skip
    return ref


def _winograd(x, wt, b, m, pt, pl, out_shape, block=16, fn=wk.winograd_forward):
    u = np.empty(((m + 2) ** 2, wt.shape[0], wt.shape[1]), x.dtype)
    wk.winograd_filter(wt, m, u)
    out = np.full(out_shape, np.nan, x.dtype)
    with blas.numpy_blas(1) as fptr:
        fn(x, u, b, m, pt, pl, block, 2, out, fptr)
    return out


def _error(out, ref):
    """Max |out - ref| relative to the output's scale max|ref| (what a float32 sum of many terms
    can promise; element-wise relative error is unbounded where the output crosses 0)."""
    return float(np.abs(np.asarray(out, np.float64) - ref).max() / np.abs(ref).max())


# Measured by `python -m bench.winograd_error` (random He-scaled weights with N(0,1) inputs, and
# VGG-small's trained weights fed its own activations; 3 to 256 channels): the largest error
# relative to max|y| in float32 was im2col 7.2e-7, F(2,3) 6.6e-7, F(4,3) 9.9e-6 (256 channels;
# 64 channels: 6.4e-6, trained weights: 3.6e-6). F(4,3) loses ~10x more because its transforms
# scale by up to 5 (B^T) and 8 (A^T) on each axis, so the rounding of V and of the GEMM sums is
# amplified before it cancels; F(2,3)'s matrices hold only 0 and +-1. The bounds leave 3-5x
# headroom over the worst measured case for other shapes and seeds.
TOL32 = {2: 3e-6, 4: 3e-5}


@pytest.mark.parametrize("m", wk.TILES)
def test_filter_transform_matches_reference(m):
    w = np.random.default_rng(0).standard_normal((5, 3, 3, 3))
    for fast, ref, shape in (
        (wk.winograd_filter, wk.winograd_filter_reference, (5, 3)),
        (wk.winograd_filter_transposed, wk.winograd_filter_transposed_reference, (3, 5)),
    ):
        got, want = np.empty(((m + 2) ** 2, *shape)), np.empty(((m + 2) ** 2, *shape))
        fast(w, m, got)
        ref(w, m, want)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("m", wk.TILES)
def test_forward_matches_reference_twin_and_direct_convolution_float64(case, m):
    x, wt, b, out_shape = _data(case, np.float64)
    pt, pl = case[5], case[7]
    fast = _winograd(x, wt, b, m, pt, pl, out_shape, block=7)
    twin = _winograd(x, wt, b, m, pt, pl, out_shape, fn=wk.winograd_forward_reference)
    direct = _direct(x, wt, b, pt, pl, out_shape)
    np.testing.assert_allclose(fast, twin, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(fast, direct, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("m", wk.TILES)
@pytest.mark.parametrize("block", [1, 16, 256])
def test_forward_float32_within_measured_tolerance_of_float64_direct(case, m, block):
    x, wt, b, out_shape = _data(case, np.float32)
    pt, pl = case[5], case[7]
    out = _winograd(x, wt, b, m, pt, pl, out_shape, block=block)
    assert _error(out, _direct(x, wt, b, pt, pl, out_shape)) < TOL32[m]


@pytest.mark.parametrize("m", wk.TILES)
def test_float32_error_on_trained_weights_within_tolerance(m):
    """Trained filters are smoother and larger than at init (measured: VGG-small after training
    on Fashion-MNIST-like data gives the same error order as random weights): train a small conv
    net for a few steps and compare its second conv in float32 against float64."""
    from core.optim import Adam

    model = Sequential.from_spec(
        [
            {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "dense", "units": 4},
        ],
        (3, 12, 12),
        seed=0,
    )
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3, 12, 12)).astype(np.float32)
    labels = (x[:, 0, :6].mean(axis=(1, 2)) > 0).astype(int) + 2 * (x[:, 1].mean((1, 2)) > 0)
    from core.losses import softmax_cross_entropy

    opt = Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        model.zero_grad()
        _, _, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
        model.backward(dlogits)
        opt.step()
    conv = model.layers[2]
    h = model.layers[1].forward(model.layers[0].forward(x))
    wt, b = conv.weight.value, conv.bias.value
    out_shape = (32, 16, 12, 12)
    assert (
        _error(_winograd(h, wt, b, m, 1, 1, out_shape), _direct(h, wt, b, 1, 1, out_shape))
        < (TOL32[m])
    )


@pytest.mark.parametrize("case", CASES[:5])
def test_weight_gradient_kernel_matches_reference_and_full_backward(case):
    x, wt, _, out_shape = _data(case, np.float64)
    pt, pl = case[5], case[7]
    dout = np.random.default_rng(3).standard_normal(out_shape)
    results = []
    for fn in (conv_wgrad.conv2d_weight_grad, conv_wgrad.conv2d_weight_grad_reference):
        dw, db = np.ones_like(wt), np.ones(wt.shape[0])
        fn(x, wt, dout, 1, 1, pt, pl, 1, 1, 2, dw, db, np.empty((2, wt.shape[0], wt[0].size + 1)))
        results.append((dw, db))
    dx = np.empty_like(x)
    dw_full, db_full = np.ones_like(wt), np.ones(wt.shape[0])
    partial = np.empty((2, wt.shape[0], wt[0].size + 1))
    conv_k.conv2d_backward(x, wt, dout, 1, 1, pt, pl, 1, 1, 2, dx, dw_full, db_full, partial)
    results.append((dw_full, db_full))
    for other in results[1:]:
        for got, want in zip(results[0], other, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- the Conv2D layer


def _layer(c, h, w, f, padding, dtype, seed=0):
    layer = Conv2D(filters=f, kernel_size=3, padding=padding)
    layer.build((c, h, w), np.random.default_rng(seed), dtype)
    layer.bias.value[...] = np.arange(f) * 0.1
    return layer


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("padding", [0, 1, [2, 0, 1, 2]])
def test_layer_forward_and_backward_equal_im2col_float64(monkeypatch, algorithm, padding):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 7, 9))
    results = []
    for setting in ("im2col", algorithm):
        monkeypatch.setenv(conv_algorithms.ENV, setting)
        layer = _layer(5, 7, 9, 6, padding, np.float64)
        y = layer.forward(x, training=True)
        dout = np.random.default_rng(6).standard_normal(y.shape)
        dx = layer.backward(dout)
        results.append((y, dx, layer.weight.grad.copy(), layer.bias.grad.copy()))
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("padding", [0, 1])
def test_layer_gradients_match_finite_differences(monkeypatch, algorithm, padding):
    monkeypatch.setenv(conv_algorithms.ENV, algorithm)
    layer = _layer(2, 6, 5, 3, padding, np.float64)
    x = np.random.default_rng(7).standard_normal((2, 2, 6, 5))
    errors = check_layer(layer, x, training=True)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
def test_layer_batch_64_many_channels_float32(monkeypatch, algorithm):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((64, 32, 8, 8)).astype(np.float32)
    results = []
    for setting in ("im2col", algorithm):
        monkeypatch.setenv(conv_algorithms.ENV, setting)
        layer = _layer(32, 8, 8, 40, 1, np.float32)
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
        results.append((y, dx, layer.weight.grad.copy()))
    (y0, dx0, dw0), (y1, dx1, dw1) = results
    m = int(algorithm[-1])
    assert _error(y1, np.asarray(y0, np.float64)) < 2 * TOL32[m]
    assert _error(dx1, np.asarray(dx0, np.float64)) < 2 * TOL32[m]
    np.testing.assert_allclose(dw1, dw0, rtol=1e-5, atol=1e-5 * np.abs(dw0).max())


# ---------------------------------------------------------------------------- inference plan

VGG_LIKE = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "conv2d", "filters": 12, "kernel_size": 3, "padding": 1},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3},
    {"type": "flatten"},
    {"type": "dense", "units": 5},
]


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("n", [1, 64])
def test_plan_equals_layer_forward_and_sees_weight_changes(monkeypatch, algorithm, n):
    monkeypatch.setenv(conv_algorithms.ENV, algorithm)
    model = Sequential.from_spec(VGG_LIKE, (3, 11, 13), dtype="float64", seed=0)
    x = np.random.default_rng(1).standard_normal((n, 3, 11, 13))
    plan = InferencePlan.compile(model)
    assert sum("winograd" in label for label in plan.labels) == 3, plan.labels
    ref = np.empty((n, 5))
    from core.kernels import infer as ik

    for step in range(2):
        monkeypatch.setenv(conv_algorithms.ENV, "im2col")
        want = model.forward(x, training=False)
        ik.run_program_reference(
            plan.prog, plan.fparams, plan._arrays_py, plan.layout, x.reshape(n, -1), ref, None,
            False, 0,
        )  # fmt: skip
        np.testing.assert_allclose(want, ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(plan.logits(x), want, rtol=1e-10, atol=1e-10)
        # an in-place update (as an optimizer makes) must reach the packed filter transform
        model.layers[2].weight.value[...] *= -1.5 if step == 0 else 1


def test_unknown_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv(conv_algorithms.ENV, "fft")
    with pytest.raises(conv_algorithms.AlgorithmSettingError, match="CNN_CONV_ALGORITHM='fft'"):
        conv_algorithms.setting()


def test_auto_choice_is_measured_once_per_shape(monkeypatch):
    monkeypatch.delenv(conv_algorithms.ENV, raising=False)
    shape = conv_algorithms.ConvShape(16, 12, 12, 16, 12, 12, 1, 1, "float32")
    first = conv_algorithms.tile_size(shape)
    assert first in (0, 2, 4)
    assert conv_algorithms.measured()[shape] == first
    assert all(conv_algorithms.tile_size(shape) == first for _ in range(3))


def test_only_3x3_stride_1_ungrouped_undilated_convs_qualify():
    assert conv_algorithms.applies((3, 3), (1, 1), (1, 1), 1)
    assert not conv_algorithms.applies((3, 3), (2, 2), (1, 1), 1)
    assert not conv_algorithms.applies((3, 3), (1, 1), (2, 2), 1)
    assert not conv_algorithms.applies((3, 3), (1, 1), (1, 1), 2)
    assert not conv_algorithms.applies((5, 5), (1, 1), (1, 1), 1)
