"""Fully connected kernels: y = x @ w + b with x (N, I), w (I, O), b (O,), y (N, O).

Fast path: Numba ``prange`` over row blocks, each a single-threaded BLAS GEMM (the same thread
pool as the conv kernels, see :mod:`core.kernels`). A large weight (at least ``_SPLIT_WEIGHTS``
values, e.g. VGG-small's 4096 x 256, 4 MiB) is split instead: each task owns a slice of it
(output columns forward, input rows backward) and reads it once, where row blocks would each
stream the whole weight from memory again (backward: both GEMMs in one pass over the slice;
measured 3-5x faster on that layer at batch 64, see README). ``fptr``: the float32 GEMM of
:func:`core.kernels.blas.gemm` (0: ``np.dot``). Reference twins are plain loops.
"""

from __future__ import annotations

import numba
import numpy as np

from core.kernels.blas import gemm

_BLOCK = 16  # rows per parallel task
_SERIAL_WORK = 1 << 20  # backward multiply-adds below which the kernel does not wake the pool
_SPLIT_WEIGHTS = 1 << 18  # weights from which tasks split the weight, not the batch (1 MiB f32)
_SPLIT = 64  # weight columns (forward) / rows (backward) per task when split


@numba.njit(parallel=True, cache=True)
def dense_forward(x, w, b, out, fptr=0):
    """out (N, O) = x @ w + b."""
    n_, o_ = out.shape
    blocks = (n_ + _BLOCK - 1) // _BLOCK
    if blocks == 1:  # one block (batch <= 16, e.g. latency calls): no pool wake-up
        np.dot(x, w, out)
        for r in range(n_):
            for o in range(o_):
                out[r, o] += b[o]
        return
    if w.size >= _SPLIT_WEIGHTS:  # each task: all rows times its columns of w
        for t in numba.prange((o_ + _SPLIT - 1) // _SPLIT):
            c0 = t * _SPLIT
            c1 = min(c0 + _SPLIT, o_)
            tmp = np.empty((n_, c1 - c0), out.dtype)
            gemm(fptr, x, w[:, c0:c1], tmp)
            for r in range(n_):
                for o in range(c0, c1):
                    out[r, o] = tmp[r, o - c0] + b[o]
        return
    for t in numba.prange(blocks):
        r0 = t * _BLOCK
        r1 = min(r0 + _BLOCK, n_)
        np.dot(x[r0:r1], w, out[r0:r1])
        for r in range(r0, r1):
            for o in range(o_):
                out[r, o] += b[o]


def dense_forward_reference(x, w, b, out, fptr=0):
    n_, i_ = x.shape
    o_ = w.shape[1]
    for n in range(n_):
        for o in range(o_):
            acc = float(b[o])
            for i in range(i_):
                acc += float(x[n, i]) * float(w[i, o])
            out[n, o] = acc


@numba.njit(cache=True)
def _add_column_sums(dout, db):
    """db += the column sums of dout (the bias gradient), on the calling thread."""
    for o in range(dout.shape[1]):
        s = 0.0
        for n in range(dout.shape[0]):
            s += dout[n, o]
        db[o] += s


@numba.njit(parallel=True, cache=True)
def dense_backward(dout, x, w, dx, dw, db, fptr=0):
    """dx (N, I) = dout @ w.T (overwritten); dw (I, O) += x.T @ dout; db (O,) += sum_n dout."""
    n_, i_ = x.shape
    o_ = w.shape[1]
    blocks = (n_ + _BLOCK - 1) // _BLOCK
    wt = w.T
    if n_ * i_ * o_ < _SERIAL_WORK:  # small layer: 3 GEMMs on the calling thread
        np.dot(dout, wt, dx)
        dw += np.dot(x.T, dout)
        _add_column_sums(dout, db)
        return
    if w.size >= _SPLIT_WEIGHTS:  # each task: rows r0..r1 of w, dw and columns of x, dx
        for t in numba.prange((i_ + _SPLIT - 1) // _SPLIT):
            r0 = t * _SPLIT
            r1 = min(r0 + _SPLIT, i_)
            tdx = np.empty((n_, r1 - r0), dx.dtype)
            gemm(fptr, dout, w[r0:r1].T, tdx)
            for n in range(n_):
                for i in range(r0, r1):
                    dx[n, i] = tdx[n, i - r0]
            tdw = np.empty((r1 - r0, o_), dw.dtype)
            gemm(fptr, x[:, r0:r1].T, dout, tdw)
            for i in range(r0, r1):
                for o in range(o_):
                    dw[i, o] += tdw[i - r0, o]
        _add_column_sums(dout, db)
        return
    for t in numba.prange(blocks):
        r0 = t * _BLOCK
        r1 = min(r0 + _BLOCK, n_)
        np.dot(dout[r0:r1], wt, dx[r0:r1])
    xt = np.ascontiguousarray(x.T)
    iblocks = (i_ + 4 * _BLOCK - 1) // (4 * _BLOCK)
    for t in numba.prange(iblocks):
        r0 = t * 4 * _BLOCK
        r1 = min(r0 + 4 * _BLOCK, i_)
        tmp = np.dot(xt[r0:r1], dout)
        for r in range(r0, r1):
            for o in range(o_):
                dw[r, o] += tmp[r - r0, o]
    for o in numba.prange(o_):
        s = 0.0
        for n in range(n_):
            s += dout[n, o]
        db[o] += s


def dense_backward_reference(dout, x, w, dx, dw, db, fptr=0):
    n_, i_ = x.shape
    o_ = w.shape[1]
    for n in range(n_):
        for i in range(i_):
            dx[n, i] = sum(float(dout[n, o]) * float(w[i, o]) for o in range(o_))
    for i in range(i_):
        for o in range(o_):
            dw[i, o] += sum(float(x[n, i]) * float(dout[n, o]) for n in range(n_))
    for o in range(o_):
        db[o] += sum(float(dout[n, o]) for n in range(n_))
