"""Winograd weight gradient F(m x m, 3 x 3), m = 2 or 4, of a stride-1, dilation-1, ungrouped 3x3
convolution (the forward of :mod:`core.kernels.winograd`).

The forward is Y[f, tile] = A^T ( sum_c U[f, c] * V[c, tile] ) A with U = G g G^T and
V = B^T d B (a x a, a = m + 2; * element-wise). Differentiating through it, for the m x m output
gradient tile dY of every tile and its a x a input patch d:

    dL/dU[f, c] = sum over tiles of (A dY[f] A^T) * (B^T d[c] B)          (a x a, element-wise)
    dL/dg[f, c] = G^T dL/dU[f, c] G                                        (3 x 3)

so, with Z = A dY A^T (the output gradient transform), the tile sum is, for each of the a*a
positions p, one GEMM  dU[p] (F, C) += Z[p] (F, T) @ V[p]^T (T, C)  over a block of T tiles:
a*a/(m*m) multiplies per output pixel and (f, c) instead of im2col's 9 (2.25x fewer for F(2,3),
4x for F(4,3)). The input transform V is the forward's
(:func:`core.kernels.winograd.input_transform`);
output-gradient pixels past OH / OW (tiles overhanging the map) count as 0, so the junk columns of
those tiles add nothing. The bias gradient (row sums of dY) is taken in the same pass.

Each thread task sums its tiles into its own dU (a*a, F, C) in the array dtype; the tasks' sums
and the final G^T dU G run in float64. Numerical error (float32, against the float64 direct
weight gradient; tests/core/test_kernels_winograd_wgrad.py): the sum over tiles runs in the
transformed domain, where F(4,3)'s constants (up to 8 in A, 5 in B^T) scale the terms before the
back-transform cancels them, so F(4,3) loses more than the forward does; F(2,3) holds +-1 only.
"""

from __future__ import annotations

import numba
import numpy as np

from core.kernels.blas import gemm
from core.kernels.conv_wgrad import conv2d_weight_grad_reference
from core.kernels.winograd import G2, G4, input_scratch, input_transform

# ------------------------------------------------------------ output-gradient transform
# By tile rows, as the forward's transforms (:mod:`core.kernels.winograd`, whose input transform
# V is reused as it is): row r of a batch is sample r // TH, tile row r % TH, holding TW tiles
# t = r*TW + tx. The vertical half runs along whole gradient rows; for the horizontal half,
# column j of every tile of the block is first gathered into a row (zd[i, j, t]), so it too runs
# along contiguous rows (the block's tiles) instead of within each 4- or 2-wide tile: measured
# 1.5-2x faster than the tile-by-tile form here. Constants are typed like the data (a Python
# literal would promote float32 to float64 and halve the SIMD width).


@numba.njit(inline="always")
def _a4(y0, y1, y2, y3, k2, k4, k8):
    """z = A y for F(4x4, 3x3): the transpose of the forward's output transform y = A^T v."""
    e, o = y0 + y2, y1 + y3
    e4, o8 = y0 + k4 * y2, k2 * y1 + k8 * y3
    return y0, e + o, e - o, e4 + o8, e4 - o8, y3


@numba.njit(inline="always")
def _a2(y0, y1):
    """z = A y for F(2x2, 3x3)."""
    return y0, y0 + y1, y0 - y1, -y1


@numba.njit(inline="always")
def _a_rows(m, s, d, p0, f, length, k2, k4, k8):
    """d[p0 + j, f, :length] = (A s)[j], j < a, for the m rows s[k, :length] of s."""
    if m == 4:
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
        d0, d1, d2, d3, d4, d5 = (
            d[p0, f],
            d[p0 + 1, f],
            d[p0 + 2, f],
            d[p0 + 3, f],
            d[p0 + 4, f],
            d[p0 + 5, f],
        )
        for x in range(length):
            e = _a4(s0[x], s1[x], s2[x], s3[x], k2, k4, k8)
            d0[x], d1[x], d2[x], d3[x], d4[x], d5[x] = e
    else:
        s0, s1 = s[0], s[1]
        d0, d1, d2, d3 = d[p0, f], d[p0 + 1, f], d[p0 + 2, f], d[p0 + 3, f]
        for x in range(length):
            d0[x], d1[x], d2[x], d3[x] = _a2(s0[x], s1[x])


