"""Convolution kernels: im2col / col2im (GEMM done by BLAS in the layer) and layout transposes.

Column layout ("CKN"): ``cols`` has shape (C, KH, KW, N, OH, OW), so that
``cols.reshape(G, C//G * KH * KW, N * OH * OW)`` is a free view and one BLAS GEMM per group
computes the whole batch: ``y[g] = w[g] (F/G, C/G*KH*KW) @ cols[g]`` -> (F, N*OH*OW).

Output size: ``OH = 1 + (H + pad_top + pad_bottom - dh * (KH - 1) - 1) // sh`` (same for W).
Padding beyond the input reads as 0.
"""

from __future__ import annotations

import numba


@numba.njit(inline="always")
def _valid_range(pad: int, k_off: int, stride: int, size: int, out_size: int) -> tuple[int, int]:
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


@numba.njit(parallel=True, cache=True)
def im2col(x, sh, sw, pt, pl, dh, dw, cols):
    """x (N, C, H, W) -> cols (C, KH, KW, N, OH, OW); cols[c,i,j,n,oy,ox] = x_pad[n,c,iy,ix]
    with iy = oy*sh - pt + i*dh, ix = ox*sw - pl + j*dw (0 outside the input)."""
    n_, c_, h_, w_ = x.shape
    kh_, kw_ = cols.shape[1], cols.shape[2]
    oh_, ow_ = cols.shape[4], cols.shape[5]
    zero = x.dtype.type(0)
    for r in numba.prange(c_ * kh_ * kw_ * n_):
        n = r % n_
        row = r // n_
        j = row % kw_
        i = (row // kw_) % kh_
        c = row // (kw_ * kh_)
        lo, hi = _valid_range(pl, j * dw, sw, w_, ow_)
        for oy in range(oh_):
            iy = oy * sh - pt + i * dh
            dst = cols[c, i, j, n, oy]
            if iy < 0 or iy >= h_:
                for ox in range(ow_):
                    dst[ox] = zero
                continue
            src = x[n, c, iy]
            for ox in range(lo):
                dst[ox] = zero
            base = j * dw - pl
            for ox in range(lo, hi):
                dst[ox] = src[ox * sw + base]
            for ox in range(hi, ow_):
                dst[ox] = zero


def im2col_reference(x, sh, sw, pt, pl, dh, dw, cols):
    """Plain-loop twin of :func:`im2col`."""
    n_, c_, h_, w_ = x.shape
    _, kh_, kw_, _, oh_, ow_ = cols.shape
    for c in range(c_):
        for i in range(kh_):
            for j in range(kw_):
                for n in range(n_):
                    for oy in range(oh_):
                        for ox in range(ow_):
                            iy = oy * sh - pt + i * dh
                            ix = ox * sw - pl + j * dw
                            inside = 0 <= iy < h_ and 0 <= ix < w_
                            cols[c, i, j, n, oy, ox] = x[n, c, iy, ix] if inside else 0


@numba.njit(parallel=True, cache=True)
def col2im(cols, sh, sw, pt, pl, dh, dw, dx):
    """Adjoint of :func:`im2col`: dx (N, C, H, W) = sum of cols entries mapping to each pixel.

    dx is overwritten (not accumulated)."""
    n_, c_, h_, w_ = dx.shape
    kh_, kw_ = cols.shape[1], cols.shape[2]
    oh_, ow_ = cols.shape[4], cols.shape[5]
    for r in numba.prange(n_ * c_):
        n = r // c_
        c = r % c_
        out = dx[n, c]
        for y in range(h_):
            for x in range(w_):
                out[y, x] = 0
        for i in range(kh_):
            for j in range(kw_):
                lo, hi = _valid_range(pl, j * dw, sw, w_, ow_)
                base = j * dw - pl
                for oy in range(oh_):
                    iy = oy * sh - pt + i * dh
                    if iy < 0 or iy >= h_:
                        continue
                    src = cols[c, i, j, n, oy]
                    dst = out[iy]
                    for ox in range(lo, hi):
                        dst[ox * sw + base] += src[ox]


def col2im_reference(cols, sh, sw, pt, pl, dh, dw, dx):
    """Plain-loop twin of :func:`col2im`."""
    n_, c_, h_, w_ = dx.shape
    _, kh_, kw_, _, oh_, ow_ = cols.shape
    dx[...] = 0
    for c in range(c_):
        for i in range(kh_):
            for j in range(kw_):
                for n in range(n_):
                    for oy in range(oh_):
                        for ox in range(ow_):
                            iy = oy * sh - pt + i * dh
                            ix = ox * sw - pl + j * dw
                            if 0 <= iy < h_ and 0 <= ix < w_:
                                dx[n, c, iy, ix] += cols[c, i, j, n, oy, ox]


@numba.njit(parallel=True, cache=True)
def fnp_to_nfp(y, b, out):
    """y (F, N, P) -> out (N, F, P) with out[n, f, p] = y[f, n, p] + b[f]."""
    f_, n_, p_ = y.shape
    for r in numba.prange(n_ * f_):
        n = r // f_
        f = r % f_
        bf = b[f]
        src = y[f, n]
        dst = out[n, f]
        for p in range(p_):
            dst[p] = src[p] + bf


def fnp_to_nfp_reference(y, b, out):
    """Plain-loop twin of :func:`fnp_to_nfp`."""
    f_, n_, p_ = y.shape
    for n in range(n_):
        for f in range(f_):
            for p in range(p_):
                out[n, f, p] = y[f, n, p] + b[f]


@numba.njit(parallel=True, cache=True)
def nfp_to_fnp(dout, out, db):
    """dout (N, F, P) -> out (F, N, P) transposed; db[f] += sum over n, p of dout[n, f, p]."""
    n_, f_, p_ = dout.shape
    for f in numba.prange(f_):
        acc = 0.0
        for n in range(n_):
            src = dout[n, f]
            dst = out[f, n]
            for p in range(p_):
                v = src[p]
                dst[p] = v
                acc += v
        db[f] += acc


def nfp_to_fnp_reference(dout, out, db):
    """Plain-loop twin of :func:`nfp_to_fnp`."""
    n_, f_, p_ = dout.shape
    for f in range(f_):
        acc = 0.0
        for n in range(n_):
            for p in range(p_):
                out[f, n, p] = dout[n, f, p]
                acc += dout[n, f, p]
        db[f] += acc


def conv2d_forward_reference(x, w, b, sh, sw, pt, pl, dh, dw, out):
    """Direct grouped convolution by nested loops: the oracle for the whole conv forward.

    x (N, C, H, W), w (F, C/G, KH, KW), b (F,), out (N, F, OH, OW); G = C // w.shape[1].
    out[n,f,oy,ox] = b[f] + sum_{c,i,j} w[f,c,i,j] * x_pad[n, g*C/G + c, oy*sh-pt+i*dh, ox*sw-pl+j*dw]
    """
    n_, c_, h_, w_ = x.shape
    f_, cg, kh_, kw_ = w.shape
    groups = c_ // cg
    fg = f_ // groups
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


__all__ = [
    "col2im",
    "col2im_reference",
    "conv2d_forward_reference",
    "fnp_to_nfp",
    "fnp_to_nfp_reference",
    "im2col",
    "im2col_reference",
    "nfp_to_fnp",
    "nfp_to_fnp_reference",
]
