"""Regression: target standardisation, metrics and the evaluation report of a K-target model.

A regression model ends in K units, one per target (float, in target units once un-scaled).
Training runs on *standardised* targets ``(y - mean[k]) / std[k]`` with the per-target mean and
std of the training split (:class:`TargetScaling`, std 0 -> 1): the loss then weighs every target
alike whatever its units, and the network's last layer starts near the right scale. The scaling
is stored in the artifact (``model.json`` ``target_scaling``) and undone by whoever serves the
model, so predictions come out in target units.

Metrics over N samples and K targets, per target k (errors ``e = pred - y``):

- ``mae`` = mean |e|, ``rmse`` = sqrt(mean e^2);
- ``r2`` = 1 - SSE / SST, SSE = sum e^2, SST = sum (y - mean y)^2; a constant target (SST = 0)
  scores 1 when predicted exactly, else 0 (scikit-learn's ``r2_score``, ``force_finite=True``);

and the figures over all targets are the unweighted means of the per-target ones (scikit-learn's
``multioutput="uniform_average"``). `RegressionCounts` folds batches into running sums so memory
stays O(batch + K) whatever N; `regression_report_reference` is the slow twin (plain loops).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import CnnError

if TYPE_CHECKING:
    from core.datasets import Normalisation
    from core.model import Sequential

#: Images per forward pass of `evaluate_regression`.
EVAL_BATCH = 512

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class RegressionError(CnnError, ValueError):
    """Predictions, targets or target names that cannot be evaluated together."""


class TargetScaling(BaseModel):
    """Per-target ``(y - mean[k]) / std[k]``: what the network is trained to output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[Finite] = Field(min_length=1)
    std: list[Finite] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> TargetScaling:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"target_scaling.mean and .std need one value per target, got {len(self.mean)} "
                f"and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"target_scaling.std must be > 0, got {self.std}")
        return self

    @classmethod
    def of(cls, y: np.ndarray) -> TargetScaling:
        """Mean and std per column of targets ``y`` (N, K) (a std below 1e-6 becomes 1)."""
        values = np.asarray(y, dtype=np.float64)
        std = values.std(axis=0)
        return cls(mean=values.mean(axis=0).tolist(), std=np.where(std > 1e-6, std, 1.0).tolist())

    def apply(self, y: np.ndarray) -> np.ndarray:
        """Targets (N, K) in their units -> standardised float32 (N, K)."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return ((np.asarray(y, dtype=np.float64) - mean) / std).astype(np.float32)

    def undo(self, z: np.ndarray) -> np.ndarray:
        """Network outputs (N, K) -> predictions in target units, float32 (N, K)."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return (np.asarray(z, dtype=np.float64) * std + mean).astype(np.float32)


class TargetMetrics(BaseModel):
    """MAE, RMSE and R² of one target on the split (in the target's units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mae: NonNegative
    rmse: NonNegative
    r2: Finite


class RegressionReport(BaseModel):
    """How a regression model did on a split (``evaluation.json`` with ``"task": "regression"``;
    see the module docstring for the formulas)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["regression"] = "regression"
    split: str = "test"
    samples: Annotated[int, Field(ge=1)]
    targets: list[TargetMetrics] = Field(min_length=1)
    mae: NonNegative
    rmse: NonNegative
    r2: Finite

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]


@dataclass
class RegressionCounts:
    """Running per-target sums over batches (float64): enough for MAE, RMSE and R²."""

    num_targets: int
    samples: int = 0
    abs_err: np.ndarray = field(init=False)
    sq_err: np.ndarray = field(init=False)
    y_sum: np.ndarray = field(init=False)
    y_sq_sum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        k = self.num_targets
        self.abs_err, self.sq_err = np.zeros(k), np.zeros(k)
        self.y_sum, self.y_sq_sum = np.zeros(k), np.zeros(k)

    def add(self, predictions: np.ndarray, y: np.ndarray) -> None:
        """Fold in one batch: predictions and targets (n, K), both in target units."""
        p = np.asarray(predictions, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64)
        err = p - t
        self.samples += t.shape[0]
        self.abs_err += np.abs(err).sum(axis=0)
        self.sq_err += (err * err).sum(axis=0)
        self.y_sum += t.sum(axis=0)
        self.y_sq_sum += (t * t).sum(axis=0)

    def to_json(self) -> dict[str, Any]:
        """The sums as plain lists (a training checkpoint keeps them for an exact resume)."""
        return {
            "samples": self.samples,
            "abs_err": self.abs_err.tolist(),
            "sq_err": self.sq_err.tolist(),
            "y_sum": self.y_sum.tolist(),
            "y_sq_sum": self.y_sq_sum.tolist(),
        }

    @classmethod
    def from_json(cls, num_targets: int, data: dict[str, Any]) -> RegressionCounts:
        counts = cls(num_targets, samples=int(data["samples"]))
        for name in ("abs_err", "sq_err", "y_sum", "y_sq_sum"):
            setattr(counts, name, np.asarray(data[name], dtype=np.float64))
        return counts

    def report(self, target_names: Sequence[str], split: str = "test") -> RegressionReport:
        """The report of everything added so far.

        Raises:
            RegressionError: nothing was added, names do not number K, non-finite predictions.
        """
        k, n = self.num_targets, self.samples
        if len(target_names) != k:
            raise RegressionError(f"{len(target_names)} target names given for {k} targets")
        if n == 0:
            raise RegressionError(f"the {split} split has no samples to evaluate")
        if not np.all(np.isfinite(self.sq_err)):
            raise RegressionError(f"the model's predictions on the {split} split are not finite")
        mae = self.abs_err / n
        rmse = np.sqrt(self.sq_err / n)
        # SST = sum y^2 - (sum y)^2 / n; clipped at 0 against rounding
        sst = np.maximum(self.y_sq_sum - self.y_sum * self.y_sum / n, 0.0)
        tiny = 1e-12 * np.maximum(self.y_sq_sum, 1.0)
        r2 = np.where(
            sst > tiny,
            1.0 - self.sq_err / np.where(sst > tiny, sst, 1.0),
            np.where(self.sq_err <= tiny, 1.0, 0.0),
        )
        return RegressionReport(
            split=split,
            samples=n,
            targets=[
                TargetMetrics(name=str(name), mae=mae[i], rmse=rmse[i], r2=r2[i])
                for i, name in enumerate(target_names)
            ],
            mae=float(mae.mean()),
            rmse=float(rmse.mean()),
            r2=float(r2.mean()),
        )


