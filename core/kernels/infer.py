"""Whole-network inference kernel: ONE compiled call runs a compiled layer program over a batch.

A program (built by :mod:`core.inference` from each layer's ``plan_step``) is an int64 table, one
row per fused op, plus a typed list of weight arrays (views of the model's own parameters, so
in-place weight updates are seen). Ops read one per-sample activation buffer and write the other
(ping-pong) inside per-task scratch:

- ``OP_CONV``: grouped/strided/dilated/padded conv as im2col + BLAS GEMM, with the bias, an
  optional BatchNorm (eval: ``y = (conv + b) * s + t``, s = gamma / sqrt(var + eps),
  t = beta - mean * s, computed per call from the live running stats) and an activation fused
  into the copy-out. Stride 1 uses the shifted-plane lowering of :mod:`core.kernels.conv`.
- ``OP_DENSE``: (B, I) @ (I, O) + b, then the activation; one GEMM per chunk of samples.
- ``OP_MAXPOOL`` / ``OP_AVGPOOL`` / ``OP_GAP``: as :mod:`core.kernels.pool` (max ignores padding,
  average divides by the in-input pixel count; an empty window gives 0).
- ``OP_AFFINE``: a per-channel affine (a BatchNorm, or a layer's ``channel_affine``: the same op
  with mean 0, var 1, eps 0) that follows no conv + activation, in place.
- ``OP_ACT``: a stand-alone activation, in place. Identity steps (flatten, dropout) add no op.

The batch is split into T tasks (T = scratch rows), each running the whole network over its
samples in chunks of ``chunk`` samples (so dense layers are GEMMs and the activations stay in
cache). One task runs on the calling thread (no thread-pool wake-up): batch-1 latency is one
dispatch. The last op's (chunk, K) output goes to ``out`` as logits or as a float64-computed
softmax.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from core.kernels import direct
from core.kernels.blas import gemm
from core.kernels.conv import _im2col_sample
from core.kernels.winograd import conv_blocks, winograd_filter

# op codes
OP_CONV = 0
OP_DENSE = 1
OP_MAXPOOL = 2
OP_AVGPOOL = 3
OP_GAP = 4
OP_AFFINE = 5
OP_ACT = 6

# activation codes
ACT_NONE = 0
ACT_RELU = 1
ACT_LEAKY = 2
ACT_SIGMOID = 3
ACT_TANH = 4

# program row fields
F_OP = 0
F_ACT = 1
F_IN = 2  # per-sample input elements
F_OUT = 3  # per-sample output elements
F_C = 4
F_H = 5
F_W = 6
F_F = 7
F_OH = 8
F_OW = 9
F_G = 10  # groups
F_KH = 11
F_KW = 12
F_SH = 13
F_SW = 14
F_PT = 15
F_PL = 16
F_DH = 17
F_DW = 18
F_WI = 19  # weight index in the array list (-1: none)
F_BI = 20  # bias index (-1: none)
F_BN = 21  # BatchNorm gamma index; beta, mean, var follow (-1: none)
F_SB = 22  # conv: samples per GEMM
F_ROWS = 23  # conv: output rows per GEMM band
F_WG = 24  # conv: grid width (OW + dw*(KW-1) for stride 1, else OW)
F_PLANE = 25  # conv stride 1: padded plane length per channel (0 otherwise)
F_DIRECT = 26  # conv stride 1: 1 = direct accumulation over shifted planes (no im2col/GEMM)
F_COMPACT = 27  # conv stride 1: 1 = lower only the OW valid columns of each grid row (narrow maps)
# --- small-work path (core.kernels.direct) and fused pooling ---
F_PACK = 28  # conv stride 1: index of the channel-blocked packed weights (-1: not blocked);
# the array after them is a copy of the weights they were packed from
F_POOL = 29  # conv: pooling fused into the output step: POOL_NONE / POOL_MAX / POOL_AVG
F_PKH = 30  # fused pool window, stride, top/left padding and output size
F_PKW = 31
F_PSH = 32
F_PSW = 33
F_PPT = 34
F_PPL = 35
F_POH = 36
F_POW = 37
F_GEMM1 = 38  # conv 1x1, stride 1, unpadded: 1 = the input planes are the GEMM operand (no copy)

# fused pooling kinds (F_POOL)
POOL_NONE = 0
POOL_MAX = 1
POOL_AVG = 2
# Winograd (core.kernels.winograd, chosen by core.conv_algorithms): the plan's array list holds
# the packed filter transform U (a*a, F, C) at F_WU and the weights it was made from at F_WU + 1
F_WINO = 39  # conv: Winograd output tile size m (2 or 4); 0 = im2col / direct
F_WU = 40  # conv, Winograd: index of U in the array list
F_WB = 41  # conv, Winograd: tile rows per batch of GEMMs
NFIELDS = 42

# layout fields (offsets into a scratch row)
L_A = 0
L_B = 1
L_COLS = 2
L_RES = 3
L_XP = 4
L_CHUNK = 5
L_ACT = 6  # elements per buffer A / B
L_MINTASK = 7  # fewest samples worth a parallel task (waking a pool thread costs ~10-20 us)
L_SPLIT = 8  # a single sample's blocked convs of at least this many MACs use every thread (0: off)
L_DENSE_SPLIT = 9  # a single sample's dense layers of at least this many MACs use every thread
NLAYOUT = 10


@numba.njit(cache=True)
def _activate(v, act, alpha):
    """Activation over a flat 1-D array, in place."""
    if act == ACT_RELU:
        for i in range(v.shape[0]):
            if not v[i] > 0:
                v[i] = 0
    elif act == ACT_LEAKY:
        a = v.dtype.type(alpha)
        for i in range(v.shape[0]):
            if not v[i] > 0:
                v[i] = v[i] * a
    elif act == ACT_SIGMOID:
        for i in range(v.shape[0]):
            e = v[i]
            if e >= 0:
                v[i] = 1 / (1 + math.exp(-e))
            else:
                z = math.exp(e)
                v[i] = z / (1 + z)
    elif act == ACT_TANH:
        for i in range(v.shape[0]):
            v[i] = math.tanh(v[i])


@numba.njit(cache=True)
def _channel_affine(arrays, p, eps, f_, dtype_one):
    """Per-output-channel (scale, shift) of y = (z + bias) * scale + shift for op row p."""
    scale = np.empty(f_, dtype_one.dtype)
    shift = np.empty(f_, dtype_one.dtype)
    bi, bn = p[F_BI], p[F_BN]
    for f in range(f_):
        b = arrays[bi][f] if bi >= 0 else dtype_one[0] * 0
        if bn >= 0:
            invstd = 1.0 / math.sqrt(float(arrays[bn + 3][f]) + eps)
            s = dtype_one.dtype.type(float(arrays[bn][f]) * invstd)
            t = dtype_one.dtype.type(float(arrays[bn + 1][f]) - float(arrays[bn + 2][f]) * s)
            scale[f] = s
            shift[f] = b * s + t
        else:
            scale[f] = 1
            shift[f] = b
    return scale, shift


@numba.njit(cache=True)
def _direct_block(wm, f0, nf, xp, base, plane, cg, kh, kw, dh, dw, wg, length, acc):
    """acc[t, :length] = sum over (c, i, j) of wm[f0 + t, (c*KH + i)*KW + j] times the shifted
    plane slice xp[base + c*plane + i*dh*Wg + j*dw : ... + length], for t < nf <= 2.

    Two filters per pass share each loaded input vector; more would exceed the number of runtime
    alias checks LLVM's vectoriser accepts (the rows are slices of one scratch array)."""
    d0 = acc[0, :length]
    d1 = acc[1, :length]
    for q in range(length):
        d0[q] = 0
        d1[q] = 0
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                off = base + c * plane + i * dh * wg + j * dw
                sp = xp[off : off + length]
                a0 = wm[f0, r]
                if nf == 2:
                    a1 = wm[f0 + 1, r]
                    for q in range(length):
                        v = sp[q]
                        d0[q] += a0 * v
                        d1[q] += a1 * v
                else:
                    for q in range(length):
                        d0[q] += a0 * sp[q]


