"""Winograd convolution F(m x m, 3 x 3), m = 2 or 4, for stride-1, dilation-1, groups-1 3x3 convs.

Lavin & Gray (2015): the output is cut into m x m tiles; tile (ty, tx) needs the a x a input patch
d (a = m + 2) at rows ty*m - pt .., columns tx*m - pl .. (0 outside the input). With the filter
transform U = G g G^T (a x a per filter f and channel c) and the input transform V = B^T d B,

    Y[f, tile] = A^T ( sum_c U[f, c] * V[c, tile] ) A          (* element-wise, m x m result)

so the C*9 multiplies per output pixel of im2col become a*a/(m*m) per (f, c): 4 for F(2,3)
(2.25x fewer), 2.25 for F(4,3) (4x fewer). The channel sum is, for each of the a*a transform
positions p, one GEMM  M[p] (F, T) = U[p] (F, C) @ V[p] (C, T)  over a block of T tiles, through
:func:`core.kernels.blas.gemm` (NumPy's OpenBLAS, single-threaded per task).

Layouts: U (a*a, F, C); per block of tile rows V (a*a, C, T), M (a*a, F, T); tile row r of a
batch is sample r // TH, tile row r % TH, TH = ceil(OH/m), TW = ceil(OW/m), and its tiles are
t = r*TW + tx. Tiles that overhang the output (OH, OW not multiples of m) compute junk rows and
columns that are dropped.
The filter transform runs in float64 (once per weight version) and stores in the array dtype;
the input and output transforms run in the array dtype (float32: SIMD-wide, as in cuDNN / oneDNN).

Backward-data is the same convolution of the output gradient with the flipped, channel-swapped
filter w'[c, f, i, j] = w[f, c, 2-i, 2-j] and padding (2 - pt, 2 - pl):
:func:`winograd_filter_transposed` packs its U' (a*a, C, F) and :func:`winograd_forward` runs it.

Numerical error (float32, measured against a float64 direct convolution, see
tests/core/test_kernels_winograd.py): F(2,3) stays at im2col's level; F(4,3) multiplies the
transform constants up to 8*8 (A) and 4*4 (B^T), so its error is a few times larger.
"""

from __future__ import annotations

import numba
import numpy as np

from core.kernels.blas import gemm

