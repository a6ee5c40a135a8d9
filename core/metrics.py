"""Classification metrics: accuracy, per-class precision/recall, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metrics:
    """Metrics of predictions against labels over K classes.

    ``confusion[i, j]`` counts samples of true class i predicted as j. Precision of class j =
    confusion[j, j] / column sum (0 when nothing was predicted as j); recall of class i =
    confusion[i, i] / row sum (0 when class i is absent).
    """

    accuracy: float
    precision: list[float]
    recall: list[float]
    confusion: np.ndarray  # (K, K) int64
    loss: float | None = None

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for model.json and job results)."""
        out: dict[str, Any] = {
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "confusion": self.confusion.tolist(),
            "count": self.count,
        }
        if self.loss is not None:
            out["loss"] = self.loss
        return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, loss: float | None = None
) -> Metrics:
    """Metrics of integer predictions ``y_pred`` (N,) against ``y_true`` (N,), classes 0..K-1."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D shapes"
        )
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got {y_true.min()}..{y_true.max()}"
        )
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    diag = np.diag(confusion).astype(np.float64)
    col = confusion.sum(axis=0)
    row = confusion.sum(axis=1)
    precision = np.divide(diag, col, out=np.zeros_like(diag), where=col > 0)
    recall = np.divide(diag, row, out=np.zeros_like(diag), where=row > 0)
    accuracy = float(diag.sum() / max(1, y_true.size))
    return Metrics(accuracy, precision.tolist(), recall.tolist(), confusion, loss)