@numba.njit(cache=True)
def _conv_pad(p, src, s0, s1, xp_buf):
    """Zero-padded grid planes (C, plane) of samples [s0, s1) into xp_buf (stride 1 only)."""
    c_, h_, w_ = p[F_C], p[F_H], p[F_W]
    pt, pl, wg, plane = p[F_PT], p[F_PL], p[F_WG], p[F_PLANE]
    in_size = p[F_IN]
    for s in range(s0, s1):
        xp = xp_buf[(s - s0) * c_ * plane : (s - s0 + 1) * c_ * plane]
        xp[:] = 0
        xs = src[s * in_size : (s + 1) * in_size]
        for c in range(c_):
            for y in range(h_):
                d0 = c * plane + (y + pt) * wg + pl
                r0 = (c * h_ + y) * w_
                dp = xp[d0 : d0 + w_]
                sp = xs[r0 : r0 + w_]
                for z in range(w_):
                    dp[z] = sp[z]


@numba.njit(cache=True)
def _conv_rows(
    p, alpha, scale, shift, wm, src, dst, s0, s1, oy_lo, oy_hi, cols_buf, res_buf, xp_buf, fptr
):
    """GEMM path of OP_CONV: output rows [oy_lo, oy_hi) of samples [s0, s1), in bands of
    ``p[F_ROWS]`` rows; stride 1 reads the padded planes already in xp_buf."""
    c_, h_, w_ = p[F_C], p[F_H], p[F_W]
    f_, oh, ow = p[F_F], p[F_OH], p[F_OW]
    groups, kh, kw = p[F_G], p[F_KH], p[F_KW]
    sh, sw, pt, pl, dh, dw = p[F_SH], p[F_SW], p[F_PT], p[F_PL], p[F_DH], p[F_DW]
    rows, wg, plane = p[F_ROWS], p[F_WG], p[F_PLANE]
    compact = p[F_COMPACT] > 0
    cw = ow if compact else wg  # columns per output row in the column matrix
    unit = plane > 0
    cg = c_ // groups
    fg = f_ // groups
    k = cg * kh * kw
    in_size, out_size = p[F_IN], p[F_OUT]
    act = p[F_ACT]
    for oy0 in range(oy_lo, oy_hi, rows):
        oy1 = min(oy0 + rows, oy_hi)
        length = (oy1 - oy0) * cw
        m = (s1 - s0) * length
        cols = cols_buf[: k * m].reshape(k, m)
        res = res_buf[: fg * m].reshape(fg, m)
        for g in range(groups):
            for s in range(s0, s1):
                q0 = (s - s0) * length
                if unit:
                    for c in range(cg):
                        base = (s - s0) * c_ * plane + (g * cg + c) * plane
                        for i in range(kh):
                            for j in range(kw):
                                off = base + i * dh * wg + j * dw + oy0 * wg
                                d = cols[(c * kh + i) * kw + j, q0 : q0 + length]
                                if compact:  # only the OW valid columns of each grid row
                                    for oy in range(oy1 - oy0):
                                        dr = d[oy * ow : (oy + 1) * ow]
                                        sp = xp_buf[off + oy * wg : off + oy * wg + ow]
                                        for q in range(ow):
                                            dr[q] = sp[q]
                                    continue
                                sp = xp_buf[off : off + length]
                                for q in range(length):
                                    d[q] = sp[q]
                else:
                    xn = src[s * in_size : (s + 1) * in_size].reshape(c_, h_, w_)
                    _im2col_sample(xn, g * cg, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, cols[:, q0:])
            gemm(fptr, wm[g * fg : (g + 1) * fg], cols, res)
            for s in range(s0, s1):
                q0 = (s - s0) * length
                ys = dst[s * out_size : (s + 1) * out_size]
                for f in range(fg):
                    fo = g * fg + f
                    a = scale[fo]
                    b = shift[fo]
                    if p[F_POOL] != POOL_NONE:
                        _emit(res[f], q0, cw, oy0, oy1, oh, ow, a, b, act, alpha, p, ys, fo)
                        continue
                    for oy in range(oy0, oy1):
                        d0 = (fo * oh + oy) * ow
                        r0 = q0 + (oy - oy0) * cw
                        yr = ys[d0 : d0 + ow]
                        rr = res[f, r0 : r0 + ow]
                        for ox in range(ow):
                            yr[ox] = rr[ox] * a + b
                    _activate(ys[(fo * oh + oy0) * ow : (fo * oh + oy1) * ow], act, alpha)


