"""Fully connected kernels: y = x @ w + b with x (N, I), w (I, O), b (O,), y (N, O).

The fast path is BLAS through NumPy (multi-threaded GEMM beats any hand-written loop here); the
reference twins are plain loops with the same signature.
"""

from __future__ import annotations

import numpy as np


def dense_forward(x, w, b, out):
    """out (N, O) = x @ w + b."""
    np.matmul(x, w, out=out)
    out += b


def dense_forward_reference(x, w, b, out):
    n_, i_ = x.shape
    o_ = w.shape[1]
    for n in range(n_):
        for o in range(o_):
            acc = float(b[o])
            for i in range(i_):
                acc += float(x[n, i]) * float(w[i, o])
            out[n, o] = acc


def dense_backward(dout, x, w, dx, dw, db):
    """dx (N, I) = dout @ w.T (overwritten); dw (I, O) += x.T @ dout; db (O,) += sum_n dout."""
    np.matmul(dout, w.T, out=dx)
    dw += x.T @ dout
    db += dout.sum(axis=0)


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
