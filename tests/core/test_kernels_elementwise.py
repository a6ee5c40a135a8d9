"""Activation, batch-norm, dense and optimizer kernels against their plain-loop references."""

from __future__ import annotations

import numpy as np
import pytest

from core.kernels import activations as act
from core.kernels import batchnorm as bn
from core.kernels import dense, optim

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activation_kernels_match_reference(name, dtype, rng):
    x = (rng.standard_normal(257) * 5).astype(dtype)
    x[:3] = [0.0, 80.0, -80.0]
    dout = rng.standard_normal(257).astype(dtype)
    fwd, fwd_ref = getattr(act, f"{name}_forward"), getattr(act, f"{name}_forward_reference")
    bwd, bwd_ref = getattr(act, f"{name}_backward"), getattr(act, f"{name}_backward_reference")
    y, y_ref = np.empty_like(x), np.empty_like(x)
    fwd(x, y)
    fwd_ref(x, y_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-7)
    saved = x if name == "relu" else y
    dx, dx_ref = np.empty_like(x), np.empty_like(x)
    bwd(dout, saved, dx)
    bwd_ref(dout, saved, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_kernels_match_reference(dtype, rng):
    x = rng.standard_normal(101).astype(dtype)
    dout = rng.standard_normal(101).astype(dtype)
    y, y_ref, dx, dx_ref = (np.empty_like(x) for _ in range(4))
    act.leaky_relu_forward(x, 0.2, y)
    act.leaky_relu_forward_reference(x, 0.2, y_ref)
    act.leaky_relu_backward(dout, x, 0.2, dx)
    act.leaky_relu_backward_reference(dout, x, 0.2, dx_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_kernels_match_reference(dtype, rng):
    x = rng.standard_normal((3, 4, 5, 3)).astype(dtype) * 2 + 1
    dout = rng.standard_normal(x.shape).astype(dtype)
    mean, var, mean_r, var_r = (np.empty(4) for _ in range(4))
    bn.bn_stats(x, mean, var)
    bn.bn_stats_reference(x, mean_r, var_r)
    np.testing.assert_allclose(mean, mean_r, rtol=1e-6)
    np.testing.assert_allclose(var, var_r, rtol=1e-6)
    scale, shift = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    y, y_ref = np.empty_like(x), np.empty_like(x)
    bn.bn_apply(x, scale, shift, y)
    bn.bn_apply_reference(x, scale, shift, y_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    m, s = mean.astype(dtype), (1 / np.sqrt(var + 1e-5)).astype(dtype)
    a, b, a_r, b_r = (np.empty(4, dtype) for _ in range(4))
    bn.bn_backward_reduce(dout, x, m, s, a, b)
    bn.bn_backward_reduce_reference(dout, x, m, s, a_r, b_r)
    np.testing.assert_allclose(a, a_r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, b_r, rtol=1e-5, atol=1e-5)
    dx, dx_ref = np.empty_like(x), np.empty_like(x)
    bn.bn_backward_apply(dout, x, m, s, scale, a, b, dx)
    bn.bn_backward_apply_reference(dout, x, m, s, scale, a, b, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)


def test_dense_kernels_match_reference(rng):
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    out, ref = np.empty((3, 4)), np.empty((3, 4))
    dense.dense_forward(x, w, b, out)
    dense.dense_forward_reference(x, w, b, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    dout = rng.standard_normal((3, 4))
    grads = [np.empty((3, 5)), np.ones((5, 4)), np.ones(4)]
    grads_ref = [np.empty((3, 5)), np.ones((5, 4)), np.ones(4)]
    dense.dense_backward(dout, x, w, *grads)
    dense.dense_backward_reference(dout, x, w, *grads_ref)
    for g, r in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("first", [False, True])
def test_sgd_kernel_matches_reference(nesterov, first, rng):
    w, g, buf = (rng.standard_normal(50) for _ in range(3))
    w2, buf2 = w.copy(), buf.copy()
    optim.sgd_update(w, g, buf, 0.1, 0.9, 0.01, nesterov, first)
    optim.sgd_update_reference(w2, g, buf2, 0.1, 0.9, 0.01, nesterov, first)
    np.testing.assert_allclose(w, w2, rtol=1e-12)
    np.testing.assert_allclose(buf, buf2, rtol=1e-12)


@pytest.mark.parametrize("decoupled", [0.0, 0.05])
def test_adam_kernel_matches_reference(decoupled, rng):
    w, g = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    m, v = rng.standard_normal(50).astype(np.float32), rng.random(50).astype(np.float32)
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    l2 = 0.0 if decoupled else 0.01
    optim.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 3, l2, decoupled)
    optim.adam_update_reference(w2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-8, 3, l2, decoupled)
    for a, b in ((w, w2), (m, m2), (v, v2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_relu_parallel_branch_matches_serial_branch(rng):
    """Arrays of >= PARALLEL_MIN elements take the prange loop; it must match the serial loop."""
    n = act.PARALLEL_MIN + 1000
    x = rng.standard_normal(n).astype(np.float32)
    dout = rng.standard_normal(n).astype(np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    act.relu_forward(x, y)
    act.relu_backward(dout, x, dx)
    y_s, dx_s = np.empty_like(x), np.empty_like(x)
    for lo in range(0, n, act.PARALLEL_MIN // 2):
        sl = slice(lo, lo + act.PARALLEL_MIN // 2)
        act.relu_forward(x[sl], y_s[sl])
        act.relu_backward(dout[sl], x[sl], dx_s[sl])
    np.testing.assert_array_equal(y, y_s)
    np.testing.assert_array_equal(dx, dx_s)


def test_adam_parallel_branch_matches_serial_branch(rng):
    n = optim.PARALLEL_MIN + 100
    w = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    optim.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1, 0.01, 0.0)
    half = n // 2
    for sl in (slice(0, half), slice(half, n)):
        optim.adam_update(w2[sl], g[sl], m2[sl], v2[sl], 1e-3, 0.9, 0.999, 1e-8, 1, 0.01, 0.0)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(m, m2)
    np.testing.assert_array_equal(v, v2)


def test_dense_backward_large_layer_matches_numpy(rng):
    """Layers above the serial work threshold take the parallel row/column blocks."""
    x = rng.standard_normal((40, 256)).astype(np.float64)
    w = rng.standard_normal((256, 128)).astype(np.float64)
    dout = rng.standard_normal((40, 128)).astype(np.float64)
    dx, dw, db = np.empty_like(x), np.ones_like(w), np.ones(128)
    dense.dense_backward(dout, x, w, dx, dw, db)
    np.testing.assert_allclose(dx, dout @ w.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, 1 + x.T @ dout, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, 1 + dout.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_large_weight_split_over_tasks_matches_reference(rng, dtype):
    """A weight of at least _SPLIT_WEIGHTS values is split over the tasks (columns forward, rows
    backward); 300 x 900 splits neither side into whole _SPLIT slices."""
    from core.kernels import blas

    i_, o_ = 900, 300
    assert i_ * o_ >= dense._SPLIT_WEIGHTS
    x = rng.standard_normal((40, i_)).astype(dtype)
    w = (rng.standard_normal((i_, o_)) / 30).astype(dtype)
    b = rng.standard_normal(o_).astype(dtype)
    dout = rng.standard_normal((40, o_)).astype(dtype)
    out, ref = np.empty((40, o_), dtype), np.empty((40, o_))
    grads = [np.empty((40, i_), dtype), np.ones((i_, o_), dtype), np.ones(o_, dtype)]
    grads_ref = [np.empty((40, i_)), np.ones((i_, o_)), np.ones(o_)]
    with blas.numpy_blas(1) as fptr:
        dense.dense_forward(x, w, b, out, fptr)
        dense.dense_backward(dout, x, w, *grads, fptr)
    x64, w64, d64 = (np.asarray(a, np.float64) for a in (x, w, dout))
    ref[...] = x64 @ w64 + b
    grads_ref[0][...] = d64 @ w64.T
    grads_ref[1] += x64.T @ d64
    grads_ref[2] += d64.sum(axis=0)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())
    for g, r in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * np.abs(r).max())
