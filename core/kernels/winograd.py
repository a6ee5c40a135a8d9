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
F(4x4)'s input transform (:func:`_input_rows4`) goes horizontal first, so each input row is
transformed once although vertically adjacent tiles share two of their six rows, and runs as
explicit SIMD vectors of 8 (or 4) adjacent tiles.

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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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


# ------------------------------------------------- 1-D transforms on SIMD vectors (LLVM IR)
# The F(4x4) input transform as explicit <W x dtype> vector code, W adjacent tiles at once (the
# same expressions as _bt4: its Python body runs on the IR values below; no fast-math, so the
# rounding is the scalar code's). Numba runs no SLP vectoriser, and its loop vectoriser left the
# per-tile loops scalar (six output streams it cannot prove disjoint, trip counts of 4-8 tiles).


class _Lanes:
    """An LLVM vector value with the arithmetic _bt4 uses (emits fadd / fsub / fmul)."""

    def __init__(self, builder: ir.IRBuilder, value: ir.Value) -> None:
        self.b, self.v = builder, value

    def __add__(self, o: _Lanes) -> _Lanes:
        return _Lanes(self.b, self.b.fadd(self.v, o.v))

    def __sub__(self, o: _Lanes) -> _Lanes:
        return _Lanes(self.b, self.b.fsub(self.v, o.v))

    def __mul__(self, o: _Lanes) -> _Lanes:
        return _Lanes(self.b, self.b.fmul(self.v, o.v))


def _vector_ops(context, builder, arr_type, width):
    """(vector type, load(ptr, offset), store(value, ptr, offset), splat(constant))."""
    elem = context.get_data_type(arr_type.dtype)
    vec = ir.VectorType(elem, width)
    align = arr_type.dtype.bitwidth // 8

    def at(ptr, off):
        return builder.bitcast(builder.gep(ptr, [off]), vec.as_pointer())

    def load(ptr, off):
        return _Lanes(builder, builder.load(at(ptr, off), align=align))

    def store(value, ptr, off):
        builder.store(value.v, at(ptr, off), align=align)

    def splat(k):
        return _Lanes(builder, ir.Constant(vec, [float(k)] * width))

    return vec, load, store, splat