@numba.njit(cache=True)
def _grad_block(dout, m, th, tw, r0, r1, z, ro, zo, zd):
    """z (a*a, F, (r1-r0)*TW) <- A dY A^T of every m x m tile of tile rows [r0, r1) of dout
    (N, F, OH, OW) (pixels past OH / OW as 0). ro (m, TW*m), zo (a, 1, TW*m),
    zd (a, >= m, >= (r1-r0)*TW) scratch."""
    a = m + 2
    f_, oh, ow = dout.shape[1], dout.shape[2], dout.shape[3]
    wz = ro.shape[1]
    nt = (r1 - r0) * tw
    k2, k4, k8 = ro.dtype.type(2), ro.dtype.type(4), ro.dtype.type(8)
    for f in range(f_):
        for r in range(r0, r1):
            n = r // th
            y0 = (r - n * th) * m
            q0 = (r - r0) * tw
            src_f = dout[n, f]
            for k in range(m):
                row = ro[k]
                yy = y0 + k
                if yy >= oh:
                    for x in range(wz):
                        row[x] = 0
                    continue
                src = src_f[yy]
                for x in range(ow):
                    row[x] = src[x]
                for x in range(ow, wz):
                    row[x] = 0
            _a_rows(m, ro, zo, 0, 0, wz, k2, k4, k8)  # vertical: zo = A ro
            for i in range(a):
                zi = zo[i, 0]
                for j in range(m):
                    dst = zd[i, j]
                    for tx in range(tw):
                        dst[q0 + tx] = zi[tx * m + j]
        for i in range(a):  # horizontal: z[i*a + j] = (zd[i] A^T)[j]
            _a_rows(m, zd[i], z, i * a, f, nt, k2, k4, k8)


@numba.njit(cache=True)
def wgrad_blocks(x, dout, m, pt, pl, r0, r1, block, du, db, vbuf, zbuf, fptr):
    """Tile rows [r0, r1) on the calling thread, ``block`` tile rows per batch of a*a GEMMs:
    du (a*a, F, C) and db (F,) are overwritten with this range's transformed weight gradient
    (before G^T . G) and bias gradient. vbuf / zbuf: flat scratch of at least a*a*C*block*TW /
    a*a*F*block*TW elements (TW = ceil(OW / m))."""
    a = m + 2
    c_, f_ = x.shape[1], dout.shape[1]
    oh, ow = dout.shape[2], dout.shape[3]
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    rb, zb, prow, hb = input_scratch(x, m, tw, block)
    ro = np.empty((m, tw * m), x.dtype)
    zo = np.empty((a, 1, tw * m), x.dtype)
    zd = np.empty((a, a, min(block, r1 - r0) * tw), x.dtype)
    tmp = np.empty((f_, c_), x.dtype)
    du[...] = 0
    for f in range(f_):
        db[f] = 0
    sum_row = a + 1  # Z[1, 1] = the sum of the tile's pixels: A's row 1 is all ones
    for b0 in range(r0, r1, block):
        b1 = min(b0 + block, r1)
        nt = (b1 - b0) * tw
        v = vbuf[: a * a * c_ * nt].reshape(a * a, c_, nt)
        z = zbuf[: a * a * f_ * nt].reshape(a * a, f_, nt)
        input_transform(x, m, pt, pl, th, tw, b0, b1, v, rb, zb, prow, hb)
        _grad_block(dout, m, th, tw, b0, b1, z, ro, zo, zd)
        for f in range(f_):
            acc = 0.0
            zs = z[sum_row, f]
            for q in range(nt):
                acc += zs[q]
            db[f] += acc
        for p in range(a * a):
            gemm(fptr, z[p], v[p].T, tmp)
            dp = du[p]
            for f in range(f_):
                dpf, tf = dp[f], tmp[f]
                for c in range(c_):
                    dpf[c] += tf[c]


