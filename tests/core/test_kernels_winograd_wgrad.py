"""Winograd weight gradient F(2x2,3x3) / F(4x4,3x3): the fast kernel against its reference twin
(the direct weight gradient in float64) and against im2col's, its float32 error within a stated
bound, the Conv2D layer's gradients against finite differences, and the per-shape choice."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from core import conv_algorithms
from core.gradcheck import check_layer
from core.kernels import blas, conv_wgrad
from core.kernels import winograd as wk
from core.kernels import winograd_wgrad as wwk
from core.layers import Conv2D

# (N, C, H, W, F, pad_top, pad_bottom, pad_left, pad_right): sizes that are multiples of neither
# tile, padding 0 / 1 / 2 / asymmetric, one channel and many, batch 1 to 64
CASES = [
    (1, 1, 5, 5, 1, 0, 0, 0, 0),
    (2, 3, 7, 9, 4, 1, 1, 1, 1),
    (1, 2, 3, 3, 3, 1, 1, 1, 1),
    (3, 4, 6, 11, 2, 0, 0, 1, 1),
    (2, 3, 9, 8, 5, 2, 0, 1, 2),
    (2, 5, 4, 4, 3, 2, 2, 2, 2),
    (64, 3, 5, 6, 4, 1, 1, 1, 1),
]
# VGG-small's Winograd layers (batch 8) and a wide one, for the float32 error
LARGE = [
    (8, 32, 32, 32, 32, 1, 1, 1, 1),
    (8, 32, 16, 16, 64, 1, 1, 1, 1),
    (8, 64, 16, 16, 64, 1, 1, 1, 1),
    (4, 128, 8, 8, 128, 1, 1, 1, 1),
]


def _data(case, dtype, seed=0):
    n, c, h, w, f, pt, pb, pl, pr = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    dout = rng.standard_normal((n, f, h + pt + pb - 2, w + pl + pr - 2)).astype(dtype)
    return x, dout


def _direct(x, dout, case):
    """dL/dw, dL/db in float64 as one einsum over the padded input's 3x3 windows: an oracle for
    shapes where the reference twin's plain loops would take minutes."""
    _, _, _, _, _, pt, pb, pl, pr = case
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    windows = sliding_window_view(xp, (3, 3), axis=(2, 3))  # (N, C, OH, OW, 3, 3)
    d = np.asarray(dout, np.float64)
    return np.einsum("nfyx,ncyxij->fcij", d, windows, optimize=True), d.sum(axis=(0, 2, 3))


def _winograd(x, dout, m, case, block=3, threads=2, fn=wwk.winograd_weight_grad, start=0.0):
    f, c = dout.shape[1], x.shape[1]
    dw, db = np.full((f, c, 3, 3), start, x.dtype), np.full(f, start, x.dtype)
    with blas.numpy_blas(1) as fptr:
        fn(x, dout, m, case[5], case[7], block, threads, dw, db, fptr)
    return dw, db


def _error(got, want):
    """Max |got - want| relative to max |want| (the scale a float32 sum of many terms can
    promise; element-wise relative error is unbounded where a sum crosses 0)."""
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("m", wk.TILES)
def test_matches_reference_twin_float64(case, m):
    x, dout = _data(case, np.float64)
    want = _winograd(x, dout, m, case, fn=wwk.winograd_weight_grad_reference)
    for block, threads in ((1, 1), (3, 2), (256, 2)):
        got = _winograd(x, dout, m, case, block=block, threads=threads)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("case", CASES[:4])
def test_reference_twin_equals_the_einsum_oracle(case):
    x, dout = _data(case, np.float64)
    got = _winograd(x, dout, 2, case, fn=wwk.winograd_weight_grad_reference)
    for g, w in zip(got, _direct(x, dout, case), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", wk.TILES)
def test_adds_into_the_gradients_it_is_given(m):
    case = CASES[1]
    x, dout = _data(case, np.float64)
    zero = _winograd(x, dout, m, case)
    ones = _winograd(x, dout, m, case, start=1.0)
    for z, o in zip(zero, ones, strict=True):
        np.testing.assert_allclose(o, z + 1.0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:5])