# ---------------------------------------------------------------------------- the matrices
# Lavin & Gray's F(2x2, 3x3) and F(4x4, 3x3) (interpolation points 0, +-1, +-2, infinity).
BT2 = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G2 = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT2 = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
BT4 = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
G4 = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float64,
)
AT4 = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    np.float64,
)
TILES = (2, 4)  # the supported output tile sizes m


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T (a, a), G (a, 3), A^T (m, a)) of F(m x m, 3 x 3), a = m + 2."""
    if m == 2:
        return BT2, G2, AT2
    if m == 4:
        return BT4, G4, AT4
    raise ValueError(f"winograd tile size m must be one of {TILES}, got {m}")


def tiles(oh: int, ow: int, m: int) -> tuple[int, int]:
    """(TH, TW) = (ceil(OH / m), ceil(OW / m)) tiles per sample."""
    return -(-oh // m), -(-ow // m)


# ---------------------------------------------------------------- 1-D transforms, unrolled
# Each is one row or column of a 2-D transform: z = B^T d, u = G g, y = A^T v. The input and
# output ones take their constants typed like the data (k2, k4, k5, k8), so float32 data stays in
# float32 arithmetic (a Python literal would promote it to float64 and halve the SIMD width).


@numba.njit(inline="always")
def _bt4(d0, d1, d2, d3, d4, d5, k2, k4, k5):
    return (
        k4 * d0 - k5 * d2 + d4,
        d3 + d4 - k4 * (d1 + d2),
        k4 * (d1 - d2) - d3 + d4,
        k2 * (d3 - d1) - d2 + d4,
        k2 * (d1 - d3) - d2 + d4,
        k4 * d1 - k5 * d3 + d5,
    )


@numba.njit(inline="always")
def _at4(v0, v1, v2, v3, v4, v5, k2, k4, k8):
    s12, d12 = v1 + v2, v1 - v2
    s34, d34 = v3 + v4, v3 - v4
    return v0 + s12 + s34, d12 + k2 * d34, s12 + k4 * s34, d12 + k8 * d34 + v5


@numba.njit(inline="always")
def _g4(g0, g1, g2):
    return (
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    )


@numba.njit(inline="always")
def _bt2(d0, d1, d2, d3):
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@numba.njit(inline="always")
def _at2(v0, v1, v2, v3):
    return v0 + v1 + v2, v1 - v2 - v3


@numba.njit(inline="always")
def _g2(g0, g1, g2):
    return g0, (g0 + g1 + g2) / 2.0, (g0 - g1 + g2) / 2.0, g2


# ------------------------------------------------------------------------ filter transform


@numba.njit(cache=True)
def _filter_one(g, m, z, dst, f, c):
    """dst[p, f, c] = (G g G^T)[p // a, p % a] for one 3x3 filter g, in float64; z (a, 3)."""
    a = m + 2
    for j in range(3):  # columns of G g
        g0, g1, g2 = float(g[0, j]), float(g[1, j]), float(g[2, j])
        r = _g4(g0, g1, g2) if m == 4 else _g2(g0, g1, g2) + (0.0, 0.0)  # noqa: RUF005 (Numba)
        for i in range(a):
            z[i, j] = r[i]
    for i in range(a):  # rows of (G g) G^T
        if m == 4:
            r = _g4(z[i, 0], z[i, 1], z[i, 2])
        else:
            r = _g2(z[i, 0], z[i, 1], z[i, 2]) + (0.0, 0.0)  # noqa: RUF005 (Numba)
        for j in range(a):
            dst[i * a + j, f, c] = r[j]


@numba.njit(cache=True)
def winograd_filter(w, m, u):
    """u (a*a, F, C) <- G w[f, c] G^T for w (F, C, 3, 3), a = m + 2 (overwrite)."""
    f_, c_ = w.shape[0], w.shape[1]
    z = np.empty((m + 2, 3), np.float64)
    for f in range(f_):
        for c in range(c_):
            _filter_one(w[f, c], m, z, u, f, c)


@numba.njit(cache=True)
def winograd_filter_transposed(w, m, u):
    """u (a*a, C, F) <- the filter transform of w'[c, f] = w[f, c, ::-1, ::-1] (backward-data)."""
    f_, c_ = w.shape[0], w.shape[1]
    z = np.empty((m + 2, 3), np.float64)
    g = np.empty((3, 3), np.float64)
    for f in range(f_):
        for c in range(c_):
            for i in range(3):
                for j in range(3):
                    g[i, j] = w[f, c, 2 - i, 2 - j]
            _filter_one(g, m, z, u, c, f)


def winograd_filter_reference(w, m, u):
    """Twin of :func:`winograd_filter`: U = G g G^T with the matrices, in float64."""
    _, g, _ = matrices(m)
    t = np.einsum("ai,fcij,bj->abfc", g, np.asarray(w, np.float64), g)
    u[...] = t.reshape(u.shape)


def winograd_filter_transposed_reference(w, m, u):
    """Twin of :func:`winograd_filter_transposed`."""
    winograd_filter_reference(np.asarray(w).transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], m, u)


# ------------------------------------------------------------------ input / output transforms
# Work goes by tile rows: row r of a batch is sample r // TH, tile row r % TH, and holds TW tiles
# (tile index t = r*TW + tx). The vertical half of each 2-D transform runs along whole image rows
# (contiguous, vectorised); the horizontal half runs across the TW tiles of the row, whose V / M
# entries are contiguous in t.


