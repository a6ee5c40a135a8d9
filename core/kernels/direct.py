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
