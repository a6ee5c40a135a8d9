"""Losses. ``softmax_cross_entropy`` is the classifier loss (stable: logits are max-shifted);
``mse_loss`` and ``huber_loss`` are the regression losses, each with a plain-loop reference twin
(``*_reference``, the test oracle).

The regression losses follow PyTorch's ``MSELoss`` / ``HuberLoss`` with ``reduction="mean"``:
the element losses are averaged over all N * K elements (not summed over targets), so the
cost of a K-target model does not grow with K.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import ShapeError, SpecError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, max-shifted so exp never overflows."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
) -> tuple[np.ndarray, float, np.ndarray]:
    """Softmax cross-entropy with optional label smoothing.

    logits (N, K) float, labels (N,) ints in [0, K). Target t = (1 - s) * onehot(label) + s / K.
    loss_i = logsumexp(z_i) - sum_k t_ik z_ik; cost = mean_i loss_i;
    dlogits = d cost / d logits = (softmax(z) - t) / N.

    Returns (loss_per_sample (N,), cost, dlogits (N, K)) in the logits' float dtype.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ShapeError(f"logits must have shape (N, K) with N, K >= 1, got {logits.shape}")
    n, k = logits.shape
    if labels.shape != (n,):
        raise ShapeError(
            f"labels must have shape ({n},) to match logits {logits.shape}, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ShapeError(f"labels must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ShapeError(
            f"labels must lie in [0, {k}) for logits {logits.shape}, got range "
            f"[{labels.min()}, {labels.max()}]"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise SpecError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    dtype = logits.dtype if logits.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    z = logits.astype(dtype, copy=False)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    sumexp = e.sum(axis=1)
    logsumexp = np.log(sumexp)
    rows = np.arange(n)
    z_label = z[rows, labels]
    if label_smoothing:
        s = label_smoothing
        loss = logsumexp - (1 - s) * z_label - (s / k) * z.sum(axis=1)
    else:
        loss = logsumexp - z_label
    p = e / sumexp[:, None]
    if label_smoothing:
        p -= label_smoothing / k
        p[rows, labels] -= 1 - label_smoothing
    else:
        p[rows, labels] -= 1
    p /= n
    loss = loss.astype(dtype, copy=False)
    return loss, float(loss.mean(dtype=np.float64)), p.astype(dtype, copy=False)


def _regression_inputs(
    predictions: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """(N, K) predictions and targets in one float dtype (the predictions', float64 else)."""
    predictions = np.asarray(predictions)
    targets = np.asarray(targets)
    if predictions.ndim != 2 or predictions.shape[0] == 0 or predictions.shape[1] == 0:
        raise ShapeError(
            f"predictions must have shape (N, K) with N, K >= 1, got {predictions.shape}"
        )
    if targets.shape != predictions.shape:
        raise ShapeError(
            f"targets must have shape {predictions.shape} to match the predictions, got "
            f"{targets.shape}"
        )
    if targets.dtype.kind != "f":
        raise ShapeError(f"targets must be floats, got dtype {targets.dtype}")
    dtype = (
        predictions.dtype if predictions.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    )
    return predictions.astype(dtype, copy=False), targets.astype(dtype, copy=False), dtype


def mse_loss(predictions: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Mean squared error (PyTorch ``MSELoss``).

    predictions, targets (N, K) float. e = p - t; loss_i = mean_k e_ik^2;
    cost = mean over all N * K elements of e^2 = mean_i loss_i; dpred = 2 e / (N K).

    Returns (loss_per_sample (N,), cost, dpred (N, K)) in the predictions' float dtype.
    """
    p, t, dtype = _regression_inputs(predictions, targets)
    err = p - t
    loss = (err * err).mean(axis=1)
    grad = err * (2.0 / err.size)
    return loss.astype(dtype, copy=False), float(loss.mean(dtype=np.float64)), grad.astype(dtype)


def huber_loss(
    predictions: np.ndarray, targets: np.ndarray, delta: float = 1.0
) -> tuple[np.ndarray, float, np.ndarray]:
    """Huber loss (PyTorch ``HuberLoss(delta)``): quadratic near 0, linear beyond ``delta``.

    e = p - t; element loss = 0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta);
    loss_i = mean_k; cost = mean over all N * K elements; dpred = clip(e, -delta, delta) / (N K).

    Returns (loss_per_sample (N,), cost, dpred (N, K)) in the predictions' float dtype.
    """
    if not (math.isfinite(delta) and delta > 0):
        raise SpecError(f"huber_delta must be a finite number > 0, got {delta}")
    p, t, dtype = _regression_inputs(predictions, targets)
    err = p - t
    abs_err = np.abs(err)
    element = np.where(abs_err <= delta, 0.5 * err * err, delta * (abs_err - 0.5 * delta))
    loss = element.mean(axis=1)
    grad = np.clip(err, -delta, delta) / err.size
    return loss.astype(dtype, copy=False), float(loss.mean(dtype=np.float64)), grad.astype(dtype)


def mse_loss_reference(
    predictions: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """Slow twin of `mse_loss`: plain loops over the elements, float64 arithmetic."""
    p, t, dtype = _regression_inputs(predictions, targets)
    n, k = p.shape
    loss = np.zeros(n)
    grad = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            e = float(p[i, j]) - float(t[i, j])
            loss[i] += e * e / k
            grad[i, j] = 2.0 * e / (n * k)
    return loss.astype(dtype), float(loss.mean()), grad.astype(dtype)


def huber_loss_reference(
    predictions: np.ndarray, targets: np.ndarray, delta: float = 1.0
) -> tuple[np.ndarray, float, np.ndarray]:
    """Slow twin of `huber_loss`: plain loops over the elements, float64 arithmetic."""
    if not (math.isfinite(delta) and delta > 0):
        raise SpecError(f"huber_delta must be a finite number > 0, got {delta}")
    p, t, dtype = _regression_inputs(predictions, targets)
    n, k = p.shape
    loss = np.zeros(n)
    grad = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            e = float(p[i, j]) - float(t[i, j])
            if abs(e) <= delta:
                loss[i] += 0.5 * e * e / k
                grad[i, j] = e / (n * k)
            else:
                loss[i] += delta * (abs(e) - 0.5 * delta) / k
                grad[i, j] = math.copysign(delta, e) / (n * k)
    return loss.astype(dtype), float(loss.mean()), grad.astype(dtype)
