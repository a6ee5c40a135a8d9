"""Convolution kernels and the Conv2D forward against plain-loop references over a shape grid."""

from __future__ import annotations

import numpy as np
import pytest

from core.kernels import conv as k
from core.layers import Conv2D

# (N, C, H, W, filters, kernel, stride, padding, dilation, groups)
CASES = [
    (1, 1, 5, 5, 2, 3, 1, "valid", 1, 1),
    (2, 3, 7, 6, 4, (3, 2), 1, "same", 1, 1),
    (1, 2, 9, 7, 3, 3, 2, 1, 1, 1),
    (2, 2, 8, 9, 2, (2, 3), 3, [1, 0, 2, 1], 1, 1),
    (1, 3, 7, 7, 3, 3, (2, 1), [0, 2, 1, 0], 1, 3),
    (2, 4, 6, 7, 4, 3, 1, "same", 2, 2),
    (1, 2, 5, 6, 4, 1, 1, "valid", 1, 1),
    (2, 1, 11, 5, 2, (5, 1), 2, "same", 1, 1),
    (1, 4, 5, 5, 8, 3, 3, 2, (1, 2), 4),
]


def _conv(case, dtype):
    n, c, h, w, f, ks, s, p, d, g = case
    layer = Conv2D(filters=f, kernel_size=ks, stride=s, padding=p, dilation=d, groups=g)
    layer.build((c, h, w), np.random.default_rng(0), dtype)
    layer.bias.value[...] = np.arange(f) * 0.1
    x = np.random.default_rng(1).standard_normal((n, c, h, w)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_conv2d_forward_matches_reference(case, dtype, block):
    layer, x = _conv(case, dtype)
    out = np.full((x.shape[0], *layer.out_shape), np.nan, dtype)
    k.conv2d_forward(
        x,
        layer.weight.value,
        layer.bias.value,
        *layer.stride,
        layer.pads[0],
        layer.pads[2],
        *layer.dilation,
        block,
        out,
    )
    ref = np.empty_like(out)
    pt, pl = layer.pads[0], layer.pads[2]
    k.conv2d_forward_reference(
        x, layer.weight.value, layer.bias.value, *layer.stride, pt, pl, *layer.dilation, 1, ref
    )
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 2])
def test_conv2d_backward_matches_reference(case, dtype, block):
    layer, x = _conv(case, dtype)
    out = layer.forward(x)
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    w = layer.weight.value
    geometry = (*layer.stride, layer.pads[0], layer.pads[2], *layer.dilation)
    results = []
    for fn in (k.conv2d_backward, k.conv2d_backward_reference):
        dx = np.full_like(x, np.nan)
        dw_acc, db_acc = np.ones_like(w), np.ones(w.shape[0], dtype)
        partial = np.empty((2, w.shape[0], w[0].size + 1), dtype)
        fn(x, w, dout, *geometry, block, dx, dw_acc, db_acc, partial)
        results.append((dx, dw_acc, db_acc))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for fast, ref in zip(*results, strict=True):
        np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("n", [1, 3])
def test_conv2d_row_bands_match_reference(n):
    """block == 1 with a large sample splits each sample into row bands (the L2-sized GEMMs that
    a batch of one is parallelised over); forward and backward must match the reference."""
    layer = Conv2D(filters=2, kernel_size=3, padding=1)
    layer.build((32, 20, 20), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((n, 32, 20, 20))
    w, b = layer.weight.value, np.arange(2) * 0.1
    geometry = (1, 1, 1, 1, 1, 1)
    out, ref = np.empty((n, 2, 20, 20)), np.empty((n, 2, 20, 20))
    k.conv2d_forward(x, w, b, *geometry, 1, out)
    k.conv2d_forward_reference(x, w, b, *geometry, 1, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    results = []
    for fn in (k.conv2d_backward, k.conv2d_backward_reference):
        dx, dw_acc, db_acc = np.full_like(x, np.nan), np.ones_like(w), np.ones(2)
        fn(x, w, dout, *geometry, 1, dx, dw_acc, db_acc, np.empty((2, 2, w[0].size + 1)))
        results.append((dx, dw_acc, db_acc))
    for fast, slow in zip(*results, strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)
