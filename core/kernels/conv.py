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

from core.kernels.blas import gemm


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


@numba.njit(cache=True)
def _grid(x, kh, kw, sh, sw, dh, dw, oh, ow):
    """(unit_stride, grid width Wg, padded plane length S).

    Stride 1 (the common case) uses the "shifted plane" lowering: each sample is copied once into
    a zero-padded buffer of width Wg = OW + dw*(KW-1), and output pixel (oy, ox) lives at grid
    column q = oy*Wg + ox, so row (c, i, j) of the column matrix is the CONTIGUOUS slice
    xpad[c, i*dh*Wg + j*dw : ... + OH*Wg]: im2col and col2im become long memcpy/axpy loops
    (measured 3-5x cheaper than the per-row gather, which took 40-55% of a conv). The Wg - OW junk
    columns per row are computed and dropped (6% extra GEMM work for 3x3 on 32x32). Other strides
    use the general gather (:func:`_im2col_sample`) with Wg = OW."""
    unit = sh == 1 and sw == 1
    if not unit:
        return False, ow, 0
    wg = ow + dw * (kw - 1)
    hg = oh + dh * (kh - 1)
    return True, wg, hg * wg + dw * (kw - 1)


# Bytes of column matrix per GEMM: kept within the per-core L2 (1 MiB here) so that the lowered
# columns are still cached when the GEMM reads them. With whole-sample blocks a VGG 32x32x32 conv
# lowered 2.5 MB per GEMM and ran at 41 GFLOP/s; row bands of <= 256 KiB give ~55-60.
_COLS_BUDGET = 256 * 1024


@numba.njit(cache=True)
def _bands(k, oh, wg, itemsize, block, unit):
    """Output rows per GEMM when a block is one sample (row bands), else all OH rows."""
    if block > 1 or not unit:
        return oh
    rows = _COLS_BUDGET // max(1, k * wg * itemsize)
    return min(oh, max(1, rows))


@numba.njit(cache=True)
def _pad_sample(xn, pt, pl, wg, y0, y1, xp):
    """xp (C, S) grid rows [y0, y1) <- xn (C, H, W) at row y + pt, column z + pl of width-Wg
    planes (the rest of xp must already be zero and stays so)."""
    c_, h_, w_ = xn.shape
    hg = (xp.shape[1]) // wg
    z0 = max(0, -pl)
    z1 = min(w_, wg - pl)
    for c in range(c_):
        src_c = xn[c]
        dst = xp[c]
        for yy in range(max(y0, pt), min(y1, hg, h_ + pt)):
            d = dst[yy * wg + pl + z0 : yy * wg + pl + z1]
            r = src_c[yy - pt, z0:z1]
            for z in range(d.shape[0]):
                d[z] = r[z]


@numba.njit(cache=True)
def _lower(x, n, c0, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, unit, wg, xp, oy0, oy1, cols, q0):
    """Columns of sample n (channels c0 .. c0+Cg), output rows [oy0, oy1), into
    cols[:, q0 : q0 + (oy1-oy0)*Wg]. Non-unit strides always take all rows."""
    cg = cols.shape[0] // (kh * kw)
    length = (oy1 - oy0) * wg
    if unit:
        for c in range(cg):
            src = xp[c0 + c]
            for i in range(kh):
                for j in range(kw):
                    off = i * dh * wg + j * dw + oy0 * wg
                    d = cols[(c * kh + i) * kw + j, q0 : q0 + length]
                    r = src[off : off + length]
                    for q in range(length):
                        d[q] = r[q]
    else:
        _im2col_sample(x[n], c0, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, cols[:, q0:])


