"""The evaluation report of a model on a labelled split: the held-out test set at publish time.

A report holds, over K classes and N images (``cnn.v1.EvaluationReport`` mirrors it field for
field):

- ``accuracy`` = top-1 hits / N and ``top_k`` for k = 1, 3, 5 below K. The true class i of an
  image is *beaten* by class j when ``score[j] > score[i]``, or ``score[j] == score[i]`` and
  ``j < i`` (the tie-break of ``argmax``, so top-1 equals accuracy); it is in the top k when
  fewer than k classes beat it.
- per class i: ``precision`` = C[i, i] / column sum, ``recall`` = C[i, i] / row sum (0 when the
  sum is 0), ``f1`` = 2PR / (P + R) (0 when both are 0), ``support`` = row sum; the macro
  figures are unweighted means over all K classes, classes absent from the split included (as
  scikit-learn's ``precision_recall_fscore_support(labels=range(K), zero_division=0)``).
- ``confusion_matrix``: C (K, K) row-major, C[i, j] = images of true class i predicted as j.
- ``loss``: mean cross-entropy -log softmax(logits)[y] in nats.

A regression model's report is a `core.regression.RegressionReport` (MAE, RMSE, R² per target);
``evaluation.json`` tells the two apart by its ``"task"`` (absent in reports written before
regression existed: those are classification reports), see `parse_report`.

`evaluate` runs the forward pass in batches and folds each batch into `EvaluationCounts`, so
memory stays O(batch + K²) whatever N. `report_from_logits` is the counting kernel on given
logits; `report_from_logits_reference` is its slow twin (plain loops over samples), the oracle
of the tests. Nothing here imports the network code: the client library decodes reports too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import CnnError
from core.regression import RegressionReport

if TYPE_CHECKING:
    from core.datasets import Normalisation
    from core.model import Sequential

#: The k of top-k accuracy, kept when k < K (top-K of K classes is always 1).
TOP_K = (1, 3, 5)
#: Images per forward pass of `evaluate`.
EVAL_BATCH = 512

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class EvaluationError(CnnError, ValueError):
    """The images, labels or class names cannot be evaluated together."""


class ClassMetrics(BaseModel):
    """Precision, recall and F1 of one class on the split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    precision: Fraction
    recall: Fraction
    f1: Fraction
    support: Annotated[int, Field(ge=0)]