@numba.njit(cache=True)
def _back_transform(du, g, dw_acc):
    """dw_acc (F, C, 3, 3) += G^T dU[f, c] G, dU (a*a, F, C) float64, G (a, 3)."""
    a = g.shape[0]
    f_, c_ = du.shape[1], du.shape[2]
    for f in range(f_):
        for c in range(c_):
            for i in range(3):
                for j in range(3):
                    s = 0.0
                    for p in range(a):
                        gp = g[p, i]
                        if gp == 0:
                            continue
                        for q in range(a):
                            s += gp * du[p * a + q, f, c] * g[q, j]
                    dw_acc[f, c, i, j] += s


@numba.njit(parallel=True, cache=True)
def winograd_weight_grad(x, dout, m, pt, pl, block, threads, dw_acc, db_acc, fptr=0):
    """dw_acc (F, C, 3, 3) += dL/dw and db_acc (F,) += dL/db of the stride-1 3x3 convolution
    out (N, F, OH, OW) = conv(x (N, C, H, W), w) + b with padding top/left (pt, pl) (bottom/right
    implied by OH, OW: OH = H + pt + pb - 2), given dout = dL/dout, computed as F(m x m, 3 x 3)
    Winograd (module docstring).

    The N*TH tile rows are split over ``threads`` tasks in contiguous ranges of whole blocks
    (pass ``numba.get_num_threads()``), ``block`` tile rows (block*TW tiles) per batch of GEMMs;
    a single range runs on the calling thread. ``fptr``: the float32 GEMM of
    :func:`core.kernels.blas.gemm` (0: ``np.dot``)."""
    a = m + 2
    n_, c_ = x.shape[0], x.shape[1]
    f_, oh, ow = dout.shape[1], dout.shape[2], dout.shape[3]
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    total = n_ * th
    nblocks = (total + block - 1) // block
    chunks = max(1, min(threads, nblocks))
    size = min(block, total) * tw
    du = np.empty((chunks, a * a, f_, c_), x.dtype)
    db = np.empty((chunks, f_), x.dtype)
    if chunks == 1:
        vbuf = np.empty(a * a * c_ * size, x.dtype)
        zbuf = np.empty(a * a * f_ * size, x.dtype)
        wgrad_blocks(x, dout, m, pt, pl, 0, total, block, du[0], db[0], vbuf, zbuf, fptr)
    else:
        for k in numba.prange(chunks):
            r0 = min(total, (k * nblocks // chunks) * block)
            r1 = min(total, ((k + 1) * nblocks // chunks) * block)
            vbuf = np.empty(a * a * c_ * size, x.dtype)
            zbuf = np.empty(a * a * f_ * size, x.dtype)
            wgrad_blocks(x, dout, m, pt, pl, r0, r1, block, du[k], db[k], vbuf, zbuf, fptr)
    total_du = np.zeros((a * a, f_, c_))
    for k in range(chunks):
        total_du += du[k]
        for f in range(f_):
            db_acc[f] += db[k, f]
    g = G4 if m == 4 else G2
    _back_transform(total_du, g, dw_acc)


def winograd_weight_grad_reference(x, dout, m, pt, pl, block, threads, dw_acc, db_acc, fptr=0):
    """Twin of :func:`winograd_weight_grad`: the direct weight gradient in float64 (the plain-loop
    backward reference of :mod:`core.kernels.conv`; ``m``, ``block``, ``threads`` and ``fptr``
    ignored)."""
    f_, c_ = dout.shape[1], x.shape[1]
    dw, db = np.zeros((f_, c_, 3, 3)), np.zeros(f_)  # sums in float64, added once
    partial = np.empty((1, f_, c_ * 9 + 1))
    conv2d_weight_grad_reference(
        np.asarray(x, np.float64), dw, np.asarray(dout, np.float64), 1, 1, pt, pl, 1, 1, 1,
        dw, db, partial,
    )  # fmt: skip
    dw_acc += dw
    db_acc += db