@numba.njit(cache=True)
def _pools_in_registers(p, alpha):
    """Whether a blocked conv row's fused pool can run inside the micro-kernel
    (:func:`core.kernels.direct.conv_pool_block`): a 2x2 stride-2 unpadded max pool after an
    activation that is monotone non-decreasing, so max(act(v)) = act(max(v)) exactly and the
    activation runs on the pooled values."""
    if p[F_POOL] != POOL_MAX or p[F_PPT] != 0 or p[F_PPL] != 0:
        return False
    if p[F_PKH] != 2 or p[F_PKW] != 2 or p[F_PSH] != 2 or p[F_PSW] != 2:
        return False
    act = p[F_ACT]
    return act in (ACT_NONE, ACT_RELU) or (act == ACT_LEAKY and alpha >= 0)


@numba.njit(cache=True)
def _conv_blocked(p, alpha, scale, shift, wp, src, dst, nb, res_buf, xp_buf):
    """Small-work path of OP_CONV (stride 1): per sample, pad once, then the register-blocked
    direct kernel of :mod:`core.kernels.direct` per block of LANES filters into a small
    (LANES, OH, OWp) scratch block, and the fused output step (affine, activation, pooling);
    a 2x2 max pool (after a monotone activation) runs in the kernel's registers with the
    affine, and the activation on the pooled (LANES, POH, PWp) block."""
    c_, f_, oh, ow = p[F_C], p[F_F], p[F_OH], p[F_OW]
    groups, kh, kw, dh, dw = p[F_G], p[F_KH], p[F_KW], p[F_DH], p[F_DW]
    wg, plane = p[F_WG], p[F_PLANE]
    cg, fg = c_ // groups, f_ // groups
    fbg = -(-fg // direct.LANES)
    owp = -(-ow // direct.TILE) * direct.TILE
    out_size = p[F_OUT]
    act = p[F_ACT]
    blk = res_buf[: direct.LANES * oh * owp]
    in_registers = _pools_in_registers(p, alpha)
    poh, pw = p[F_POH], p[F_POW]
    pwp = direct.pooled_width(pw)
    # each filter block's affine, padded to LANES (scale 1, shift 0 on the missing filters)
    sc = np.ones((groups * fbg, direct.LANES), scale.dtype)
    sh = np.zeros((groups * fbg, direct.LANES), scale.dtype)
    for g in range(groups):
        for fb in range(fbg):
            for k in range(min(direct.LANES, fg - fb * direct.LANES)):
                sc[g * fbg + fb, k] = scale[g * fg + fb * direct.LANES + k]
                sh[g * fbg + fb, k] = shift[g * fg + fb * direct.LANES + k]
    for s in range(nb):
        _conv_pad(p, src, s, s + 1, xp_buf)
        ys = dst[s * out_size : (s + 1) * out_size]
        for g in range(groups):
            for fb in range(fbg):
                bi = g * fbg + fb
                base = g * cg * plane
                nk = min(direct.LANES, fg - fb * direct.LANES)
                if in_registers:
                    direct.conv_pool_block(
                        xp_buf, base, plane, wg, wp, bi, cg, kh, kw, dh, dw, poh, pw,
                        sc[bi], sh[bi], blk,
                    )  # fmt: skip
                    for k in range(nk):
                        fo = g * fg + fb * direct.LANES + k
                        yc = ys[fo * poh * pw : (fo + 1) * poh * pw]
                        for py in range(poh):
                            r0 = (k * poh + py) * pwp
                            for px in range(pw):
                                yc[py * pw + px] = blk[r0 + px]
                        _activate(yc, act, alpha)
                    continue
                direct.conv_block(xp_buf, base, plane, wg, wp, bi, cg, kh, kw, dh, dw, oh, ow, blk)
                for k in range(nk):
                    fo = g * fg + fb * direct.LANES + k
                    _emit(
                        blk, k * oh * owp, owp, 0, oh, oh, ow, scale[fo], shift[fo], act, alpha,
                        p, ys, fo,
                    )  # fmt: skip


@numba.njit(cache=True)
def _conv_gemm1(p, alpha, scale, shift, wm, src, dst, nb, res_buf, fptr):
    """OP_CONV for a 1x1, stride-1, unpadded conv: each sample's (C/groups, H*W) input planes
    ARE the GEMM's right operand (no im2col, no padding); the product goes straight to the
    output planes (or to scratch when a pool is fused) and the output step runs in place."""
    c_, f_, groups = p[F_C], p[F_F], p[F_G]
    hw = p[F_OH] * p[F_OW]
    cg, fg = c_ // groups, f_ // groups
    in_size, out_size = p[F_IN], p[F_OUT]
    act = p[F_ACT]
    pooled = p[F_POOL] != POOL_NONE
    for s in range(nb):
        xs = src[s * in_size : (s + 1) * in_size]
        ys = dst[s * out_size : (s + 1) * out_size]
        for g in range(groups):
            xm = xs[g * cg * hw : (g + 1) * cg * hw].reshape(cg, hw)
            if pooled:
                r = res_buf[: fg * hw].reshape(fg, hw)
            else:
                r = ys[g * fg * hw : (g + 1) * fg * hw].reshape(fg, hw)
            gemm(fptr, wm[g * fg : (g + 1) * fg], xm, r)
            for f in range(fg):
                fo = g * fg + f
                if pooled:
                    _emit(
                        r[f],
                        0,
                        p[F_OW],
                        0,
                        p[F_OH],
                        p[F_OH],
                        p[F_OW],
                        scale[fo],
                        shift[fo],
                        act,
                        alpha,
                        p,
                        ys,
                        fo,
                    )
                    continue
                row = r[f]
                a = scale[fo]
                b = shift[fo]
                for q in range(hw):
                    row[q] = row[q] * a + b
                _activate(row, act, alpha)


@numba.njit(cache=True)
def _conv(p, alpha, eps, arrays, src, dst, nb, cols_buf, res_buf, xp_buf, fptr):
    """OP_CONV over nb samples: src (nb * C*H*W) -> dst (nb * F_OUT): F*OH*OW, or F*POH*POW
    with a fused pool."""
    c_ = p[F_C]
    f_, oh, ow = p[F_F], p[F_OH], p[F_OW]
    groups, kh, kw = p[F_G], p[F_KH], p[F_KW]
    dh, dw = p[F_DH], p[F_DW]
    sb, wg, plane = p[F_SB], p[F_WG], p[F_PLANE]
    unit = plane > 0
    cg = c_ // groups
    fg = f_ // groups
    k = cg * kh * kw
    out_size = p[F_OUT]
    wm = arrays[p[F_WI]].reshape(f_, k)
    one = np.ones(1, src.dtype)
    scale, shift = _channel_affine(arrays, p, eps, f_, one)
    act = p[F_ACT]
    if p[F_WINO] > 0:
        _winograd(p, alpha, scale, shift, arrays, src, dst, nb, cols_buf, res_buf, fptr)
        return
    if p[F_PACK] >= 0:
        _conv_blocked(p, alpha, scale, shift, arrays[p[F_PACK]], src, dst, nb, res_buf, xp_buf)
        return
    if p[F_GEMM1]:
        _conv_gemm1(p, alpha, scale, shift, wm, src, dst, nb, res_buf, fptr)
        return
    for s0 in range(0, nb, sb):
        s1 = min(s0 + sb, nb)
        if unit:
            _conv_pad(p, src, s0, s1, xp_buf)
        if p[F_DIRECT]:
            length = oh * wg
            acc = res_buf[: 2 * length].reshape(2, length)
            for s in range(s0, s1):
                ys = dst[s * out_size : (s + 1) * out_size]
                for g in range(groups):
                    base = (s - s0) * c_ * plane + g * cg * plane
                    for f0 in range(0, fg, 2):
                        nf = min(2, fg - f0)
                        _direct_block(
                            wm[g * fg : (g + 1) * fg],
                            f0,
                            nf,
                            xp_buf,
                            base,
                            plane,
                            cg,
                            kh,
                            kw,
                            dh,
                            dw,
                            wg,
                            length,
                            acc,
                        )
                        for t in range(nf):
                            fo = g * fg + f0 + t
                            _emit(
                                acc[t],
                                0,
                                wg,
                                0,
                                oh,
                                oh,
                                ow,
                                scale[fo],
                                shift[fo],
                                act,
                                alpha,
                                p,
                                ys,
                                fo,
                            )
            continue
        _conv_rows(
            p, alpha, scale, shift, wm, src, dst, s0, s1, 0, oh, cols_buf, res_buf, xp_buf, fptr
        )


@numba.njit(cache=True)
def _winograd(p, alpha, scale, shift, arrays, src, dst, nb, v_buf, m_buf, fptr):
    """OP_CONV by Winograd F(m x m, 3 x 3) over nb samples, the affine and activation applied
    after the output transform; V / M of each batch of GEMMs live in the cols / res scratch."""
    c_, h_, w_ = p[F_C], p[F_H], p[F_W]
    f_, oh, ow = p[F_F], p[F_OH], p[F_OW]
    m = p[F_WINO]
    a = m + 2
    u = arrays[p[F_WU]].reshape(a * a, f_, c_)
    x = src[: nb * p[F_IN]].reshape(nb, c_, h_, w_)
    y = dst[: nb * p[F_OUT]].reshape(nb, f_, oh, ow)
    rows = nb * ((oh + m - 1) // m)
    conv_blocks(x, u, scale, shift, m, p[F_PT], p[F_PL], 0, rows, p[F_WB], y, v_buf, m_buf, fptr)
    _activate(dst[: nb * p[F_OUT]], p[F_ACT], alpha)


@numba.njit(cache=True)
def _refresh_winograd(prog, arrays):
    """Redo the packed filter transform of every Winograd conv whose weights changed in place
    since it was made (a compare of F*C*9 values per call; the transform itself is far dearer)."""
    for i in range(prog.shape[0]):
        p = prog[i]
        m = p[F_WINO]
        if p[F_OP] != OP_CONV or m == 0:
            continue
        w = arrays[p[F_WI]]
        made = arrays[p[F_WU] + 1]
        changed = 0
        for q in range(w.shape[0]):
            changed += w[q] != made[q]
        if changed:
            made[:] = w
            f_, c_ = p[F_F], p[F_C]
            u = arrays[p[F_WU]].reshape((m + 2) * (m + 2), f_, c_)
            winograd_filter(w.reshape(f_, c_, 3, 3), m, u)


@numba.njit(cache=True)
def _conv_macs(p):
    return p[F_F] * p[F_OH] * p[F_OW] * (p[F_C] // p[F_G]) * p[F_KH] * p[F_KW]


@numba.njit(parallel=True, cache=True)
def _conv_split(p, alpha, eps, arrays, src, dst, scratch, layout):
    """OP_CONV of ONE sample on the blocked path with its filter blocks spread over the threads
    (thread t takes blocks t, t + T, ...; its own scratch row for the output block; every thread
    reads the padded planes that the calling thread wrote once into scratch row 0)."""
    c_, f_, oh, ow = p[F_C], p[F_F], p[F_OH], p[F_OW]
    groups, kh, kw, dh, dw = p[F_G], p[F_KH], p[F_KW], p[F_DH], p[F_DW]
    wg, plane = p[F_WG], p[F_PLANE]
    cg, fg = c_ // groups, f_ // groups
    fbg = -(-fg // direct.LANES)
    owp = -(-ow // direct.TILE) * direct.TILE
    act = p[F_ACT]
    one = np.ones(1, src.dtype)
    scale, shift = _channel_affine(arrays, p, eps, f_, one)
    wp = arrays[p[F_PACK]]
    xp = scratch[0][layout[L_XP] :]
    _conv_pad(p, src, 0, 1, xp)
    threads = scratch.shape[0]
    blocks = groups * fbg
    for t in numba.prange(threads):
        row = scratch[t]
        blk = row[layout[L_RES] : layout[L_RES] + direct.LANES * oh * owp]
        for bi in range(t, blocks, threads):
            g = bi // fbg
            fb = bi % fbg
            direct.conv_block(
                xp, g * cg * plane, plane, wg, wp, bi, cg, kh, kw, dh, dw, oh, ow, blk
            )
            for k in range(min(direct.LANES, fg - fb * direct.LANES)):
                fo = g * fg + fb * direct.LANES + k
                _emit(
                    blk,
                    k * oh * owp,
                    owp,
                    0,
                    oh,
                    oh,
                    ow,
                    scale[fo],
                    shift[fo],
                    act,
                    alpha,
                    p,
                    dst,
                    fo,
                )


@numba.njit(cache=True)
def _differs(a, b):
    """Whether two equal-length arrays differ anywhere (a count, so LLVM vectorises it)."""
    n = 0
    for q in range(a.shape[0]):
        n += a[q] != b[q]
    return n > 0


@numba.njit(cache=True)
def _sync_packed(prog, arrays):
    """Repack the channel-blocked weights of every blocked conv whose live weights changed in
    place (an optimizer step, a test's edit) since they were packed: the array after the packed
    one (F_PACK + 1) is a copy of the weights they were packed from, so a still plan pays one
    contiguous compare per call (~F*K values) and the packing done at build time is reused."""
    for i in range(prog.shape[0]):
        p = prog[i]
        if p[F_OP] != OP_CONV or p[F_PACK] < 0:
            continue
        w = arrays[p[F_WI]]
        made = arrays[p[F_PACK] + 1]
        if not _differs(w, made):
            continue
        made[:] = w
        f_, groups = p[F_F], p[F_G]
        fg = f_ // groups
        k_ = p[F_C] // groups * p[F_KH] * p[F_KW]
        fbg = -(-fg // direct.LANES)
        wp = arrays[p[F_PACK]]
        zero = w[0] * 0
        for g in range(groups):
            for fb in range(fbg):
                o = (g * fbg + fb) * k_ * direct.LANES
                for r in range(k_):
                    for lane in range(direct.LANES):
                        f = fb * direct.LANES + lane
                        v = w[(g * fg + f) * k_ + r] if f < fg else zero
                        wp[o + r * direct.LANES + lane] = v


@numba.njit(parallel=True, cache=True)
def _dense_split(p, alpha, arrays, src, dst, scratch, layout):
    """OP_DENSE of ONE sample with its weight rows split over the threads (one per scratch row):
    task t computes the partial product x[i0:i1] @ W[i0:i1] of its contiguous block of rows
    into its scratch row's res area, then the calling thread sums the partials and adds the
    bias (the layer is memory-bound at batch 1: 4 MiB of weights for 1 M multiply-adds in
    VGG-small, so each thread streams half of them)."""
    i_, o_ = p[F_IN], p[F_OUT]
    x = src[:i_]
    w = arrays[p[F_WI]].reshape(i_, o_)
    y = dst[:o_]
    threads = scratch.shape[0]
    r0 = layout[L_RES]
    for t in numba.prange(threads):
        i0 = t * i_ // threads
        i1 = (t + 1) * i_ // threads
        part = scratch[t][r0 : r0 + o_]
        # SciPy's BLAS (np.dot) for a single row, as in _dense
        gemm(0, x[i0:i1].reshape(1, i1 - i0), w[i0:i1], part.reshape(1, o_))
    for o in range(o_):
        y[o] = scratch[0, r0 + o]
    for t in range(1, threads):
        part = scratch[t][r0 : r0 + o_]
        for o in range(o_):
            y[o] += part[o]
    if p[F_BI] >= 0:
        b = arrays[p[F_BI]]
        for o in range(o_):
            y[o] += b[o]
    _activate(y, p[F_ACT], alpha)


@numba.njit(cache=True)
def _dense(p, alpha, arrays, src, dst, nb, fptr):
    i_, o_ = p[F_IN], p[F_OUT]
    x2 = src[: nb * i_].reshape(nb, i_)
    y2 = dst[: nb * o_].reshape(nb, o_)
    # a few rows: SciPy's OpenBLAS (np.dot) measured 3-4x faster than NumPy's (gemv-like shape)
    gemm(fptr if nb >= 8 else 0, x2, arrays[p[F_WI]].reshape(i_, o_), y2)
    if p[F_BI] >= 0:
        b = arrays[p[F_BI]]
        for n in range(nb):
            for o in range(o_):
                y2[n, o] += b[o]
    _activate(dst[: nb * o_], p[F_ACT], alpha)


@numba.njit(cache=True)
def _pool_plane(x, x0, rs, h_, w_, kh, kw, sh, sw, pt, pl, oh, ow, is_max, y, y0):
    """One channel: y[y0 + oy*OW + ox] = max / mean of the window of the (H, W) map whose row r
    starts at x[x0 + r*rs] (rs >= W: a grid with junk columns is read in place). Max ignores
    padding, average divides by the in-input pixel count; an empty window gives 0."""
    if is_max and kh == 2 and kw == 2 and sh == 2 and sw == 2 and pt == 0 and pl == 0:
        for oy in range(oh):
            a0 = x0 + 2 * oy * rs
            a1 = a0 + rs
            d = y0 + oy * ow
            for ox in range(ow):
                v = x[a0 + 2 * ox]
                u = x[a0 + 2 * ox + 1]
                if u > v:
                    v = u
                u = x[a1 + 2 * ox]
                if u > v:
                    v = u
                u = x[a1 + 2 * ox + 1]
                if u > v:
                    v = u
                y[d + ox] = v
        return
    for oy in range(oh):
        iy0 = max(oy * sh - pt, 0)
        iy1 = min(oy * sh - pt + kh, h_)
        for ox in range(ow):
            ix0 = max(ox * sw - pl, 0)
            ix1 = min(ox * sw - pl + kw, w_)
            if iy1 <= iy0 or ix1 <= ix0:
                y[y0 + oy * ow + ox] = 0
                continue
            if is_max:
                best = x[x0 + iy0 * rs + ix0]
                for iy in range(iy0, iy1):
                    for ix in range(ix0, ix1):
                        v = x[x0 + iy * rs + ix]
                        if v > best:
                            best = v
                y[y0 + oy * ow + ox] = best
            else:
                acc = 0.0
                for iy in range(iy0, iy1):
                    for ix in range(ix0, ix1):
                        acc += x[x0 + iy * rs + ix]
                y[y0 + oy * ow + ox] = acc / ((iy1 - iy0) * (ix1 - ix0))


@numba.njit(cache=True)
def _pool(p, src, dst, nb, is_max):
    c_, h_, w_ = p[F_C], p[F_H], p[F_W]
    oh, ow = p[F_OH], p[F_OW]
    kh, kw, sh, sw, pt, pl = p[F_KH], p[F_KW], p[F_SH], p[F_SW], p[F_PT], p[F_PL]
    for r in range(nb * c_):
        _pool_plane(
            src, r * h_ * w_, w_, h_, w_, kh, kw, sh, sw, pt, pl, oh, ow, is_max, dst, r * oh * ow
        )


@numba.njit(cache=True)
def _emit(src, s0, rs, oy0, oy1, oh, ow, a, b, act, alpha, p, ys, fo):
    """Output step of conv channel ``fo`` for output rows [oy0, oy1) of its (OH, OW) map, row oy
    at src[s0 + (oy - oy0)*rs : ... + OW] (scratch, changed in place): v = act(src * a + b),
    written to ys as channel fo of the (F, OH, OW) output, or pooled into channel fo of the
    (F, POH, POW) output when the row has a fused pool (the un-pooled map never reaches the
    activation buffers). A band that is not the whole map holds whole pooling windows only
    (the builder fuses such pools only with row stride = window, no top padding, rows a
    multiple of the window)."""
    for oy in range(oy1 - oy0):
        row = src[s0 + oy * rs : s0 + oy * rs + ow]
        for ox in range(ow):
            row[ox] = row[ox] * a + b
        _activate(row, act, alpha)
    pool = p[F_POOL]
    if pool == POOL_NONE:
        for oy in range(oy0, oy1):
            yr = ys[(fo * oh + oy) * ow : (fo * oh + oy + 1) * ow]
            row = src[s0 + (oy - oy0) * rs : s0 + (oy - oy0) * rs + ow]
            for ox in range(ow):
                yr[ox] = row[ox]
        return
    poh, pow_ = p[F_POH], p[F_POW]
    pr0, pr1, pt = 0, poh, p[F_PPT]
    if oy0 > 0 or oy1 < oh:
        pr0 = oy0 // p[F_PSH]
        pr1 = min(poh, pr0 + (oy1 - oy0) // p[F_PKH])
    if pr1 <= pr0:
        return
    _pool_plane(
        src,
        s0,
        rs,
        oy1 - oy0,
        ow,
        p[F_PKH],
        p[F_PKW],
        p[F_PSH],
        p[F_PSW],
        pt,
        p[F_PPL],
        pr1 - pr0,
        pow_,
        pool == POOL_MAX,
        ys,
        (fo * poh + pr0) * pow_,
    )


@numba.njit(cache=True)
def _gap(p, src, dst, nb):
    hw = p[F_H] * p[F_W]
    for r in range(nb * p[F_C]):
        acc = 0.0
        for q in range(r * hw, (r + 1) * hw):
            acc += src[q]
        dst[r] = acc / hw


@numba.njit(cache=True)
def _affine(p, alpha, eps, arrays, buf, nb):
    c_ = p[F_C]
    hw = p[F_IN] // c_
    one = np.ones(1, buf.dtype)
    scale, shift = _channel_affine(arrays, p, eps, c_, one)
    for r in range(nb * c_):
        a = scale[r % c_]
        b = shift[r % c_]
        for q in range(r * hw, (r + 1) * hw):
            buf[q] = buf[q] * a + b
    _activate(buf[: nb * p[F_IN]], p[F_ACT], alpha)


@numba.njit(cache=True)
def _run_task(prog, fparams, arrays, layout, x, out, scratch, t, n0, n1, softmax, fptr, split):
    """Samples [n0, n1) through the whole program, ``layout[L_CHUNK]`` at a time, in scratch
    row ``t``; ``split``: one sample on the calling thread, whose large blocked convs spread
    their filter blocks over all the scratch rows' threads (:func:`_conv_split`, from
    ``layout[L_SPLIT]`` MACs; 0: never), and large dense layers their output columns
    (:func:`_dense_split`, from ``layout[L_DENSE_SPLIT]`` MACs; 0: never)."""
    row = scratch[t]
    chunk, size = layout[L_CHUNK], layout[L_ACT]
    buf_a = row[layout[L_A] : layout[L_A] + size]
    buf_b = row[layout[L_B] : layout[L_B] + size]
    cols = row[layout[L_COLS] : layout[L_RES]]
    res = row[layout[L_RES] : layout[L_XP]]
    xp = row[layout[L_XP] :]
    in0 = x.shape[1]
    k_ = out.shape[1]
    for c0 in range(n0, n1, chunk):
        nb = min(chunk, n1 - c0)
        src = buf_a
        dst = buf_b
        for n in range(nb):
            xr = x[c0 + n]
            for j in range(in0):
                src[n * in0 + j] = xr[j]
        for i in range(prog.shape[0]):
            p = prog[i]
            op = p[F_OP]
            alpha, eps = fparams[i, 0], fparams[i, 1]
            if op == OP_CONV:
                if split and nb == 1 and p[F_PACK] >= 0 and _conv_macs(p) >= layout[L_SPLIT] > 0:
                    _conv_split(p, alpha, eps, arrays, src, dst, scratch, layout)
                else:
                    _conv(p, alpha, eps, arrays, src, dst, nb, cols, res, xp, fptr)
            elif op == OP_DENSE:
                if split and nb == 1 and p[F_IN] * p[F_OUT] >= layout[L_DENSE_SPLIT] > 0:
                    _dense_split(p, alpha, arrays, src, dst, scratch, layout)
                else:
                    _dense(p, alpha, arrays, src, dst, nb, fptr)
            elif op == OP_MAXPOOL:
                _pool(p, src, dst, nb, True)
            elif op == OP_AVGPOOL:
                _pool(p, src, dst, nb, False)
            elif op == OP_GAP:
                _gap(p, src, dst, nb)
            elif op == OP_AFFINE:
                _affine(p, alpha, eps, arrays, src, nb)
                continue
            else:
                _activate(src[: nb * p[F_IN]], p[F_ACT], alpha)
                continue
            src, dst = dst, src
        for n in range(nb):
            z = src[n * k_ : (n + 1) * k_]
            if softmax:
                m = float(z[0])
                for j in range(k_):
                    m = max(m, float(z[j]))
                tot = 0.0
                for j in range(k_):
                    tot += math.exp(float(z[j]) - m)
                for j in range(k_):
                    out[c0 + n, j] = math.exp(float(z[j]) - m) / tot
            else:
                for j in range(k_):
                    out[c0 + n, j] = z[j]


@numba.njit(parallel=True, cache=True)
def run_program(prog, fparams, arrays, layout, x, out, scratch, softmax, fptr):
    """out (N, K) = network(x (N, D)) as logits, or softmax probabilities if ``softmax``.

    prog (ops, NFIELDS) int64, fparams (ops, 2) float64 (activation alpha, BatchNorm eps),
    arrays: typed list of 1-D weight arrays, layout (NLAYOUT,) int64 offsets into a scratch row,
    scratch (T, S): one row per task; task t takes samples [t*N/T, (t+1)*N/T); fptr: the
    float32 GEMM of :func:`core.kernels.blas.gemm` (0: ``np.dot``).
    """
    n_ = x.shape[0]
    _refresh_winograd(prog, arrays)
    _sync_packed(prog, arrays)
    tasks = min(scratch.shape[0], n_ // max(1, layout[L_MINTASK]))
    if tasks <= 1:
        split = n_ == 1 and scratch.shape[0] > 1
        _run_task(prog, fparams, arrays, layout, x, out, scratch, 0, 0, n_, softmax, fptr, split)
        return
    for t in numba.prange(tasks):
        n0 = t * n_ // tasks
        n1 = (t + 1) * n_ // tasks
        _run_task(prog, fparams, arrays, layout, x, out, scratch, t, n0, n1, softmax, fptr, False)


def run_program_reference(prog, fparams, arrays, layout, x, out, scratch, softmax, fptr):
    """Plain NumPy twin of :func:`run_program`: direct convolution sums, one op at a time."""
    n_ = x.shape[0]
    h: np.ndarray = np.asarray(x, dtype=np.float64)
    for i in range(prog.shape[0]):
        p = [int(v) for v in prog[i]]
        op, act = p[F_OP], p[F_ACT]
        alpha, eps = float(fparams[i, 0]), float(fparams[i, 1])
        c_, hh, ww, f_, oh, ow = p[F_C], p[F_H], p[F_W], p[F_F], p[F_OH], p[F_OW]
        kh, kw, sh, sw, pt, pl, dh, dw = (p[j] for j in range(F_KH, F_DW + 1))
        if op == OP_CONV:
            groups = p[F_G]
            cg, fg = c_ // groups, f_ // groups
            w = np.asarray(arrays[p[F_WI]], np.float64).reshape(f_, cg, kh, kw)
            xi = h.reshape(n_, c_, hh, ww)
            pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - hh - pt)
            pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - ww - pl)
            xpad = np.pad(xi, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
            y = np.zeros((n_, f_, oh, ow))
            for f in range(f_):
                g = f // fg
                for i_ in range(kh):
                    for j in range(kw):
                        patch = xpad[
                            :,
                            g * cg : (g + 1) * cg,
                            i_ * dh : i_ * dh + (oh - 1) * sh + 1 : sh,
                            j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                        ]
                        y[:, f] += np.einsum("nchw,c->nhw", patch, w[f, :, i_, j])
            h = _reference_activation(_reference_affine(y, p, eps, arrays, f_), act, alpha)
            if p[F_POOL] != POOL_NONE:
                h = _reference_pool(
                    h, p[F_POOL] == POOL_MAX, *(p[j] for j in range(F_PKH, F_POW + 1))
                )
            act = ACT_NONE  # applied above, before the fused pool
        elif op == OP_DENSE:
            wd = np.asarray(arrays[p[F_WI]], np.float64).reshape(p[F_IN], p[F_OUT])
            h = h.reshape(n_, -1) @ wd
            if p[F_BI] >= 0:
                h = h + np.asarray(arrays[p[F_BI]], np.float64)
        elif op in (OP_MAXPOOL, OP_AVGPOOL):
            xi = h.reshape(n_, c_, hh, ww)
            h = _reference_pool(xi, op == OP_MAXPOOL, kh, kw, sh, sw, pt, pl, oh, ow)
        elif op == OP_GAP:
            h = h.reshape(n_, c_, hh * ww).mean(axis=2)
        elif op == OP_AFFINE:
            h = _reference_affine(h.reshape(n_, c_, -1), p, eps, arrays, c_)
        h = _reference_activation(h, act, alpha).reshape(n_, -1)
    if softmax:
        h = np.exp(h - h.max(axis=1, keepdims=True))
        h /= h.sum(axis=1, keepdims=True)
    out[...] = h


def _reference_pool(xi, is_max, kh, kw, sh, sw, pt, pl, oh, ow):
    """(N, C, H, W) -> (N, C, OH, OW) max / mean over the in-input part of each window."""
    n_, c_, hh, ww = xi.shape
    y = np.zeros((n_, c_, oh, ow))
    for oy in range(oh):
        y0, y1 = max(oy * sh - pt, 0), min(oy * sh - pt + kh, hh)
        for ox in range(ow):
            x0, x1 = max(ox * sw - pl, 0), min(ox * sw - pl + kw, ww)
            if y1 > y0 and x1 > x0:
                win = xi[:, :, y0:y1, x0:x1]
                y[:, :, oy, ox] = win.max(axis=(2, 3)) if is_max else win.mean(axis=(2, 3))
    return y


def _reference_affine(y, p, eps, arrays, channels):
    shape = (1, channels) + (1,) * (y.ndim - 2)
    if p[F_BI] >= 0:
        y = y + np.asarray(arrays[p[F_BI]], np.float64).reshape(shape)
    bn = p[F_BN]
    if bn >= 0:
        gamma, beta, mean, var = (np.asarray(arrays[bn + j], np.float64) for j in range(4))
        s = gamma / np.sqrt(var + eps)
        y = (y - mean.reshape(shape)) * s.reshape(shape) + beta.reshape(shape)
    return y


def _reference_activation(h, act, alpha):
    if act == ACT_RELU:
        return np.maximum(h, 0)
    if act == ACT_LEAKY:
        return np.where(h > 0, h, alpha * h)
    if act == ACT_SIGMOID:
        return 1 / (1 + np.exp(-h))
    if act == ACT_TANH:
        return np.tanh(h)
    return h