def _check_pair(predictions: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(predictions), np.asarray(y)
    if t.ndim == 1:
        t = t[:, None]
    if p.ndim != 2 or t.shape != p.shape or p.shape[0] == 0:
        raise RegressionError(
            f"predictions {p.shape} and targets {np.asarray(y).shape} must both be (N, K), N >= 1"
        )
    return p, t


def regression_report(
    predictions: np.ndarray, y: np.ndarray, target_names: Sequence[str], split: str = "test"
) -> RegressionReport:
    """The report of ``predictions`` (N, K) against targets ``y`` (N, K), vectorised.

    Raises:
        RegressionError: shapes disagree, no samples, K != len(target_names).
    """
    p, t = _check_pair(predictions, y)
    counts = RegressionCounts(p.shape[1])
    counts.add(p, t)
    return counts.report(target_names, split)


def regression_report_reference(
    predictions: np.ndarray, y: np.ndarray, target_names: Sequence[str], split: str = "test"
) -> RegressionReport:
    """Slow twin of `regression_report`: plain loops, two passes (mean first) for SST."""
    p, t = _check_pair(predictions, y)
    n, k = p.shape
    if len(target_names) != k:
        raise RegressionError(f"{len(target_names)} target names given for {k} targets")
    per_target = []
    for j in range(k):
        ys = [float(t[i, j]) for i in range(n)]
        errs = [float(p[i, j]) - ys[i] for i in range(n)]
        mean_y = sum(ys) / n
        sse = sum(e * e for e in errs)
        sst = sum((v - mean_y) ** 2 for v in ys)
        if sst > 1e-12 * max(sum(v * v for v in ys), 1.0):
            r2 = 1.0 - sse / sst
        else:
            r2 = 1.0 if sse == 0 else 0.0
        per_target.append(
            TargetMetrics(
                name=str(target_names[j]),
                mae=sum(abs(e) for e in errs) / n,
                rmse=math.sqrt(sse / n),
                r2=r2,
            )
        )
    return RegressionReport(
        split=split,
        samples=n,
        targets=per_target,
        mae=sum(m.mae for m in per_target) / k,
        rmse=sum(m.rmse for m in per_target) / k,
        r2=sum(m.r2 for m in per_target) / k,
    )


def evaluate_regression(
    model: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    target_names: Sequence[str],
    scaling: TargetScaling,
    *,
    normalisation: Normalisation | None = None,
    batch_size: int = EVAL_BATCH,
    split: str = "test",
) -> RegressionReport:
    """Run ``model`` over images ``x`` (N, C, H, W) in batches; report its un-scaled predictions
    against targets ``y`` (N, K) in target units. ``normalisation``: as in
    `core.evaluation.evaluate` (raw pixels normalised a batch at a time).

    Raises:
        RegressionError: targets or names that do not fit the model, no samples, batch_size < 1.
    """
    if batch_size < 1:
        raise RegressionError(f"batch_size must be >= 1, got {batch_size}")
    k = model.num_classes
    targets = np.asarray(y)
    if targets.ndim == 1:
        targets = targets[:, None]
    images = np.asarray(x)
    if targets.ndim != 2 or targets.shape[1] != k or targets.shape[0] != images.shape[0]:
        raise RegressionError(
            f"targets have shape {np.asarray(y).shape}, expected ({images.shape[0]}, {k}) for "
            f"the model's {k} outputs"
        )
    counts = RegressionCounts(k)
    for start in range(0, targets.shape[0], batch_size):
        batch = images[start : start + batch_size]
        if normalisation is not None:
            batch = normalisation.apply(batch)
        outputs = model.logits(batch, batch_size)
        counts.add(scaling.undo(outputs), targets[start : start + batch_size])
    return counts.report(target_names, split)
