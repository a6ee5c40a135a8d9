"""Convolution kernels (NCHW): per-sample im2col + BLAS GEMM inside one Numba parallel loop.

The batch is split over Numba threads (``prange`` over samples); each thread lowers one sample at
a time into a small column matrix ``cols`` (C/G*KH*KW, OH*OW), which stays in cache, and calls a
single-threaded BLAS GEMM on it. So there is exactly one thread pool (Numba's) and no large
intermediate. Row r = (c*KH + i)*KW + j of ``cols`` holds x_pad[c, oy*sh - pt + i*dh,
ox*sw - pl + j*dw] at column q = oy*OW + ox (0 outside the input).

Output size: ``OH = 1 + (H + pad_top + pad_bottom - dh * (KH - 1) - 1) // sh`` (same for W).
Weight (F, C/G, KH, KW), bias (F,); channel block g of the input meets filter block g.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _valid_range(pad, k_off, stride, size, out_size):
    """Output positions o in [lo, hi) for which o*stride - pad + k_off lies in [0, size)."""
    start = pad - k_off  # need o*stride >= start
    lo = 0 if start <= 0 else (start + stride - 1) // stride
    last = size - 1 + pad - k_off  # need o*stride <= last
    hi = 0 if last < 0 else last // stride + 1
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    return lo, hi


@numba.njit(cache=True)
def _im2col_sample(xn, c0, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, cols):
    """cols (Cg*KH*KW, OH*OW) <- channels c0 .. c0+Cg of one sample xn (C, H, W)."""
    h_, w_ = xn.shape[1], xn.shape[2]
    cg = cols.shape[0] // (kh * kw)
    zero = cols.dtype.type(0)
    for c in range(cg):
        src_c = xn[c0 + c]
        for i in range(kh):
            for j in range(kw):
                dst = cols[(c * kh + i) * kw + j]
                lo, hi = _valid_range(pl, j * dw, sw, w_, ow)
                base = j * dw - pl
                for oy in range(oh):
                    iy = oy * sh - pt + i * dh
                    q = oy * ow
                    if iy < 0 or iy >= h_:
                        for ox in range(ow):
                            dst[q + ox] = zero
                        continue
                    src = src_c[iy]
                    for ox in range(lo):
                        dst[q + ox] = zero
                    if sw == 1:
                        for ox in range(lo, hi):
                            dst[q + ox] = src[ox + base]
                    else:
                        for ox in range(lo, hi):
                            dst[q + ox] = src[ox * sw + base]
                    for ox in range(hi, ow):
                        dst[q + ox] = zero


@numba.njit(cache=True)
def _col2im_sample(cols, c0, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, dxn):
    """dxn[c0 .. c0+Cg] of one sample (C, H, W) <- adjoint of :func:`_im2col_sample` (overwrite)."""
    h_, w_ = dxn.shape[1], dxn.shape[2]
    cg = cols.shape[0] // (kh * kw)
    for c in range(cg):
        dst_c = dxn[c0 + c]
        for y in range(h_):
            for z in range(w_):
                dst_c[y, z] = 0
        for i in range(kh):
            for j in range(kw):
                src = cols[(c * kh + i) * kw + j]
                lo, hi = _valid_range(pl, j * dw, sw, w_, ow)
                base = j * dw - pl
                for oy in range(oh):
                    iy = oy * sh - pt + i * dh
                    if iy < 0 or iy >= h_:
                        continue
                    dst = dst_c[iy]
                    q = oy * ow
                    for ox in range(lo, hi):
                        dst[ox * sw + base] += src[q + ox]


@numba.njit(parallel=True, cache=True)
def conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, block, out):
    """out (N, F, OH, OW) = conv(x (N, C, H, W), w (F, C/G, KH, KW)) + b (F,).

    out[n,f,oy,ox] = b[f] + sum_{c,i,j} w[f,c,i,j] * x_pad[n, g*C/G+c, oy*sh-pt+i*dh, ox*sw-pl+j*dw]
    with g = f // (F/G). ``block`` samples are lowered side by side into one column matrix
    (C/G*KH*KW, block*OH*OW) so that small feature maps still make one reasonably sized GEMM."""
    n_, c_ = x.shape[0], x.shape[1]
    f_, cg, kh, kw = w.shape
    groups = c_ // cg
    fg = f_ // groups
    oh, ow = out.shape[2], out.shape[3]
    p = oh * ow
    k = cg * kh * kw
    wm = w.reshape(f_, k)
    nblocks = (n_ + block - 1) // block
    for t in numba.prange(nblocks):
        n0 = t * block
        n1 = min(n0 + block, n_)
        m = (n1 - n0) * p
        cols = np.empty((k, m), x.dtype)
        res = np.empty((fg, m), x.dtype)
        for g in range(groups):
            for n in range(n0, n1):
                _im2col_sample(
                    x[n], g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, cols[:, (n - n0) * p :]
                )
            np.dot(wm[g * fg : (g + 1) * fg], cols, res)
            for n in range(n0, n1):
                q0 = (n - n0) * p
                for f in range(fg):
                    bf = b[g * fg + f]
                    dst = out[n, g * fg + f].reshape(p)
                    src = res[f]
                    for q in range(p):
                        dst[q] = src[q0 + q] + bf


def conv2d_forward_reference(x, w, b, sh, sw, pt, pl, dh, dw, block, out):
    """Direct grouped convolution by nested loops: the oracle of :func:`conv2d_forward`."""
    n_, c_, h_, w_ = x.shape
    f_, cg, kh_, kw_ = w.shape
    fg = f_ // (c_ // cg)
    _, _, oh_, ow_ = out.shape
    for n in range(n_):
        for f in range(f_):
            g = f // fg
            for oy in range(oh_):
                for ox in range(ow_):
                    acc = float(b[f])
                    for c in range(cg):
                        for i in range(kh_):
                            for j in range(kw_):
                                iy = oy * sh - pt + i * dh
                                ix = ox * sw - pl + j * dw
                                if 0 <= iy < h_ and 0 <= ix < w_:
                                    acc += float(w[f, c, i, j]) * float(x[n, g * cg + c, iy, ix])
                    out[n, f, oy, ox] = acc


@numba.njit(parallel=True, cache=True)
def conv2d_backward(x, w, dout, sh, sw, pt, pl, dh, dw, block, dx, dw_acc, db_acc, partial):
    """Gradients of :func:`conv2d_forward`: dx (N, C, H, W) overwritten; dw_acc (F, C/G, KH, KW)
    and db_acc (F,) accumulated (+=). ``partial`` (T, F, C/G*KH*KW + 1) is scratch: the batch is
    split into T chunks (T = thread count), each summing its weight/bias gradient into partial[t]
    (GEMMs over ``block`` samples at a time), and the chunks are added at the end."""
    n_, c_ = x.shape[0], x.shape[1]
    f_, cg, kh, kw = w.shape
    groups = c_ // cg
    fg = f_ // groups
    oh, ow = dout.shape[2], dout.shape[3]
    p = oh * ow
    k = cg * kh * kw
    wm = w.reshape(f_, k)
    chunks = min(partial.shape[0], n_)
    for t in numba.prange(chunks):
        part = partial[t]
        for f in range(f_):
            for r in range(k + 1):
                part[f, r] = 0
        tmp = np.empty((fg, k), x.dtype)
        c0 = t * n_ // chunks
        c1 = (t + 1) * n_ // chunks
        for n0 in range(c0, c1, block):
            n1 = min(n0 + block, c1)
            m = (n1 - n0) * p
            cols = np.empty((k, m), x.dtype)
            dcols = np.empty((k, m), x.dtype)
            dg = np.empty((fg, m), x.dtype)
            for g in range(groups):
                for n in range(n0, n1):
                    q0 = (n - n0) * p
                    _im2col_sample(
                        x[n], g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, cols[:, q0:]
                    )
                    for f in range(fg):
                        src = dout[n, g * fg + f].reshape(p)
                        dst = dg[f]
                        s = 0.0
                        for q in range(p):
                            v = src[q]
                            dst[q0 + q] = v
                            s += v
                        part[g * fg + f, k] += s
                np.dot(dg, cols.T, tmp)
                for f in range(fg):
                    for r in range(k):
                        part[g * fg + f, r] += tmp[f, r]
                np.dot(wm[g * fg : (g + 1) * fg].T, dg, dcols)
                for n in range(n0, n1):
                    q0 = (n - n0) * p
                    _col2im_sample(
                        dcols[:, q0:], g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, dx[n]
                    )
    dwa = dw_acc.reshape(f_, k)
    for f in numba.prange(f_):
        for t in range(chunks):
            db_acc[f] += partial[t, f, k]
            for r in range(k):
                dwa[f, r] += partial[t, f, r]


def conv2d_backward_reference(
    x, w, dout, sh, sw, pt, pl, dh, dw, block, dx, dw_acc, db_acc, partial
):
    """Plain-loop twin of :func:`conv2d_backward` (scatter form of the forward sum)."""
    n_, c_, h_, w_ = x.shape
    f_, cg, kh_, kw_ = w.shape
    fg = f_ // (c_ // cg)
    _, _, oh_, ow_ = dout.shape
    dx[...] = 0
    for n in range(n_):
        for f in range(f_):
            g = f // fg
            for oy in range(oh_):
                for ox in range(ow_):
                    d = float(dout[n, f, oy, ox])
                    db_acc[f] += d
                    for c in range(cg):
                        for i in range(kh_):
                            for j in range(kw_):
                                iy = oy * sh - pt + i * dh
                                ix = ox * sw - pl + j * dw
                                if 0 <= iy < h_ and 0 <= ix < w_:
                                    dw_acc[f, c, i, j] += d * float(x[n, g * cg + c, iy, ix])
                                    dx[n, g * cg + c, iy, ix] += d * float(w[f, c, i, j])