class TopKAccuracy(BaseModel):
    """The fraction of images whose true class is among the k best scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: Annotated[int, Field(ge=1)]
    accuracy: Fraction


class EvaluationReport(BaseModel):
    """How a model did on a labelled split (``evaluation.json``; see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["classification"] = "classification"
    split: str = "test"
    samples: Annotated[int, Field(ge=1)]
    accuracy: Fraction
    top_k: list[TopKAccuracy]
    classes: list[ClassMetrics] = Field(min_length=2)
    macro_precision: Fraction
    macro_recall: Fraction
    macro_f1: Fraction
    #: K x K, row-major: [i * K + j] = images of true class i predicted as class j.
    confusion_matrix: list[int]  # checked >= 0 in `_consistent`, with NumPy: K may be 1,000
    loss: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def matrix(self) -> np.ndarray:
        """The confusion matrix as an int64 array (K, K): rows true classes, columns predicted."""
        k = self.num_classes
        flat = np.fromiter(self.confusion_matrix, dtype=np.int64, count=len(self.confusion_matrix))
        return flat.reshape(k, k)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationReport:
        k = self.num_classes
        if len(self.confusion_matrix) != k * k:
            raise ValueError(
                f"confusion_matrix has {len(self.confusion_matrix)} entries, expected K*K = "
                f"{k * k} for {k} classes"
            )
        matrix = self.matrix()
        if matrix.size and matrix.min() < 0:
            raise ValueError(f"confusion_matrix has a negative count, {matrix.min()}")
        if int(matrix.sum()) != self.samples:
            raise ValueError(
                f"confusion_matrix counts {int(matrix.sum())} images, samples is {self.samples}"
            )
        rows = matrix.sum(axis=1)
        supports = [c.support for c in self.classes]
        if rows.tolist() != supports:
            raise ValueError(
                f"classes[].support {supports} differ from the confusion matrix row sums "
                f"{rows.tolist()}"
            )
        ks = [t.k for t in self.top_k]
        if ks != sorted(set(ks)) or any(kk >= k for kk in ks):
            raise ValueError(f"top_k must have distinct ascending k below {k} classes, got {ks}")
        return self


#: The report of either task, as ``evaluation.json`` holds it.
Report = EvaluationReport | RegressionReport


def parse_report(raw: bytes | str) -> Report:
    """An ``evaluation.json`` document as the report of its ``"task"`` (classification when
    the key is absent).

    Raises:
        pydantic.ValidationError: not JSON, or fields that do not fit the task's report.
    """
    import json

    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and doc.get("task") == "regression":
        return RegressionReport.model_validate(doc)
    return EvaluationReport.model_validate_json(raw)


def top_k_values(num_classes: int) -> tuple[int, ...]:
    """The k reported for K classes: those of `TOP_K` below K (K = 2: (1,); K = 10: 1, 3, 5)."""
    return tuple(k for k in TOP_K if k < num_classes)


@dataclass
class EvaluationCounts:
    """Running counts over batches: confusion matrix, top-k hits, summed loss."""

    num_classes: int
    confusion: np.ndarray = field(init=False)
    top_k_hits: dict[int, int] = field(init=False)
    loss_sum: float = 0.0

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.top_k_hits = dict.fromkeys(top_k_values(self.num_classes), 0)

    @property
    def samples(self) -> int:
        return int(self.confusion.sum())

    def add(self, logits: np.ndarray, y: np.ndarray) -> None:
        """Fold in one batch: ``logits`` (n, K) (or probabilities: any monotone scores give the
        same counts, only ``loss`` needs logits), ``y`` (n,) labels in 0..K-1."""
        k = self.num_classes
        scores = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(y, dtype=np.int64)
        n = labels.shape[0]
        if n == 0:
            return
        predicted = scores.argmax(axis=1)
        self.confusion += np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
        true_score = scores[np.arange(n), labels][:, None]
        columns = np.arange(k)[None, :]
        beaten_by = (scores > true_score) | ((scores == true_score) & (columns < labels[:, None]))
        rank = beaten_by.sum(axis=1)  # 0 = the true class has the best score
        for top in self.top_k_hits:
            self.top_k_hits[top] += int((rank < top).sum())
        top_score = scores.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite: refused by `report`
            log_norm = np.log(np.exp(scores - top_score).sum(axis=1)) + top_score[:, 0]
            self.loss_sum += float((log_norm - true_score[:, 0]).sum())

    def report(self, class_names: Sequence[str], split: str = "test") -> EvaluationReport:
        """The report of everything added so far.

        Raises:
            EvaluationError: nothing was added, or the class names do not number K.
        """
        k = self.num_classes
        if len(class_names) != k:
            raise EvaluationError(f"{len(class_names)} class names given for {k} classes")
        n = self.samples
        if n == 0:
            raise EvaluationError(f"the {split} split has no images to evaluate")
        loss = self.loss_sum / n
        if not math.isfinite(loss):
            raise EvaluationError(f"the model's scores on the {split} split are not finite")
        c = self.confusion
        tp = np.diag(c).astype(np.float64)
        predicted = c.sum(axis=0)
        support = c.sum(axis=1)
        precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros(k), where=both > 0)
        return EvaluationReport(
            split=split,
            samples=n,
            accuracy=float(tp.sum() / n),
            top_k=[TopKAccuracy(k=t, accuracy=hits / n) for t, hits in self.top_k_hits.items()],
            classes=[
                ClassMetrics(
                    name=str(name),
                    precision=float(precision[i]),
                    recall=float(recall[i]),
                    f1=float(f1[i]),
                    support=int(support[i]),
                )
                for i, name in enumerate(class_names)
            ],
            macro_precision=float(precision.mean()),
            macro_recall=float(recall.mean()),
            macro_f1=float(f1.mean()),
            confusion_matrix=c.ravel().tolist(),
            loss=max(0.0, loss),  # rounding may leave -1e-17 for a perfect fit
        )


