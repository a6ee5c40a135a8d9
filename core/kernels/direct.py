"""Blocked direct convolution for small batches: no im2col copy, accumulators held in registers.

The inference plan's small-work path (batch 1, or any batch when measured faster than im2col +
GEMM). Weights are packed ONCE when the plan is built into a channel-blocked layout

    wp[fb, r, k] = w[fb*LANES + k, r]      r = (c*KH + i)*KW + j,  k < LANES (zero-padded)

(the ``NCHWc`` weight layout with c = LANES = 8 output channels: one AVX2 float32 vector; the
EPYC here also has AVX-512, whose 512-bit FMAs Zen 4 runs as two 256-bit halves, and 8 lanes
keep LeNet's 6-filter conv cheap). The input is the stride-1 zero-padded grid of
:func:`core.kernels.infer._conv_pad`: channel planes of ``plane`` elements, rows of
``Wg = OW + dw*(KW-1)``, so the output pixel (oy, ox) of tap (i, j) reads
``xp[base + c*plane + (oy + i*dh)*Wg + ox + j*dw]``.

The micro-kernel (:func:`_tile_fma`, LLVM IR) computes a TILE x LANES block (TILE output pixels
of one row, LANES filters) in TILE vector accumulators held in registers: per tap it loads one
weight vector and does TILE broadcast-FMAs (input values read straight from the padded planes),
so there are TILE FMAs per TILE + 1 loads instead of the accumulate-in-memory loop's ~2.5 memory
operations per FMA. The summation order over taps is fixed (FMA per tap, no reassociation).
float32 only (the builder keeps float64 models on the other paths).

Shapes: wp (FB * K * LANES,) with K = C/groups * KH * KW; out (LANES * OH * OWp,) with
OWp = OW rounded up to TILE (columns >= OW are junk, never read by the callers).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

LANES = 8  # output channels per block (one 256-bit float32 vector)
TILE = 8  # output pixels per register block (8 vector accumulators)
PTILE = 4  # output pixels per row of a pooled block (2 rows x PTILE: 8 vector accumulators)


@intrinsic
def _tile_fma(typingctx, xp, o0, taps, wp, w0, acc):
    """acc (TILE*LANES,) = for t < TILE: sum over r of xp[o0 + taps[r] + t] * wp[w0 + r*LANES :
    ... + LANES], float32, as TILE explicit <LANES x float> accumulators kept in registers.

    Written in LLVM IR because Numba does not run LLVM's SLP vectoriser and fully unrolls the
    constant-trip lane loop before its loop vectoriser sees it: the same loops in Python compile
    to 64 scalar FMAs with spills (measured ~3 GFLOP/s)."""
    if not all(a.dtype == types.float32 for a in (xp, wp, acc)):
        return None
    sig = types.void(xp, o0, taps, wp, w0, acc)

    def codegen(context, builder, signature, args):
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        arrays = {
            i: context.make_array(signature.args[i])(context, builder, args[i])
            for i in (0, 2, 3, 5)
        }
        xptr, tptr, wptr, aptr = (arrays[i].data for i in (0, 2, 3, 5))
        o0v, w0v = args[1], args[4]
        ntaps = arrays[2].nitems
        fnty = ir.FunctionType(vec, [vec, vec, vec])
        fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{LANES}f32")
        zero = ir.Constant(vec, [0.0] * LANES)
        accs = [cgutils.alloca_once(builder, vec) for _ in range(TILE)]
        for a in accs:
            builder.store(zero, a)
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        undef = ir.Constant(vec, ir.Undefined)
        with cgutils.for_range(builder, ntaps) as loop:
            r = loop.index
            base = builder.add(o0v, builder.load(builder.gep(tptr, [r])))
            woff = builder.add(w0v, builder.mul(r, ir.Constant(i64, LANES)))
            wv = builder.load(builder.bitcast(builder.gep(wptr, [woff]), vec.as_pointer()), align=4)
            for t in range(TILE):
                xv = builder.load(builder.gep(xptr, [builder.add(base, ir.Constant(i64, t))]))
                b = builder.insert_element(undef, xv, ir.Constant(i32, 0))
                b = builder.shuffle_vector(b, undef, splat)
                builder.store(builder.call(fma, [b, wv, builder.load(accs[t])]), accs[t])
        for t in range(TILE):
            dst = builder.bitcast(
                builder.gep(aptr, [ir.Constant(i64, t * LANES)]), vec.as_pointer()
            )
            builder.store(builder.load(accs[t]), dst, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _tile(xp, o0, taps, wp, w0, acc):
    raise NotImplementedError


@overload(_tile)
def _tile_overload(xp, o0, taps, wp, w0, acc):
    """float32: the IR micro-kernel; other dtypes (float64 plans compile this path too, though
    the builder never sends them here): the same sums as plain loops."""
    if all(a.dtype == types.float32 for a in (xp, wp, acc)):
        return lambda xp, o0, taps, wp, w0, acc: _tile_fma(xp, o0, taps, wp, w0, acc)  # type: ignore[call-arg]

    def loops(xp, o0, taps, wp, w0, acc):
        acc[:] = 0
        for r in range(taps.shape[0]):
            for t in range(TILE):
                v = xp[o0 + taps[r] + t]
                for k in range(LANES):
                    acc[t * LANES + k] += v * wp[w0 + r * LANES + k]

    return loops


@intrinsic
def _tile_pool_fma(typingctx, xp, o0, rs, taps, wp, w0, sc, sh, acc):
    """acc (PTILE/2 * LANES,): for q < PTILE/2, the 2x2 max over rows o0, o0 + rs and pixels
    2q, 2q + 1 of (sum over r of xp[row + taps[r] + t] * wp[w0 + r*LANES : ... + LANES]) * sc
    + sh (sc, sh: LANES values), float32. The 2 x PTILE conv outputs are PTILE*2 = 8 vector
    accumulators held in registers (AVX2 has 16: the weight vector and the broadcasts need the
    rest); the affine and the pool run on them before anything is stored, so a pooled conv
    writes a quarter of its outputs, once. Max as ``u > v ? u : v`` in the pool's order
    (core.kernels.infer._pool_plane); the affine as a multiply then an add, as the output step."""
    if not all(a.dtype == types.float32 for a in (xp, wp, sc, sh, acc)):
        return None
    sig = types.void(xp, o0, rs, taps, wp, w0, sc, sh, acc)

    def codegen(context, builder, signature, args):
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        arrays = {
            i: context.make_array(signature.args[i])(context, builder, args[i])
            for i in (0, 3, 4, 6, 7, 8)
        }
        xptr, tptr, wptr = arrays[0].data, arrays[3].data, arrays[4].data
        sptr, hptr, aptr = arrays[6].data, arrays[7].data, arrays[8].data
        o0v, rsv, w0v = args[1], args[2], args[5]
        ntaps = arrays[3].nitems
        fnty = ir.FunctionType(vec, [vec, vec, vec])
        fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{LANES}f32")
        zero = ir.Constant(vec, [0.0] * LANES)
        accs = [cgutils.alloca_once(builder, vec) for _ in range(2 * PTILE)]
        for a in accs:
            builder.store(zero, a)
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        undef = ir.Constant(vec, ir.Undefined)
        with cgutils.for_range(builder, ntaps) as loop:
            r = loop.index
            base = builder.add(o0v, builder.load(builder.gep(tptr, [r])))
            woff = builder.add(w0v, builder.mul(r, ir.Constant(i64, LANES)))
            wv = builder.load(builder.bitcast(builder.gep(wptr, [woff]), vec.as_pointer()), align=4)
            for row in range(2):
                rbase = builder.add(base, rsv) if row else base
                for t in range(PTILE):
                    xv = builder.load(builder.gep(xptr, [builder.add(rbase, ir.Constant(i64, t))]))
                    b = builder.insert_element(undef, xv, ir.Constant(i32, 0))
                    b = builder.shuffle_vector(b, undef, splat)
                    a = accs[row * PTILE + t]
                    builder.store(builder.call(fma, [b, wv, builder.load(a)]), a)
        scv = builder.load(builder.bitcast(sptr, vec.as_pointer()), align=4)
        shv = builder.load(builder.bitcast(hptr, vec.as_pointer()), align=4)
        vals = [builder.fadd(builder.fmul(builder.load(a), scv), shv) for a in accs]
        for q in range(PTILE // 2):
            best = vals[2 * q]
            for u in (vals[2 * q + 1], vals[PTILE + 2 * q], vals[PTILE + 2 * q + 1]):
                best = builder.select(builder.fcmp_ordered(">", u, best), u, best)
            dst = builder.bitcast(
                builder.gep(aptr, [ir.Constant(i64, q * LANES)]), vec.as_pointer()
            )
            builder.store(best, dst, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _tile_pool(xp, o0, rs, taps, wp, w0, sc, sh, acc):
    raise NotImplementedError


@overload(_tile_pool)
def _tile_pool_overload(xp, o0, rs, taps, wp, w0, sc, sh, acc):
    """float32: the IR micro-kernel; other dtypes: the same values as plain loops."""
    if all(a.dtype == types.float32 for a in (xp, wp, sc, sh, acc)):
        return lambda xp, o0, rs, taps, wp, w0, sc, sh, acc: _tile_pool_fma(  # type: ignore[call-arg]
            xp, o0, rs, taps, wp, w0, sc, sh, acc
        )

    def loops(xp, o0, rs, taps, wp, w0, sc, sh, acc):
        vals = np.zeros((2, PTILE, LANES), acc.dtype)
        for r in range(taps.shape[0]):
            for row in range(2):
                for t in range(PTILE):
                    v = xp[o0 + row * rs + taps[r] + t]
                    for k in range(LANES):
                        vals[row, t, k] += v * wp[w0 + r * LANES + k]
        for q in range(PTILE // 2):
            for k in range(LANES):
                best = vals[0, 2 * q, k] * sc[k] + sh[k]
                for row, t in ((0, 2 * q + 1), (1, 2 * q), (1, 2 * q + 1)):
                    u = vals[row, t, k] * sc[k] + sh[k]
                    if u > best:
                        best = u
                acc[q * LANES + k] = best

    return loops


def packed_size(filters: int, groups: int, k: int) -> int:
    """Elements of the packed weights of ``filters`` filters in ``groups`` groups, ``k`` taps
    each (every group's filters padded to a multiple of LANES)."""
    return groups * -(-(filters // groups) // LANES) * k * LANES


def pack_weights(w: np.ndarray, groups: int, out: np.ndarray) -> None:
    """w (F, K) -> out (groups * FBg * K * LANES,): group g's filters in blocks
    wp[g*FBg + fb, r, k] = w[g*F/groups + fb*LANES + k, r]; missing filters are 0."""
    f_, k_ = w.shape
    fg = f_ // groups
    fbg = -(-fg // LANES)
    full = np.zeros((groups, fbg * LANES, k_), out.dtype)
    full[:, :fg] = w.reshape(groups, fg, k_)
    out[:] = full.reshape(groups * fbg, LANES, k_).transpose(0, 2, 1).reshape(-1)


@numba.njit(cache=True)
def conv_block(xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, oh, ow, out):
    """out[k, oy, ox] = sum over (c, i, j) of wp[fb, (c*KH + i)*KW + j, k] times
    xp[base + c*plane + (oy + i*dh)*Wg + ox + j*dw], for k < LANES, oy < OH, ox < OWp.

    out is (LANES, OH, OWp) flat, OWp = ceil(OW / TILE) * TILE; xp must hold
    TILE - 1 readable elements past the last plane (the junk columns of the last tile)."""
    ktot = cg * kh * kw
    owp = -(-ow // TILE) * TILE
    taps = np.empty(ktot, np.int64)  # plane offset of each tap (c, i, j), in wp's tap order
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                taps[(c * kh + i) * kw + j] = c * plane + i * dh * wg + j * dw
    acc = np.empty(TILE * LANES, xp.dtype)
    w0 = fb * ktot * LANES
    for oy in range(oh):
        for ox0 in range(0, owp, TILE):
            _tile(xp, base + oy * wg + ox0, taps, wp, w0, acc)
            for k in range(LANES):
                dst = out[(k * oh + oy) * owp + ox0 : (k * oh + oy) * owp + ox0 + TILE]
                for t in range(TILE):
                    dst[t] = acc[t * LANES + k]


def conv_block_reference(xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, oh, ow, out):
    """Plain-loop twin of :func:`conv_block` (same signature, same junk-column contract)."""
    ktot = cg * kh * kw
    owp = -(-ow // TILE) * TILE
    w = np.asarray(wp, np.float64)[fb * ktot * LANES : (fb + 1) * ktot * LANES]
    w = w.reshape(cg, kh, kw, LANES)
    res = np.zeros((LANES, oh, owp))
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                for oy in range(oh):
                    s = base + c * plane + (oy + i * dh) * wg + j * dw
                    seg = np.asarray(xp[s : s + owp], np.float64)
                    res[:, oy, :] += w[c, i, j, :, None] * seg[None, :]
    out[: LANES * oh * owp] = res.reshape(-1)


@numba.njit(cache=True)
def pooled_width(pw):
    """Columns per row of :func:`conv_pool_block`'s output for PW pooled columns: PW rounded up
    to a whole number of register blocks (PTILE/2 pooled columns each)."""
    return -(-pw // (PTILE // 2)) * (PTILE // 2)


@numba.njit(cache=True)
def conv_pool_block(xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, poh, pw, scale, shift, out):
    """out[k, py, px] = max over the 2x2 window (rows 2py, 2py+1, columns 2px, 2px+1) of
    conv[k, oy, ox] * scale[k] + shift[k], conv as :func:`conv_block` computes it, for k <
    LANES, py < POH, px < PWp: a stride-2 2x2 max pool fused into the conv's registers
    (callers apply a monotone activation to the pooled values: the same as pooling after it).

    scale, shift: (LANES,) for this block; out (LANES, POH, PWp) flat, PWp = pooled_width(PW)
    (columns >= PW are junk); xp must hold PTILE - 1 readable elements past the last plane."""
    ktot = cg * kh * kw
    pwp = pooled_width(pw)
    taps = np.empty(ktot, np.int64)
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                taps[(c * kh + i) * kw + j] = c * plane + i * dh * wg + j * dw
    half = PTILE // 2
    acc = np.empty(half * LANES, xp.dtype)
    w0 = fb * ktot * LANES
    for py in range(poh):
        for px0 in range(0, pwp, half):
            _tile_pool(xp, base + 2 * py * wg + 2 * px0, wg, taps, wp, w0, scale, shift, acc)
            for k in range(LANES):
                d = (k * poh + py) * pwp + px0
                for q in range(half):
                    out[d + q] = acc[q * LANES + k]


def conv_pool_block_reference(
    xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, poh, pw, scale, shift, out
):
    """Plain-loop twin of :func:`conv_pool_block` (same signature, same junk-column contract):
    :func:`conv_block_reference`, the affine, then the pool over whole windows."""
    pwp = pooled_width(pw)
    oh, ow = 2 * poh, 2 * pwp
    full = np.empty(LANES * oh * -(-ow // TILE) * TILE, np.float64)
    # junk columns read past the planes: zeros here (their values are unspecified)
    xz = np.concatenate([np.asarray(xp, np.float64), np.zeros(wg + 2 * TILE)])
    conv_block_reference(xz, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, oh, ow, full)
    y = full.reshape(LANES, oh, -1)[:, :, :ow]
    y = y * np.asarray(scale, np.float64)[:, None, None] + np.asarray(shift)[:, None, None]
    pooled = y.reshape(LANES, poh, 2, pwp, 2).max(axis=(2, 4))
    out[: LANES * poh * pwp] = pooled.reshape(-1)
