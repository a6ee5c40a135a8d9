"""Fused optimizer update kernels on flat (1-D, contiguous) parameter arrays, updated in place.

Conventions follow PyTorch: L2 ``weight_decay`` is added to the gradient for SGD/Adam, decoupled
(``w -= lr * wd * w``) for AdamW.
"""

from __future__ import annotations

import math

import numba

# Parameters smaller than this are updated on the calling thread: an Adam step over 62k values
# (all of LeNet) takes ~60 us serially, while waking the pool once per parameter array cost
# 1.3 ms per step on a loaded 2-core machine.
PARALLEL_MIN = 1 << 18


@numba.njit(inline="always")
def _adam_one(w, g, m, v, i, lr, beta1, beta2, eps, bc1, bc2, l2, decoupled):
    gi = g[i] + l2 * w[i]
    mi = beta1 * m[i] + (1.0 - beta1) * gi
    vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
    m[i] = mi
    v[i] = vi
    wi = w[i] * (1.0 - lr * decoupled)
    w[i] = wi - lr * (mi / bc1) / (math.sqrt(vi / bc2) + eps)


@numba.njit(inline="always")
def _sgd_one(w, g, buf, i, lr, momentum, weight_decay, nesterov, first):
    d = g[i] + weight_decay * w[i]
    if momentum != 0.0:
        b = d if first else momentum * buf[i] + d
        buf[i] = b
        d = d + momentum * b if nesterov else b
    w[i] -= lr * d


@numba.njit(parallel=True, cache=True)
def sgd_update(w, g, buf, lr, momentum, weight_decay, nesterov, first):
    """d = g + wd*w; buf = d if first else momentum*buf + d; w -= lr * (d + momentum*buf if
    nesterov else buf). With momentum == 0, w -= lr * d (buf untouched)."""
    if w.shape[0] < PARALLEL_MIN:
        for i in range(w.shape[0]):
            _sgd_one(w, g, buf, i, lr, momentum, weight_decay, nesterov, first)
        return
    for i in numba.prange(w.shape[0]):
        _sgd_one(w, g, buf, i, lr, momentum, weight_decay, nesterov, first)


def sgd_update_reference(w, g, buf, lr, momentum, weight_decay, nesterov, first):
    for i in range(w.shape[0]):
        d = g[i] + weight_decay * w[i]
        if momentum != 0.0:
            b = d if first else momentum * buf[i] + d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        w[i] -= lr * d


@numba.njit(parallel=True, cache=True)
def adam_update(w, g, m, v, lr, beta1, beta2, eps, step, l2, decoupled):
    """Adam (decoupled == 0) / AdamW (decoupled = wd): g' = g + l2*w; m = b1 m + (1-b1) g';
    v = b2 v + (1-b2) g'^2; w -= lr*decoupled*w; w -= lr * mhat / (sqrt(vhat) + eps),
    mhat = m / (1 - b1^step), vhat = v / (1 - b2^step)."""
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    if w.shape[0] < PARALLEL_MIN:
        for i in range(w.shape[0]):
            _adam_one(w, g, m, v, i, lr, beta1, beta2, eps, bc1, bc2, l2, decoupled)
        return
    for i in numba.prange(w.shape[0]):
        _adam_one(w, g, m, v, i, lr, beta1, beta2, eps, bc1, bc2, l2, decoupled)


def adam_update_reference(w, g, m, v, lr, beta1, beta2, eps, step, l2, decoupled):
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    for i in range(w.shape[0]):
        gi = g[i] + l2 * w[i]
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi
        w[i] = w[i] * (1.0 - lr * decoupled) - lr * (m[i] / bc1) / (math.sqrt(v[i] / bc2) + eps)
