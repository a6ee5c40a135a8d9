"""Element-wise activation kernels on flat (contiguous, 1-D) arrays.

Backward kernels take the saved forward input ``x`` (ReLU, LeakyReLU) or output ``y`` (sigmoid,
tanh), and overwrite ``dx``.
"""

from __future__ import annotations

import math

import numba

# Below this many elements an element-wise kernel stays on the calling thread: it is memory-bound
# (ReLU on 300k float32: 23 us, on 2M: ~150 us serially), and waking the (passive) Numba pool and
# waiting for both threads to be scheduled on a shared machine costs 10-30 us median with
# ms-long tails (VGG's 2M-element ReLU measured 6-7 ms in its parallel form under load). The
# parallel loop is only entered (and the pool only woken) on the other branch.
PARALLEL_MIN = 1 << 22


@numba.njit(parallel=True, cache=True)
def relu_forward(x, out):
    """out = max(x, 0)."""
    if x.shape[0] < PARALLEL_MIN:
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = v if v > 0 else 0
        return
    for i in numba.prange(x.shape[0]):
        v = x[i]
        out[i] = v if v > 0 else 0


def relu_forward_reference(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] if x[i] > 0 else 0


@numba.njit(parallel=True, cache=True)
def relu_backward(dout, x, dx):
    """dx = dout where x > 0 else 0."""
    if x.shape[0] < PARALLEL_MIN:
        for i in range(x.shape[0]):
            dx[i] = dout[i] if x[i] > 0 else 0
        return
    for i in numba.prange(x.shape[0]):
        dx[i] = dout[i] if x[i] > 0 else 0


def relu_backward_reference(dout, x, dx):
    for i in range(x.shape[0]):
        dx[i] = dout[i] if x[i] > 0 else 0


@numba.njit(parallel=True, cache=True)
def leaky_relu_forward(x, alpha, out):
    """out = x if x > 0 else alpha * x."""
    a = x.dtype.type(alpha)
    for i in numba.prange(x.shape[0]):
        v = x[i]
        out[i] = v if v > 0 else a * v


def leaky_relu_forward_reference(x, alpha, out):
    for i in range(x.shape[0]):
        out[i] = x[i] if x[i] > 0 else alpha * x[i]


@numba.njit(parallel=True, cache=True)
def leaky_relu_backward(dout, x, alpha, dx):
    """dx = dout if x > 0 else alpha * dout."""
    a = x.dtype.type(alpha)
    for i in numba.prange(x.shape[0]):
        dx[i] = dout[i] if x[i] > 0 else a * dout[i]


def leaky_relu_backward_reference(dout, x, alpha, dx):
    for i in range(x.shape[0]):
        dx[i] = dout[i] if x[i] > 0 else alpha * dout[i]


@numba.njit(parallel=True, cache=True)
def sigmoid_forward(x, out):
    """out = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    for i in numba.prange(x.shape[0]):
        v = x[i]
        if v >= 0:
            out[i] = 1 / (1 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1 + e)


def sigmoid_forward_reference(x, out):
    for i in range(x.shape[0]):
        v = float(x[i])
        out[i] = 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


@numba.njit(parallel=True, cache=True)
def sigmoid_backward(dout, y, dx):
    """dx = dout * y * (1 - y), y = sigmoid(x)."""
    for i in numba.prange(y.shape[0]):
        dx[i] = dout[i] * y[i] * (1 - y[i])


def sigmoid_backward_reference(dout, y, dx):
    for i in range(y.shape[0]):
        dx[i] = dout[i] * y[i] * (1 - y[i])


@numba.njit(parallel=True, cache=True)
def tanh_forward(x, out):
    """out = tanh(x)."""
    for i in numba.prange(x.shape[0]):
        out[i] = math.tanh(x[i])


def tanh_forward_reference(x, out):
    for i in range(x.shape[0]):
        out[i] = math.tanh(x[i])


@numba.njit(parallel=True, cache=True)
def tanh_backward(dout, y, dx):
    """dx = dout * (1 - y^2), y = tanh(x)."""
    for i in numba.prange(y.shape[0]):
        dx[i] = dout[i] * (1 - y[i] * y[i])


def tanh_backward_reference(dout, y, dx):
    for i in range(y.shape[0]):
        dx[i] = dout[i] * (1 - y[i] * y[i])
