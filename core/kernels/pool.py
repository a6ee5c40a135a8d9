"""Pooling kernels (NCHW).

Output size: ``OH = 1 + (H + pad_top + pad_bottom - KH) // sh`` (same for W). Max pooling ignores
padded positions (as if -inf); average pooling divides by the number of in-input positions of
each window (padding is not counted).
"""

from __future__ import annotations

import numba

# Pooling is memory-bound and cheap: below this many input elements a kernel stays on the calling
# thread (a LeNet 64x6x28x28 pool takes ~60 us serially; waking the pool costs 10-30 us and
# milliseconds when a core is busy with another process: VGG's 2M-element pool backward measured
# 2.5 ms in parallel form under load).
PARALLEL_MIN = 1 << 22


@numba.njit(cache=True)
def _maxpool_plane(src, kh, kw, sh, sw, pt, pl, dst, am):
    """One (H, W) plane -> dst (OH, OW), am (OH, OW) flat argmax (see :func:`maxpool_forward`)."""
    h_, w_ = src.shape
    oh_, ow_ = dst.shape
    inside = pt == 0 and pl == 0 and (oh_ - 1) * sh + kh <= h_ and (ow_ - 1) * sw + kw <= w_
    if inside and kh == 2 and kw == 2 and sh == 2 and sw == 2:  # the common 2x2/2 case
        for oy in range(oh_):
            r0 = src[2 * oy]
            r1 = src[2 * oy + 1]
            d = dst[oy]
            a = am[oy]
            base = 2 * oy * w_
            for ox in range(ow_):
                x0 = 2 * ox
                best = r0[x0]
                idx = x0
                v = r0[x0 + 1]
                if v > best:
                    best = v
                    idx = x0 + 1
                v = r1[x0]
                if v > best:
                    best = v
                    idx = w_ + x0
                v = r1[x0 + 1]
                if v > best:
                    best = v
                    idx = w_ + x0 + 1
                d[ox] = best
                a[ox] = base + idx
        return
    if inside:  # every window lies in the input, no bounds checks
        for oy in range(oh_):
            d = dst[oy]
            a = am[oy]
            for ox in range(ow_):
                y0 = oy * sh
                x0 = ox * sw
                best = src[y0, x0]
                idx = y0 * w_ + x0
                for i in range(kh):
                    row = src[y0 + i]
                    for j in range(kw):
                        v = row[x0 + j]
                        if v > best:
                            best = v
                            idx = (y0 + i) * w_ + x0 + j
                d[ox] = best
                a[ox] = idx
        return
    for oy in range(oh_):
        y0 = oy * sh - pt
        for ox in range(ow_):
            x0 = ox * sw - pl
            best = src[0, 0]
            idx = -1
            for i in range(kh):
                iy = y0 + i
                if iy < 0 or iy >= h_:
                    continue
                for j in range(kw):
                    ix = x0 + j
                    if ix < 0 or ix >= w_:
                        continue
                    v = src[iy, ix]
                    if idx < 0 or v > best:
                        best = v
                        idx = iy * w_ + ix
            if idx < 0:
                best = 0
            dst[oy, ox] = best
            am[oy, ox] = idx


@numba.njit(parallel=True, cache=True)
def maxpool_forward(x, kh, kw, sh, sw, pt, pl, out, argmax):
    """x (N, C, H, W) -> out (N, C, OH, OW); argmax (N, C, OH, OW) int64 = flat index y*W + x of
    the maximum inside x[n, c] (-1 if the window holds no input pixel; out is then 0)."""
    n_, c_ = x.shape[0], x.shape[1]
    if x.size < PARALLEL_MIN:
        for r in range(n_ * c_):
            n, c = r // c_, r % c_
            _maxpool_plane(x[n, c], kh, kw, sh, sw, pt, pl, out[n, c], argmax[n, c])
        return
    for r in numba.prange(n_ * c_):
        n, c = r // c_, r % c_
        _maxpool_plane(x[n, c], kh, kw, sh, sw, pt, pl, out[n, c], argmax[n, c])


