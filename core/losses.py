"""Losses. ``softmax_cross_entropy`` is the classifier loss (stable: logits are max-shifted)."""

from __future__ import annotations

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