@numba.njit(cache=True)
def _forward_task(x, w, b, sh, sw, pt, pl, dh, dw, n0, n1, oy0, oy1, out, unit, wg, plane, fptr):
    """out[n0:n1, :, oy0:oy1] of :func:`conv2d_forward`."""
    c_ = x.shape[1]
    f_, cg, kh, kw = w.shape
    groups = c_ // cg
    fg = f_ // groups
    oh, ow = out.shape[2], out.shape[3]
    k = cg * kh * kw
    length = (oy1 - oy0) * wg
    wm = w.reshape(f_, k)
    m = (n1 - n0) * length
    cols = np.empty((k, m), x.dtype)
    res = np.empty((fg, m), x.dtype)
    xp = np.zeros((n1 - n0, c_, plane), x.dtype)
    if unit:
        for n in range(n0, n1):
            _pad_sample(x[n], pt, pl, wg, oy0, oy1 + dh * (kh - 1), xp[n - n0])
    for g in range(groups):
        for n in range(n0, n1):
            s = n - n0
            _lower(
                x,
                n,
                g * cg,
                kh,
                kw,
                sh,
                sw,
                pt,
                pl,
                dh,
                dw,
                oh,
                ow,
                unit,
                wg,
                xp[s],
                oy0,
                oy1,
                cols,
                s * length,
            )
        gemm(fptr, wm[g * fg : (g + 1) * fg], cols, res)
        for n in range(n0, n1):
            q0 = (n - n0) * length
            for f in range(fg):
                bf = b[g * fg + f]
                src = res[f]
                for oy in range(oy0, oy1):
                    dst = out[n, g * fg + f, oy]
                    base = q0 + (oy - oy0) * wg
                    r = src[base : base + ow]
                    for ox in range(ow):
                        dst[ox] = r[ox] + bf


@numba.njit(parallel=True, cache=True)
def conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, block, out, fptr=0):
    """out (N, F, OH, OW) = conv(x (N, C, H, W), w (F, C/G, KH, KW)) + b (F,).

    out[n,f,oy,ox] = b[f] + sum_{c,i,j} w[f,c,i,j] * x_pad[n, g*C/G+c, oy*sh-pt+i*dh, ox*sw-pl+j*dw]
    with g = f // (F/G). ``block`` samples are lowered side by side into one column matrix
    (C/G*KH*KW, block*OH*Wg) so that small feature maps still make one reasonably sized GEMM;
    with block == 1 a large sample is cut into bands of output rows that fit the L2 cache, which
    are also what a batch of one is split over the threads by. A single task runs on the calling
    thread (no pool wake-up). ``fptr``: the float32 GEMM of :func:`core.kernels.blas.gemm`
    (0: ``np.dot``)."""
    n_ = x.shape[0]
    _, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    unit, wg, plane = _grid(x, kh, kw, sh, sw, dh, dw, oh, ow)
    rows = _bands(cg * kh * kw, oh, wg, x.itemsize, block, unit)
    nbands = (oh + rows - 1) // rows
    nblocks = (n_ + block - 1) // block
    ntasks = nblocks * nbands
    if ntasks == 1:
        _forward_task(x, w, b, sh, sw, pt, pl, dh, dw, 0, n_, 0, oh, out, unit, wg, plane, fptr)
        return
    for t in numba.prange(ntasks):
        blk = t // nbands
        band = t % nbands
        n0 = blk * block
        n1 = min(n0 + block, n_)
        oy0 = band * rows
        oy1 = min(oy0 + rows, oh)
        _forward_task(x, w, b, sh, sw, pt, pl, dh, dw, n0, n1, oy0, oy1, out, unit, wg, plane, fptr)


def conv2d_forward_reference(x, w, b, sh, sw, pt, pl, dh, dw, block, out, fptr=0):
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