@numba.njit(cache=True)
def _input_rows(x, m, pt, pl, th, tw, r0, r1, v, rb, zb):
    """v (a*a, C, (r1-r0)*TW) <- B^T d B of every tile of tile rows [r0, r1) of x (N, C, H, W).
    rb, zb (a, TW*m + 2) scratch: the a input rows of a tile row (zero-padded), then their
    vertical transform."""
    a = m + 2
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    wz = rb.shape[1]
    k2, k4, k5 = rb.dtype.type(2), rb.dtype.type(4), rb.dtype.type(5)
    lo = min(pl, wz)
    hi = min(wz, w_ + pl)
    for c in range(c_):
        for r in range(r0, r1):
            n = r // th
            y0 = (r - n * th) * m - pt
            q0 = (r - r0) * tw
            src_c = x[n, c]
            for k in range(a):
                row = rb[k]
                yy = y0 + k
                if yy < 0 or yy >= h_:
                    for z in range(wz):
                        row[z] = 0
                    continue
                src = src_c[yy]
                for z in range(lo):
                    row[z] = 0
                for z in range(lo, hi):
                    row[z] = src[z - pl]
                for z in range(hi, wz):
                    row[z] = 0
            if m == 4:
                for z in range(wz):  # vertical: zb = B^T rb, column by column (vectorised)
                    e = _bt4(rb[0, z], rb[1, z], rb[2, z], rb[3, z], rb[4, z], rb[5, z], k2, k4, k5)
                    zb[0, z], zb[1, z], zb[2, z] = e[0], e[1], e[2]
                    zb[3, z], zb[4, z], zb[5, z] = e[3], e[4], e[5]
                for i in range(6):  # horizontal, tile by tile
                    zr = zb[i]
                    v0, v1, v2 = v[i * 6, c], v[i * 6 + 1, c], v[i * 6 + 2, c]
                    v3, v4, v5 = v[i * 6 + 3, c], v[i * 6 + 4, c], v[i * 6 + 5, c]
                    for tx in range(tw):
                        o = tx * 4
                        e = _bt4(zr[o], zr[o + 1], zr[o + 2], zr[o + 3], zr[o + 4], zr[o + 5],
                                 k2, k4, k5)  # fmt: skip
                        q = q0 + tx
                        v0[q], v1[q], v2[q], v3[q], v4[q], v5[q] = e
            else:
                for z in range(wz):
                    e2 = _bt2(rb[0, z], rb[1, z], rb[2, z], rb[3, z])
                    zb[0, z], zb[1, z], zb[2, z], zb[3, z] = e2
                for i in range(4):
                    zr = zb[i]
                    v0, v1, v2, v3 = v[i * 4, c], v[i * 4 + 1, c], v[i * 4 + 2, c], v[i * 4 + 3, c]
                    for tx in range(tw):
                        o = tx * 2
                        e2 = _bt2(zr[o], zr[o + 1], zr[o + 2], zr[o + 3])
                        q = q0 + tx
                        v0[q], v1[q], v2[q], v3[q] = e2


