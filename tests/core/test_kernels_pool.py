"""Pooling kernels against their plain-loop references over a shape grid."""

from __future__ import annotations

import numpy as np
import pytest

from core.kernels import pool as k

# (N, C, H, W, kh, kw, sh, sw, pt, pb, pl, pr)
CASES = [
    (1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0),
    (2, 3, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1),
    (1, 2, 9, 8, 2, 3, 3, 2, 0, 1, 2, 0),
    (2, 1, 5, 7, 3, 2, 1, 1, 0, 0, 1, 1),
    (1, 2, 6, 6, 3, 3, 3, 3, 2, 0, 0, 2),
    (2, 2, 5, 7, 2, 2, 2, 2, 0, 0, 0, 0),  # the 2x2/2 fast path with a leftover row and column
]


def _out_shape(case):
    n, c, h, w, kh, kw, sh, sw, pt, pb, pl, pr = case
    return (n, c, 1 + (h + pt + pb - kh) // sh, 1 + (w + pl + pr - kw) // sw)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_forward_and_backward_match_reference(case, dtype, rng):
    n, c, h, w, kh, kw, sh, sw, pt, _, pl, _ = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    shape = _out_shape(case)
    out, ref = np.empty(shape, dtype), np.empty(shape, dtype)
    am, am_ref = np.empty(shape, np.int64), np.empty(shape, np.int64)
    k.maxpool_forward(x, kh, kw, sh, sw, pt, pl, out, am)
    k.maxpool_forward_reference(x, kh, kw, sh, sw, pt, pl, ref, am_ref)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(am, am_ref)
    dout = rng.standard_normal(shape).astype(dtype)
    dx, dx_ref = np.full_like(x, np.nan), np.full_like(x, np.nan)
    k.maxpool_backward(dout, am, dx)
    k.maxpool_backward_reference(dout, am, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avgpool_forward_and_backward_match_reference(case, dtype, rng):
    n, c, h, w, kh, kw, sh, sw, pt, _, pl, _ = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    shape = _out_shape(case)
    out, ref = np.empty(shape, dtype), np.empty(shape, dtype)
    k.avgpool_forward(x, kh, kw, sh, sw, pt, pl, out)
    k.avgpool_forward_reference(x, kh, kw, sh, sw, pt, pl, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    dout = rng.standard_normal(shape).astype(dtype)
    dx, dx_ref = np.full_like(x, np.nan), np.full_like(x, np.nan)
    k.avgpool_backward(dout, kh, kw, sh, sw, pt, pl, dx)
    k.avgpool_backward_reference(dout, kh, kw, sh, sw, pt, pl, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


def test_maxpool_ignores_padding_even_for_negative_inputs():
    x = -np.ones((1, 1, 2, 2), np.float32)
    out = np.empty((1, 1, 2, 2), np.float32)
    am = np.empty((1, 1, 2, 2), np.int64)
    k.maxpool_forward(x, 2, 2, 1, 1, 1, 1, out, am)
    np.testing.assert_array_equal(out, -1)


def test_maxpool_parallel_branch_matches_serial_branch(rng):
    """Inputs of >= PARALLEL_MIN elements take the prange loop over planes."""
    x = rng.standard_normal((5, 64, 128, 128)).astype(np.float32)
    assert x.size >= k.PARALLEL_MIN
    shape = (5, 64, 64, 64)
    out, am = np.empty(shape, np.float32), np.empty(shape, np.int64)
    k.maxpool_forward(x, 2, 2, 2, 2, 0, 0, out, am)
    dout = rng.standard_normal(shape).astype(np.float32)
    dx = np.empty_like(x)
    k.maxpool_backward(dout, am, dx)
    for n in range(5):
        o1, a1 = np.empty(shape[1:], np.float32)[None], np.empty(shape[1:], np.int64)[None]
        k.maxpool_forward(x[n : n + 1], 2, 2, 2, 2, 0, 0, o1, a1)
        np.testing.assert_array_equal(out[n], o1[0])
        np.testing.assert_array_equal(am[n], a1[0])
        d1 = np.empty_like(x[n : n + 1])
        k.maxpool_backward(np.ascontiguousarray(dout[n : n + 1]), a1, d1)
        np.testing.assert_array_equal(dx[n], d1[0])