@numba.njit(cache=True)
def _backward_chunk(
    x, w, dout, sh, sw, pt, pl, dh, dw, block, c0, c1, dx, part, unit, wg, plane, fptr
):
    """Samples c0 .. c1: dx rows overwritten, weight/bias gradient sums into part (F, K+1)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    f_, cg, kh, kw = w.shape
    groups = c_ // cg
    fg = f_ // groups
    oh, ow = dout.shape[2], dout.shape[3]
    k = cg * kh * kw
    wm = w.reshape(f_, k)
    rows = _bands(k, oh, wg, x.itemsize, block, unit)
    for f in range(f_):
        for r in range(k + 1):
            part[f, r] = 0
    tmp = np.empty((fg, k), x.dtype)
    xp = np.zeros((block, c_, plane), x.dtype)
    dxp = np.empty((block, c_, plane), x.dtype)
    for n0 in range(c0, c1, block):
        n1 = min(n0 + block, c1)
        if unit:
            for n in range(n0, n1):
                _pad_sample(x[n], pt, pl, wg, 0, oh + dh * (kh - 1), xp[n - n0])
                dxp[n - n0] = 0
        for oy0 in range(0, oh, rows):
            oy1 = min(oy0 + rows, oh)
            length = (oy1 - oy0) * wg
            m = (n1 - n0) * length
            cols = np.empty((k, m), x.dtype)
            dcols = np.empty((k, m), x.dtype)
            dg = np.empty((fg, m), x.dtype)
            for g in range(groups):
                for n in range(n0, n1):
                    s = n - n0
                    q0 = s * length
                    _lower(
                        x,
                        n,
                        g * cg,
                        kh,
                        kw,
                        sh,
                        sw,
                        pt,
                        pl,
                        dh,
                        dw,
                        oh,
                        ow,
                        unit,
                        wg,
                        xp[s],
                        oy0,
                        oy1,
                        cols,
                        q0,
                    )
                    for f in range(fg):
                        dst = dg[f]
                        acc = 0.0
                        for oy in range(oy0, oy1):
                            src = dout[n, g * fg + f, oy]
                            base = q0 + (oy - oy0) * wg
                            d = dst[base : base + wg]
                            for ox in range(ow):
                                v = src[ox]
                                d[ox] = v
                                acc += v
                            for ox in range(ow, wg):  # junk grid columns add nothing
                                d[ox] = 0
                        part[g * fg + f, k] += acc
                gemm(fptr, dg, cols.T, tmp)
                for f in range(fg):
                    for r in range(k):
                        part[g * fg + f, r] += tmp[f, r]
                gemm(fptr, wm[g * fg : (g + 1) * fg].T, dg, dcols)
                for n in range(n0, n1):
                    q0 = (n - n0) * length
                    if not unit:
                        _col2im_sample(
                            dcols[:, q0:], g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, dx[n]
                        )
                        continue
                    for c in range(cg):
                        acc_c = dxp[n - n0, g * cg + c]
                        for i in range(kh):
                            for j in range(kw):
                                off = i * dh * wg + j * dw + oy0 * wg
                                seg = dcols[(c * kh + i) * kw + j, q0 : q0 + length]
                                dseg = acc_c[off : off + length]
                                for q in range(length):
                                    dseg[q] += seg[q]
        if unit:
            for n in range(n0, n1):
                for c in range(c_):
                    acc_c = dxp[n - n0, c]
                    dst_c = dx[n, c]
                    for y in range(h_):
                        base = (y + pt) * wg + pl
                        r = acc_c[base : base + w_]
                        d = dst_c[y]
                        for z in range(w_):
                            d[z] = r[z]


@numba.njit(parallel=True, cache=True)
def conv2d_backward(x, w, dout, sh, sw, pt, pl, dh, dw, block, dx, dw_acc, db_acc, partial, fptr=0):
    """Gradients of :func:`conv2d_forward`: dx (N, C, H, W) overwritten; dw_acc (F, C/G, KH, KW)
    and db_acc (F,) accumulated (+=). ``partial`` (T, F, C/G*KH*KW + 1) is scratch: the batch is
    split into T chunks (T = thread count), each summing its weight/bias gradient into partial[t]
    (GEMMs over ``block`` samples at a time), and the chunks are added at the end. Batches of at
    most one block run on the calling thread."""
    n_ = x.shape[0]
    f_, cg, kh, kw = w.shape
    oh, ow = dout.shape[2], dout.shape[3]
    k = cg * kh * kw
    unit, wg, plane = _grid(x, kh, kw, sh, sw, dh, dw, oh, ow)
    chunks = min(partial.shape[0], n_)
    if n_ <= block:
        chunks = 1
        _backward_chunk(
            x, w, dout, sh, sw, pt, pl, dh, dw, block, 0, n_, dx, partial[0], unit, wg, plane, fptr
        )
    else:
        for t in numba.prange(chunks):
            c0 = t * n_ // chunks
            c1 = (t + 1) * n_ // chunks
            _backward_chunk(
                x,
                w,
                dout,
                sh,
                sw,
                pt,
                pl,
                dh,
                dw,
                block,
                c0,
                c1,
                dx,
                partial[t],
                unit,
                wg,
                plane,
                fptr,
            )
    dwa = dw_acc.reshape(f_, k)
    for f in range(f_):
        for t in range(chunks):
            db_acc[f] += partial[t, f, k]
            for r in range(k):
                dwa[f, r] += partial[t, f, r]


def conv2d_backward_reference(
    x, w, dout, sh, sw, pt, pl, dh, dw, block, dx, dw_acc, db_acc, partial, fptr=0
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