@numba.njit(cache=True)
def _output_rows(mm, scale, shift, m, th, tw, r0, r1, out, zo):
    """out[n, f, rows of tile row r] = (A^T M A) * scale[f] + shift[f] for tile rows [r0, r1)
    (pixels past OH / OW dropped); mm (a*a, F, (r1-r0)*TW); zo (a, TW*m) scratch."""
    f_, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    k2, k4, k8 = zo.dtype.type(2), zo.dtype.type(4), zo.dtype.type(8)
    for f in range(f_):
        s = out.dtype.type(scale[f])
        b = out.dtype.type(shift[f])
        for r in range(r0, r1):
            n = r // th
            y0 = (r - n * th) * m
            q0 = (r - r0) * tw
            rows = min(m, oh - y0)
            dst = out[n, f]
            if m == 4:
                for i in range(6):  # horizontal: zo[i, 4*tx + j] = (M A)[i, j] of tile tx
                    p0, p1, p2 = mm[i * 6, f], mm[i * 6 + 1, f], mm[i * 6 + 2, f]
                    p3, p4, p5 = mm[i * 6 + 3, f], mm[i * 6 + 4, f], mm[i * 6 + 5, f]
                    zr = zo[i]
                    for tx in range(tw):
                        q = q0 + tx
                        e = _at4(p0[q], p1[q], p2[q], p3[q], p4[q], p5[q], k2, k4, k8)
                        o = tx * 4
                        zr[o], zr[o + 1], zr[o + 2], zr[o + 3] = e
                if rows == 4:  # vertical along the output rows (vectorised)
                    d0, d1, d2, d3 = dst[y0], dst[y0 + 1], dst[y0 + 2], dst[y0 + 3]
                    for z in range(ow):
                        e4 = _at4(zo[0, z], zo[1, z], zo[2, z], zo[3, z], zo[4, z], zo[5, z],
                                  k2, k4, k8)  # fmt: skip
                        d0[z] = e4[0] * s + b
                        d1[z] = e4[1] * s + b
                        d2[z] = e4[2] * s + b
                        d3[z] = e4[3] * s + b
                else:
                    for z in range(ow):
                        e4 = _at4(zo[0, z], zo[1, z], zo[2, z], zo[3, z], zo[4, z], zo[5, z],
                                  k2, k4, k8)  # fmt: skip
                        for i in range(rows):
                            dst[y0 + i, z] = e4[i] * s + b
            else:
                for i in range(4):
                    p0, p1 = mm[i * 4, f], mm[i * 4 + 1, f]
                    p2, p3 = mm[i * 4 + 2, f], mm[i * 4 + 3, f]
                    zr = zo[i]
                    for tx in range(tw):
                        q = q0 + tx
                        e2 = _at2(p0[q], p1[q], p2[q], p3[q])
                        zr[tx * 2], zr[tx * 2 + 1] = e2
                if rows == 2:
                    d0, d1 = dst[y0], dst[y0 + 1]
                    for z in range(ow):
                        e2 = _at2(zo[0, z], zo[1, z], zo[2, z], zo[3, z])
                        d0[z] = e2[0] * s + b
                        d1[z] = e2[1] * s + b
                else:
                    d0 = dst[y0]
                    for z in range(ow):
                        d0[z] = (zo[0, z] + zo[1, z] + zo[2, z]) * s + b


@numba.njit(cache=True)
def conv_blocks(x, u, scale, shift, m, pt, pl, r0, r1, block, out, vbuf, mbuf, fptr):
    """Tile rows [r0, r1) of the convolution on the calling thread, ``block`` tile rows per batch
    of a*a GEMMs: out = conv(x, w) * scale + shift per output channel (scale 1, shift b: a plain
    conv with bias). vbuf / mbuf: flat scratch of at least a*a*C*block*TW / a*a*F*block*TW
    elements (TW = ceil(OW / m))."""
    a = m + 2
    f_, c_ = u.shape[1], u.shape[2]
    oh, ow = out.shape[2], out.shape[3]
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    rb = np.empty((a, tw * m + 2), x.dtype)
    zb = np.empty((a, tw * m + 2), x.dtype)
    for b0 in range(r0, r1, block):
        b1 = min(b0 + block, r1)
        nt = (b1 - b0) * tw
        v = vbuf[: a * a * c_ * nt].reshape(a * a, c_, nt)
        mm = mbuf[: a * a * f_ * nt].reshape(a * a, f_, nt)
        _input_rows(x, m, pt, pl, th, tw, b0, b1, v, rb, zb)
        for p in range(a * a):
            gemm(fptr, u[p], v[p], mm[p])
        _output_rows(mm, scale, shift, m, th, tw, b0, b1, out, zb)