def test_equals_im2col_weight_gradient_float64(case):
    x, dout = _data(case, np.float64)
    f, c = dout.shape[1], x.shape[1]
    dw, db = np.zeros((f, c, 3, 3)), np.zeros(f)
    partial = np.empty((2, f, c * 9 + 1))
    w = np.zeros((f, c, 3, 3))
    conv_wgrad.conv2d_weight_grad(x, w, dout, 1, 1, case[5], case[7], 1, 1, 2, dw, db, partial)
    for m in wk.TILES:
        for g, want in zip(_winograd(x, dout, m, case), (dw, db), strict=True):
            np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-11)


# float32 error relative to max|dW| against the float64 direct gradient, measured on LARGE with
# seeds 0 and 1 (N(0,1) inputs and output gradients): im2col <= 4.5e-7, F(2,3) <= 4.8e-7,
# F(4,3) <= 3.7e-6 (4.6e-6 on VGG-small's 32-channel layer at batch 64); the bias gradient
# <= 1.4e-7 on every path.
# F(4,3) loses ~10x more, for the forward's reason: the tile sum runs on terms its transforms
# scaled by up to 8 (A) and 5 (B^T), which the back-transform G^T . G cancels. The bounds are
# the forward's (test_kernels_winograd.TOL32), 3-7x over the worst measured case.
TOL32 = {2: 3e-6, 4: 3e-5}


@pytest.mark.parametrize("case", LARGE + CASES[1:3])
@pytest.mark.parametrize("m", wk.TILES)
def test_float32_within_stated_bound_of_float64(case, m):
    x, dout = _data(case, np.float32)
    dw_ref, db_ref = _direct(x, dout, case)
    block = conv_algorithms.block_rows(m, x.shape[1], dout.shape[1], dout.shape[3], 4)
    dw, db = _winograd(x, dout, m, case, block=block)
    assert dw.dtype == np.float32
    assert _error(dw, dw_ref) < TOL32[m]
    assert _error(db, db_ref) < 3e-6


# --------------------------------------------------------------------------- the Conv2D layer


def _layer(c, h, w, f, padding, dtype, seed=0):
    layer = Conv2D(filters=f, kernel_size=3, padding=padding)
    layer.build((c, h, w), np.random.default_rng(seed), dtype)
    return layer


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("padding", [0, 1, [2, 0, 1, 2]])
def test_layer_weight_gradient_matches_finite_differences(monkeypatch, algorithm, padding):
    monkeypatch.setenv(conv_algorithms.ENV, algorithm)
    layer = _layer(3, 7, 6, 4, padding, np.float64)
    assert conv_algorithms.weight_grad_tile(layer._conv_shape((3, 7, 6))) == int(algorithm[-1])
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 6))
    errors = check_layer(layer, x, training=True)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
def test_layer_float32_weight_gradient_near_im2col(monkeypatch, algorithm):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 16, 12, 12)).astype(np.float32)
    dout = rng.standard_normal((16, 24, 12, 12)).astype(np.float32)
    grads = []
    for setting in ("im2col", algorithm):
        monkeypatch.setenv(conv_algorithms.ENV, setting)
        layer = _layer(16, 12, 12, 24, 1, np.float32)
        layer.forward(x, training=True)
        layer.backward(dout)
        grads.append((layer.weight.grad.copy(), layer.bias.grad.copy()))
    (dw0, db0), (dw1, db1) = grads
    m = int(algorithm[-1])
    assert _error(dw1, np.asarray(dw0, np.float64)) < 2 * TOL32[m]
    assert _error(db1, np.asarray(db0, np.float64)) < 3e-6


# ------------------------------------------------------------------------------- the choice


def test_forced_settings_decide_the_weight_gradient_too(monkeypatch):
    shape = conv_algorithms.ConvShape(8, 10, 10, 8, 10, 10, 1, 1, "float32")
    for setting, m in (("im2col", 0), ("winograd2", 2), ("winograd4", 4), ("winograd", 4)):
        monkeypatch.setenv(conv_algorithms.ENV, setting)
        assert conv_algorithms.weight_grad_tile(shape) == m


def test_auto_weight_gradient_choice_is_measured_once_per_shape(monkeypatch):
    monkeypatch.delenv(conv_algorithms.ENV, raising=False)
    shape = conv_algorithms.ConvShape(16, 12, 12, 16, 12, 12, 1, 1, "float32")
    first = conv_algorithms.weight_grad_tile(shape)
    assert first in (0, 2, 4)
    assert conv_algorithms.measured_weight_grad()[shape] == first
    assert all(conv_algorithms.weight_grad_tile(shape) == first for _ in range(3))
