"""Gradient checking by centred finite differences (float64).

``numerical_gradient(f, x)``: dF/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h.
``relative_error(a, b)``: max_i |a_i - b_i| / max(|a_i| + |b_i|, floor), floor = 1e-3 * (max|a| +
max|b|) + 1e-12, so entries that are ~0 in both (where finite differences only see rounding noise)
do not blow up the ratio.
``check_layer(layer, x)``: compares a built float64 layer's backward (input, every parameter) with
numerical gradients of the scalar L = sum(forward(x) * r), r a fixed random projection; returns the
max relative error per name ("input", "weight", "bias", ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred differences of scalar ``f()`` w.r.t. array ``x`` (perturbed in place, restored)."""
    grad = np.zeros(x.shape, np.float64)
    flat = x.reshape(-1)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        g[i] = (fp - fm) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Max element-wise relative error with a floor relative to the arrays' scale (see module)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    floor = 1e-3 * (np.abs(a).max() + np.abs(b).max()) + 1e-12
    return float((np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)).max())


def check_layer(
    layer: Any,
    x: np.ndarray,
    *,
    training: bool = False,
    seed: int = 0,
    h: float = 1e-5,
) -> dict[str, float]:
    """Max relative error of ``layer.backward`` vs centred differences, per gradient.

    ``layer`` must be built with dtype float64; ``x`` is (N, *in_shape). The layer's forward must
    be deterministic for fixed inputs (e.g. Dropout only in eval mode).
    """
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    y = layer.forward(x, training=training)
    r = rng.standard_normal(y.shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, training=training) * r))

    params = layer.parameters()
    for p in params.values():
        p.zero_grad()
    layer.forward(x, training=training)
    dx = layer.backward(r)
    analytic = {"input": np.array(dx, np.float64)}
    analytic.update({name: p.grad.copy() for name, p in params.items()})

    errors = {"input": relative_error(analytic["input"], numerical_gradient(loss, x, h))}
    for name, p in params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, p.value, h))
    return errors