def _check_labels(y: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise EvaluationError(f"labels have shape {labels.shape}, expected ({n},)")
    if labels.dtype.kind not in "iu":
        raise EvaluationError(f"labels have dtype {labels.dtype}, expected integers")
    if n == 0:
        raise EvaluationError("no images to evaluate (the split is empty)")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise EvaluationError(f"labels span {lo}..{hi}, outside the classes 0..{num_classes - 1}")
    return labels.astype(np.int64)


def report_from_logits(
    logits: np.ndarray, y: np.ndarray, class_names: Sequence[str], split: str = "test"
) -> EvaluationReport:
    """The report of scores ``logits`` (N, K) against labels ``y`` (N,), vectorised.

    Raises:
        EvaluationError: shapes disagree, labels outside 0..K-1, no images, K != len(class_names).
    """
    scores = np.asarray(logits)
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise EvaluationError(
            f"logits have shape {scores.shape}, expected (N, {len(class_names)}) for the classes"
        )
    labels = _check_labels(y, scores.shape[0], scores.shape[1])
    counts = EvaluationCounts(scores.shape[1])
    counts.add(scores, labels)
    return counts.report(class_names, split)


def report_from_logits_reference(
    logits: np.ndarray, y: np.ndarray, class_names: Sequence[str], split: str = "test"
) -> EvaluationReport:
    """Slow twin of `report_from_logits`: one sample at a time, plain Python arithmetic."""
    scores = np.asarray(logits, dtype=np.float64).tolist()
    labels = [int(v) for v in np.asarray(y)]
    k = len(class_names)
    if not scores or len(scores) != len(labels) or any(len(row) != k for row in scores):
        raise EvaluationError("logits must be (N, K) with N = len(y) >= 1 and K class names")
    if any(not 0 <= label < k for label in labels):
        raise EvaluationError(f"labels outside the classes 0..{k - 1}")
    n = len(labels)
    confusion = [[0] * k for _ in range(k)]
    hits = dict.fromkeys(top_k_values(k), 0)
    loss = 0.0
    for row, label in zip(scores, labels, strict=True):
        best = 0
        for j in range(1, k):
            if row[j] > row[best]:
                best = j
        confusion[label][best] += 1
        beaten_by = sum(
            1 for j in range(k) if row[j] > row[label] or (row[j] == row[label] and j < label)
        )
        for top in hits:
            if beaten_by < top:
                hits[top] += 1
        top_score = max(row)
        loss += math.log(sum(math.exp(v - top_score) for v in row)) + top_score - row[label]
    per_class = []
    for i in range(k):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(k))
        support = sum(confusion[i])
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_class.append(
            ClassMetrics(name=str(class_names[i]), precision=p, recall=r, f1=f, support=support)
        )
    return EvaluationReport(
        split=split,
        samples=n,
        accuracy=sum(confusion[i][i] for i in range(k)) / n,
        top_k=[TopKAccuracy(k=top, accuracy=count / n) for top, count in hits.items()],
        classes=per_class,
        macro_precision=sum(c.precision for c in per_class) / k,
        macro_recall=sum(c.recall for c in per_class) / k,
        macro_f1=sum(c.f1 for c in per_class) / k,
        confusion_matrix=[v for row in confusion for v in row],
        loss=max(0.0, loss / n),
    )


def evaluate(
    model: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    normalisation: Normalisation | None = None,
    batch_size: int = EVAL_BATCH,
    split: str = "test",
) -> EvaluationReport:
    """Run ``model`` over images ``x`` (N, C, H, W) in batches and report against ``y`` (N,).

    With ``normalisation`` the images are raw pixels, normalised one batch at a time (so no
    float copy of the whole split is made); without, they are model input already.

    Raises:
        EvaluationError: labels or class names do not fit the model, no images, batch_size < 1.
        ShapeError: the images do not fit the model's input.
    """
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    if len(class_names) != model.num_classes:
        raise EvaluationError(
            f"{len(class_names)} class names given, the model outputs {model.num_classes} scores"
        )
    images = np.asarray(x)
    labels = _check_labels(y, images.shape[0] if images.ndim else 0, model.num_classes)
    counts = EvaluationCounts(model.num_classes)
    for start in range(0, labels.shape[0], batch_size):
        batch = images[start : start + batch_size]
        if normalisation is not None:
            batch = normalisation.apply(batch)  # float32, as `core.training` evaluates
        counts.add(model.logits(batch, batch_size), labels[start : start + batch_size])
    return counts.report(class_names, split)