@numba.njit(parallel=True, cache=True)
def winograd_forward(x, u, b, m, pt, pl, block, threads, out, fptr=0):
    """out (N, F, OH, OW) = conv(x (N, C, H, W), w (F, C, 3, 3)) + b (F,), stride 1, dilation 1,
    padding top/left (pt, pl) >= 0 (bottom/right implied by OH, OW: OH = H + pt + pb - 2),
    computed as F(m x m, 3 x 3) Winograd from u = :func:`winograd_filter` (w, m), (a*a, F, C).

    The N*TH tile rows are split over ``threads`` tasks in contiguous ranges (pass
    ``numba.get_num_threads()``; read inside, it would keep the kernel out of the disk cache);
    each task runs its GEMMs
    over ``block`` tile rows (block*TW tiles) at a time. A single range runs on the calling
    thread (no pool wake-up). ``fptr``: the float32 GEMM of :func:`core.kernels.blas.gemm`
    (0: ``np.dot``)."""
    a = m + 2
    n_ = x.shape[0]
    f_, c_ = u.shape[1], u.shape[2]
    oh, ow = out.shape[2], out.shape[3]
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    total = n_ * th
    scale = np.ones(f_, x.dtype)
    nblocks = (total + block - 1) // block
    chunks = min(threads, nblocks)
    size = min(block, total) * tw
    if chunks <= 1:
        vbuf = np.empty(a * a * c_ * size, x.dtype)
        mbuf = np.empty(a * a * f_ * size, x.dtype)
        conv_blocks(x, u, scale, b, m, pt, pl, 0, total, block, out, vbuf, mbuf, fptr)
        return
    for k in numba.prange(chunks):
        # whole blocks per thread, balanced; one scratch allocation per thread
        r0 = min(total, (k * nblocks // chunks) * block)
        r1 = min(total, ((k + 1) * nblocks // chunks) * block)
        vbuf = np.empty(a * a * c_ * size, x.dtype)
        mbuf = np.empty(a * a * f_ * size, x.dtype)
        conv_blocks(x, u, scale, b, m, pt, pl, r0, r1, block, out, vbuf, mbuf, fptr)


def winograd_forward_reference(x, u, b, m, pt, pl, block, threads, out, fptr=0):
    """Twin of :func:`winograd_forward`: the textbook algorithm, tile by tile, in float64 with the
    matrices of :func:`matrices` (``block``, ``threads`` and ``fptr`` ignored)."""
    bt, _, at = matrices(m)
    a = m + 2
    n_, c_, h_, w_ = x.shape
    f_ = u.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    th, tw = tiles(oh, ow, m)
    # zero-pad so every tile's a x a patch exists: rows -pt .. th*m + 2 - pt
    xp = np.zeros((n_, c_, th * m + 2, tw * m + 2))
    ys, xs = slice(pt, min(pt + h_, th * m + 2)), slice(pl, min(pl + w_, tw * m + 2))
    xp[:, :, ys, xs] = np.asarray(x, np.float64)[:, :, : ys.stop - pt, : xs.stop - pl]
    uu = np.asarray(u, np.float64).reshape(a, a, f_, c_)
    y = np.zeros((n_, f_, th * m, tw * m))
    for n in range(n_):
        for ty in range(th):
            for tx in range(tw):
                d = xp[n, :, ty * m : ty * m + a, tx * m : tx * m + a]  # (C, a, a)
                v = np.einsum("ai,cij,bj->abc", bt, d, bt)  # B^T d B per channel
                mm = np.einsum("abfc,abc->fab", uu, v)  # sum over channels
                y[n, :, ty * m : (ty + 1) * m, tx * m : (tx + 1) * m] = np.einsum(
                    "ia,fab,jb->fij", at, mm, at
                )
    out[...] = y[:, :, :oh, :ow] + np.asarray(b, np.float64).reshape(1, f_, 1, 1)