def maxpool_forward_reference(x, kh, kw, sh, sw, pt, pl, out, argmax):
    """Plain-loop twin of :func:`maxpool_forward`."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oy in range(oh_):
                for ox in range(ow_):
                    best, idx = 0.0, -1
                    for i in range(kh):
                        for j in range(kw):
                            iy, ix = oy * sh - pt + i, ox * sw - pl + j
                            if (
                                0 <= iy < h_
                                and 0 <= ix < w_
                                and (idx < 0 or x[n, c, iy, ix] > best)
                            ):
                                best, idx = x[n, c, iy, ix], iy * w_ + ix
                    out[n, c, oy, ox] = best
                    argmax[n, c, oy, ox] = idx


@numba.njit(cache=True)
def _unpool_plane(d, am, dst):
    """dst (H*W,) flat plane overwritten with each d (OH*OW,) value added at its argmax."""
    for q in range(dst.shape[0]):
        dst[q] = 0
    for q in range(d.shape[0]):
        idx = am[q]
        if idx >= 0:
            dst[idx] += d[q]


@numba.njit(parallel=True, cache=True)
def maxpool_backward(dout, argmax, dx):
    """dx (N, C, H, W) overwritten: each dout[n, c, oy, ox] is added at its argmax position."""
    n_, c_, h_, w_ = dx.shape
    p = dout.shape[2] * dout.shape[3]
    d2 = dout.reshape(n_ * c_, p)
    a2 = argmax.reshape(n_ * c_, p)
    x2 = dx.reshape(n_ * c_, h_ * w_)
    if dx.size < PARALLEL_MIN:
        for r in range(n_ * c_):
            _unpool_plane(d2[r], a2[r], x2[r])
        return
    for r in numba.prange(n_ * c_):
        _unpool_plane(d2[r], a2[r], x2[r])


def maxpool_backward_reference(dout, argmax, dx):
    """Plain-loop twin of :func:`maxpool_backward`."""
    n_, c_, _, w_ = dx.shape
    dx[...] = 0
    for n in range(n_):
        for c in range(c_):
            for oy in range(dout.shape[2]):
                for ox in range(dout.shape[3]):
                    idx = argmax[n, c, oy, ox]
                    if idx >= 0:
                        dx[n, c, idx // w_, idx % w_] += dout[n, c, oy, ox]


@numba.njit(parallel=True, cache=True)
def avgpool_forward(x, kh, kw, sh, sw, pt, pl, out):
    """x (N, C, H, W) -> out (N, C, OH, OW): mean of the in-input pixels of each window."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for r in numba.prange(n_ * c_):
        n = r // c_
        c = r % c_
        src = x[n, c]
        for oy in range(oh_):
            y0 = max(oy * sh - pt, 0)
            y1 = min(oy * sh - pt + kh, h_)
            for ox in range(ow_):
                x0 = max(ox * sw - pl, 0)
                x1 = min(ox * sw - pl + kw, w_)
                acc = 0.0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        acc += src[iy, ix]
                cnt = (y1 - y0) * (x1 - x0)
                out[n, c, oy, ox] = acc / cnt if cnt > 0 else 0.0


def avgpool_forward_reference(x, kh, kw, sh, sw, pt, pl, out):
    """Plain-loop twin of :func:`avgpool_forward`."""
    n_, c_, h_, w_ = x.shape
    for n in range(n_):
        for c in range(c_):
            for oy in range(out.shape[2]):
                for ox in range(out.shape[3]):
                    acc, cnt = 0.0, 0
                    for i in range(kh):
                        for j in range(kw):
                            iy, ix = oy * sh - pt + i, ox * sw - pl + j
                            if 0 <= iy < h_ and 0 <= ix < w_:
                                acc += float(x[n, c, iy, ix])
                                cnt += 1
                    out[n, c, oy, ox] = acc / cnt if cnt else 0.0


@numba.njit(parallel=True, cache=True)
def avgpool_backward(dout, kh, kw, sh, sw, pt, pl, dx):
    """Adjoint of :func:`avgpool_forward`; dx (N, C, H, W) is overwritten."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dout.shape[2], dout.shape[3]
    for r in numba.prange(n_ * c_):
        n = r // c_
        c = r % c_
        dst = dx[n, c]
        for y in range(h_):
            for x in range(w_):
                dst[y, x] = 0
        for oy in range(oh_):
            y0 = max(oy * sh - pt, 0)
            y1 = min(oy * sh - pt + kh, h_)
            for ox in range(ow_):
                x0 = max(ox * sw - pl, 0)
                x1 = min(ox * sw - pl + kw, w_)
                cnt = (y1 - y0) * (x1 - x0)
                if cnt <= 0:
                    continue
                g = dout[n, c, oy, ox] / cnt
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        dst[iy, ix] += g


def avgpool_backward_reference(dout, kh, kw, sh, sw, pt, pl, dx):
    """Plain-loop twin of :func:`avgpool_backward`."""
    n_, c_, h_, w_ = dx.shape
    dx[...] = 0
    for n in range(n_):
        for c in range(c_):
            for oy in range(dout.shape[2]):
                for ox in range(dout.shape[3]):
                    cells = [
                        (oy * sh - pt + i, ox * sw - pl + j)
                        for i in range(kh)
                        for j in range(kw)
                        if 0 <= oy * sh - pt + i < h_ and 0 <= ox * sw - pl + j < w_
                    ]
                    for iy, ix in cells:
                        dx[n, c, iy, ix] += dout[n, c, oy, ox] / len(cells)
