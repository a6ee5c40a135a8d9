"""Fully connected kernels: y = x @ w + b with x (N, I), w (I, O), b (O,), y (N, O).

Fast path: Numba ``prange`` over row blocks, each a single-threaded BLAS GEMM (the same thread
pool as the conv kernels, see :mod:`core.kernels`). Reference twins are plain loops.
"""

from __future__ import annotations

import numba
import numpy as np

_BLOCK = 16  # rows per parallel task
_SERIAL_WORK = 1 << 20  # backward multiply-adds below which the kernel does not wake the pool


@numba.njit(parallel=True, cache=True)
def dense_forward(x, w, b, out):
    """out (N, O) = x @ w + b."""
    n_, o_ = out.shape
    blocks = (n_ + _BLOCK - 1) // _BLOCK
    if blocks == 1:  # one block (batch <= 16, e.g. latency calls): no pool wake-up
        np.dot(x, w, out)
        for r in range(n_):
            for o in range(o_):
                out[r, o] += b[o]
        return
    for t in numba.prange(blocks):
        r0 = t * _BLOCK
        r1 = min(r0 + _BLOCK, n_)
        np.dot(x[r0:r1], w, out[r0:r1])
        for r in range(r0, r1):
            for o in range(o_):
                out[r, o] += b[o]


def dense_forward_reference(x, w, b, out):
    n_, i_ = x.shape
    o_ = w.shape[1]
    for n in range(n_):
        for o in range(o_):
            acc = float(b[o])
            for i in range(i_):
                acc += float(x[n, i]) * float(w[i, o])
            out[n, o] = acc


@numba.njit(parallel=True, cache=True)
def dense_backward(dout, x, w, dx, dw, db):
    """dx (N, I) = dout @ w.T (overwritten); dw (I, O) += x.T @ dout; db (O,) += sum_n dout."""
    n_, i_ = x.shape
    o_ = w.shape[1]
    blocks = (n_ + _BLOCK - 1) // _BLOCK
    wt = w.T
    if n_ * i_ * o_ < _SERIAL_WORK:  # small layer: 3 GEMMs on the calling thread
        np.dot(dout, wt, dx)
        dw += np.dot(x.T, dout)
        for o in range(o_):
            s = 0.0
            for n in range(n_):
                s += dout[n, o]
            db[o] += s
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


def dense_backward_reference(dout, x, w, dx, dw, db):
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
