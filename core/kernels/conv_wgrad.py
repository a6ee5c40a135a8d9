"""Weight and bias gradient of a convolution alone (im2col + GEMM), for layers whose input
gradient is computed another way (Winograd backward-data, :mod:`core.kernels.winograd`).

Same lowering as :func:`core.kernels.conv.conv2d_backward` (shifted-plane columns at stride 1,
row bands that fit the L2 cache), minus the input-gradient GEMM and col2im: per block of samples
dW (F/G, K) += dOut (F/G, block*R*Wg) @ cols^T, db += row sums of dOut.
"""

from __future__ import annotations

import numba
import numpy as np

from core.kernels.blas import gemm
from core.kernels.conv import _bands, _grid, _lower, _pad_sample, conv2d_backward_reference


@numba.njit(cache=True)
def _chunk(x, w, dout, sh, sw, pt, pl, dh, dw, block, c0, c1, part, unit, wg, plane, fptr):
    """Samples c0 .. c1: weight/bias gradient sums into part (F, K+1) (overwritten)."""
    c_ = x.shape[1]
    f_, cg, kh, kw = w.shape
    groups = c_ // cg
    fg = f_ // groups
    oh, ow = dout.shape[2], dout.shape[3]
    k = cg * kh * kw
    rows = _bands(k, oh, wg, x.itemsize, block, unit)
    for f in range(f_):
        for r in range(k + 1):
            part[f, r] = 0
    tmp = np.empty((fg, k), x.dtype)
    xp = np.zeros((block, c_, plane), x.dtype)
    for n0 in range(c0, c1, block):
        n1 = min(n0 + block, c1)
        if unit:
            for n in range(n0, n1):
                _pad_sample(x[n], pt, pl, wg, 0, oh + dh * (kh - 1), xp[n - n0])
        for oy0 in range(0, oh, rows):
            oy1 = min(oy0 + rows, oh)
            length = (oy1 - oy0) * wg
            m = (n1 - n0) * length
            cols = np.empty((k, m), x.dtype)
            dg = np.empty((fg, m), x.dtype)
            for g in range(groups):
                for n in range(n0, n1):
                    s = n - n0
                    q0 = s * length
                    _lower(
                        x, n, g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, unit, wg, xp[s],
                        oy0, oy1, cols, q0,
                    )  # fmt: skip
                    for f in range(fg):
                        dst = dg[f]
                        acc = 0.0
                        for oy in range(oy0, oy1):
                            src = dout[n, g * fg + f, oy]
                            base = q0 + (oy - oy0) * wg
                            for ox in range(ow):
                                v = src[ox]
                                dst[base + ox] = v
                                acc += v
                            for ox in range(ow, wg):  # junk grid columns add nothing
                                dst[base + ox] = 0
                        part[g * fg + f, k] += acc
                gemm(fptr, dg, cols.T, tmp)
                for f in range(fg):
                    for r in range(k):
                        part[g * fg + f, r] += tmp[f, r]


@numba.njit(parallel=True, cache=True)
def conv2d_weight_grad(x, w, dout, sh, sw, pt, pl, dh, dw, block, dw_acc, db_acc, partial, fptr=0):
    """dw_acc (F, C/G, KH, KW) += dL/dw and db_acc (F,) += dL/db of
    :func:`core.kernels.conv.conv2d_forward` for input x (N, C, H, W), output gradient dout
    (N, F, OH, OW). ``partial`` (T, F, C/G*KH*KW + 1) scratch, one row per thread chunk as in
    :func:`core.kernels.conv.conv2d_backward`; batches of at most one block run on the caller."""
    n_ = x.shape[0]
    f_, cg, kh, kw = w.shape
    oh, ow = dout.shape[2], dout.shape[3]
    k = cg * kh * kw
    unit, wg, plane = _grid(x, kh, kw, sh, sw, dh, dw, oh, ow)
    chunks = min(partial.shape[0], n_)
    if n_ <= block:
        chunks = 1
        _chunk(x, w, dout, sh, sw, pt, pl, dh, dw, block, 0, n_, partial[0], unit, wg, plane, fptr)
    else:
        for t in numba.prange(chunks):
            c0 = t * n_ // chunks
            c1 = (t + 1) * n_ // chunks
            _chunk(
                x, w, dout, sh, sw, pt, pl, dh, dw, block, c0, c1, partial[t], unit, wg, plane,
                fptr,
            )  # fmt: skip
    dwa = dw_acc.reshape(f_, k)
    for f in range(f_):
        for t in range(chunks):
            db_acc[f] += partial[t, f, k]
            for r in range(k):
                dwa[f, r] += partial[t, f, r]


def conv2d_weight_grad_reference(
    x, w, dout, sh, sw, pt, pl, dh, dw, block, dw_acc, db_acc, partial, fptr=0
):
    """Plain-loop twin of :func:`conv2d_weight_grad`: the full backward reference, its input
    gradient thrown away."""
    dx = np.zeros(x.shape, np.float64)
    conv2d_backward_reference(
        x, w, dout, sh, sw, pt, pl, dh, dw, block, dx, dw_acc, db_acc, partial, fptr
    )