def _strided_transform(fn, n_out, consts, width):
    """Intrinsic (src, s0, ss, dst, d0, ds): the vectors src[s0 + k*ss : ... + width] (k < 6)
    go through ``fn`` (a 1-D transform's Python body, its constants ``consts``); output i is
    stored at dst[d0 + i*ds : ... + width]."""

    @intrinsic
    def kernel(typingctx, src, s0, ss, dst, d0, ds):
        if src != dst or not isinstance(src, types.Array) or src.dtype not in types.real_domain:
            return None
        sig = types.void(src, types.int64, types.int64, dst, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            out = context.make_array(signature.args[3])(context, builder, args[3]).data
            _, load, store, splat = _vector_ops(context, builder, signature.args[0], width)
            s0v, ssv, d0v, dsv = args[1], args[2], args[4], args[5]
            ins = []
            off = s0v
            for _ in range(6):
                ins.append(load(data, off))
                off = builder.add(off, ssv)
            outs = fn(*ins, *(splat(k) for k in consts))
            off = d0v
            for i in range(n_out):
                store(outs[i], out, off)
                off = builder.add(off, dsv)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


def _row_transform(width):
    """Intrinsic (row, o, dst, d0, ds): the horizontal B^T of ``width`` adjacent F(4x4) tiles of
    one zero-padded input row: tile t reads row[o + 4t : o + 4t + 6]; output j of the tiles is
    stored at dst[d0 + j*ds : ... + width]. Two vector loads of 4*width elements (at o and o + 4;
    the caller pads the row), then the six stride-4 lane patterns are shuffled out of them in
    registers."""

    @intrinsic
    def kernel(typingctx, row, o, dst, d0, ds):
        if row != dst or not isinstance(row, types.Array) or row.dtype not in types.real_domain:
            return None
        sig = types.void(row, types.int64, dst, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            out = context.make_array(signature.args[2])(context, builder, args[2]).data
            _, _, store, splat = _vector_ops(context, builder, signature.args[0], width)
            wide_t = ir.VectorType(context.get_data_type(signature.args[0].dtype), 4 * width)
            align = signature.args[0].dtype.bitwidth // 8
            undef = ir.Constant(wide_t, ir.Undefined)
            i32 = ir.IntType(32)
            ins = []
            for shift in (0, 4):  # d0..d3 from row[o:], d4, d5 from row[o + 4:] (pow-2 loads)
                off = builder.add(args[1], ir.Constant(ir.IntType(64), shift))
                wide_p = builder.bitcast(builder.gep(data, [off]), wide_t.as_pointer())
                wide = builder.load(wide_p, align=align)
                for k in range(4 if shift == 0 else 2):
                    mask = ir.Constant(ir.VectorType(i32, width), [4 * t + k for t in range(width)])
                    ins.append(_Lanes(builder, builder.shuffle_vector(wide, undef, mask)))
            outs = _bt4.py_func(*ins, splat(2), splat(4), splat(5))  # type: ignore[call-arg]
            off = args[3]
            for j in range(6):
                store(outs[j], out, off)
                off = builder.add(off, args[4])
            return context.get_dummy_value()

        return sig, codegen

    return kernel


def _row_inverse(width):
    """Intrinsic (mm, s0, ss, zo, d0): the horizontal A^T of ``width`` adjacent F(4x4) tiles:
    the vectors mm[s0 + j*ss : ... + width] (j < 6, one entry per tile) go through _at4, and
    its four outputs are interleaved (tile t's four values at zo[d0 + 4t : d0 + 4t + 4]) into
    one store of 4*width elements."""

    @intrinsic
    def kernel(typingctx, mm, s0, ss, zo, d0):
        if mm != zo or not isinstance(mm, types.Array) or mm.dtype not in types.real_domain:
            return None
        sig = types.void(mm, types.int64, types.int64, zo, types.int64)

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            out = context.make_array(signature.args[3])(context, builder, args[3]).data
            _, load, _, splat = _vector_ops(context, builder, signature.args[0], width)
            ins = []
            off = args[1]
            for _ in range(6):
                ins.append(load(data, off))
                off = builder.add(off, args[2])
            outs = _at4.py_func(*ins, splat(2), splat(4), splat(8))  # type: ignore[call-arg]
            cols = [o.v for o in outs]
            i32 = ir.IntType(32)
            both = ir.Constant(ir.VectorType(i32, 2 * width), list(range(2 * width)))
            lo = builder.shuffle_vector(cols[0], cols[1], both)
            hi = builder.shuffle_vector(cols[2], cols[3], both)
            order = [k * width + t for t in range(width) for k in range(4)]
            tiles = builder.shuffle_vector(
                lo, hi, ir.Constant(ir.VectorType(i32, 4 * width), order)
            )
            wide_t = ir.VectorType(context.get_data_type(signature.args[0].dtype), 4 * width)
            dst = builder.bitcast(builder.gep(out, [args[4]]), wide_t.as_pointer())
            builder.store(tiles, dst, align=signature.args[0].dtype.bitwidth // 8)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


_bt4_cols8 = _strided_transform(_bt4.py_func, 6, (2, 4, 5), 8)
_bt4_cols4 = _strided_transform(_bt4.py_func, 6, (2, 4, 5), 4)
_bt4_row8 = _row_transform(8)
_bt4_row4 = _row_transform(4)
_at4_row8 = _row_inverse(8)
_at4_row4 = _row_inverse(4)


@numba.njit(cache=True)
def vector_width(tw: int) -> int:
    """Tiles per vector of the F(4x4) input transform: 8, or 4 for rows of fewer than 8 tiles."""
    return 8 if tw >= 8 else 4


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
    """F(2x2) (m = 2; F(4x4): :func:`_input_rows4`): v (a*a, C, (r1-r0)*TW) <- B^T d B of every
    tile of tile rows [r0, r1) of x (N, C, H, W).
    rb, zb (a, TW*m + 2) scratch: the a input rows of a tile row (zero-padded), then their
    vertical transform."""
    a = m + 2
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    wz = rb.shape[1]
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
    nt = (r1 - r0) * tw
    mf = mm.reshape(-1)
    zf = zo.reshape(-1)
    zw = zo.shape[1]
    width = 8 if tw >= 8 else 4
    full = tw - tw % width
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
                    # whole vectors of tiles (SIMD), then the rest of the row one by one
                    s0 = (i * 6 * f_ + f) * nt + q0
                    for t0 in range(0, full, width):
                        if width == 8:
                            _at4_row8(mf, s0 + t0, f_ * nt, zf, i * zw + 4 * t0)
                        else:
                            _at4_row4(mf, s0 + t0, f_ * nt, zf, i * zw + 4 * t0)
                    for tx in range(full, tw):
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
def _input_rows4(x, pt, pl, th, tw, r0, r1, v, prow, hb):
    """F(4x4) input transform, vectorised: v (36, C, (r1-r0)*TW) <- B^T d B of every tile of tile
    rows [r0, r1) of x (N, C, H, W). Horizontal first: each input row of a run of tile rows of
    one sample is transformed once (W tiles per vector from the zero-padded row ``prow``,
    4*ceil(TW/W)*W + 8 elements, zero outside the copied pixels) into hb (6, rows*TWp) (TWp =
    TW rounded up to W), so the two rows that vertically adjacent tiles share are not redone;
    then the vertical B^T of each tile row reads six of those rows (W tiles per vector; the
    last TW % W tiles of a row one by one, so nothing is written past the row)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    nt = (r1 - r0) * tw
    ct = c_ * nt
    vf = v.reshape(-1)
    width = 8 if tw >= 8 else 4
    twp = -(-tw // width) * width
    hl = hb.shape[0] // 6
    k2, k4, k5 = hb.dtype.type(2), hb.dtype.type(4), hb.dtype.type(5)
    lo = pl
    hi = min(prow.shape[0], w_ + pl)
    full = tw - tw % width
    r = r0
    while r < r1:
        n = r // th
        rend = min(r1, (n + 1) * th)
        ya = (r - n * th) * 4 - pt
        rows = 4 * (rend - r) + 2
        for c in range(c_):
            src_c = x[n, c]
            for ry in range(rows):
                y = ya + ry
                if y < 0 or y >= h_:
                    for j in range(6):
                        o = j * hl + ry * twp
                        for t in range(twp):
                            hb[o + t] = 0
                    continue
                src = src_c[y]
                for z in range(lo, hi):
                    prow[z] = src[z - lo]
                for t0 in range(0, twp, width):
                    if width == 8:
                        _bt4_row8(prow, 4 * t0, hb, ry * twp + t0, hl)
                    else:
                        _bt4_row4(prow, 4 * t0, hb, ry * twp + t0, hl)
            for rr in range(rend - r):
                q0 = (r - r0 + rr) * tw
                for j in range(6):
                    sb = j * hl + 4 * rr * twp
                    db = j * ct + c * nt + q0
                    for t0 in range(0, full, width):
                        if width == 8:
                            _bt4_cols8(hb, sb + t0, twp, vf, db + t0, 6 * ct)
                        else:
                            _bt4_cols4(hb, sb + t0, twp, vf, db + t0, 6 * ct)
                    for tx in range(full, tw):
                        s = sb + tx
                        e = _bt4(hb[s], hb[s + twp], hb[s + 2 * twp], hb[s + 3 * twp],
                                 hb[s + 4 * twp], hb[s + 5 * twp], k2, k4, k5)  # fmt: skip
                        for i in range(6):
                            vf[db + tx + i * 6 * ct] = e[i]
        r = rend


@numba.njit(cache=True)
def input_scratch(x, m, tw, block):
    """(rb, zb, prow, hb): the scratch of :func:`input_transform` for batches of ``block`` tile
    rows of ``tw`` tiles (zb also serves :func:`_output_rows`)."""
    a = m + 2
    rb = np.empty((a, tw * m + 2), x.dtype)
    zb = np.empty((a, tw * m + 2), x.dtype)
    width = vector_width(tw)
    twp = -(-tw // width) * width
    prow = np.zeros(4 * twp + 8, x.dtype)
    hb = np.empty(6 * (4 * block + 2) * twp if m == 4 else 0, x.dtype)
    return rb, zb, prow, hb


@numba.njit(cache=True)
def input_transform(x, m, pt, pl, th, tw, r0, r1, v, rb, zb, prow, hb):
    """v <- B^T d B of every tile of tile rows [r0, r1): F(4x4) by the vectorised,
    horizontal-first :func:`_input_rows4`, F(2x2) by :func:`_input_rows`."""
    if m == 4:
        _input_rows4(x, pt, pl, th, tw, r0, r1, v, prow, hb)
    else:
        _input_rows(x, m, pt, pl, th, tw, r0, r1, v, rb, zb)


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
    rb, zb, prow, hb = input_scratch(x, m, tw, block)
    for b0 in range(r0, r1, block):
        b1 = min(b0 + block, r1)
        nt = (b1 - b0) * tw
        v = vbuf[: a * a * c_ * nt].reshape(a * a, c_, nt)
        mm = mbuf[: a * a * f_ * nt].reshape(a * a, f_, nt)
        input_transform(x, m, pt, pl, th, tw, b0, b1, v, rb, zb, prow, hb)
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
