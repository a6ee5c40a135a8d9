"""The evaluation report: the vectorised counts held to the per-sample reference twin and to
scikit-learn's metrics, worked examples, batching, and clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import (
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from core.datasets import Normalisation
from core.evaluation import (
    EvaluationError,
    EvaluationReport,
    evaluate,
    report_from_logits,
    report_from_logits_reference,
    top_k_values,
)
from core.model import Sequential

ARCH: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 4},
]


def _names(k: int) -> list[str]:
    return [f"class {i}" for i in range(k)]


def _case(
    rng: np.random.Generator, n: int, k: int, *, never_predicted: int = 0, absent: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random logits (n, k) and labels: the first `never_predicted` classes never win argmax,
    the last `absent` classes never occur as labels; some signal so accuracy is not chance."""
    y = rng.integers(0, k - absent, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += rng.uniform(0.0, 2.0, n)
    logits[:, :never_predicted] -= 100.0
    return logits, y


def assert_reports_close(
    fast: EvaluationReport, slow: EvaluationReport, rtol: float = 1e-12
) -> None:
    """Counts exactly equal, fractions and the loss to float64 rounding (or `rtol`)."""
    assert (fast.split, fast.samples, fast.confusion_matrix) == (
        slow.split,
        slow.samples,
        slow.confusion_matrix,
    )
    assert [t.k for t in fast.top_k] == [t.k for t in slow.top_k]
    assert [c.name for c in fast.classes] == [c.name for c in slow.classes]
    assert [c.support for c in fast.classes] == [c.support for c in slow.classes]

    def figures(r: EvaluationReport) -> list[float]:
        return [
            r.accuracy,
            r.macro_precision,
            r.macro_recall,
            r.macro_f1,
            r.loss,
            *(t.accuracy for t in r.top_k),
            *(v for c in r.classes for v in (c.precision, c.recall, c.f1)),
        ]

    np.testing.assert_allclose(figures(fast), figures(slow), rtol=rtol, atol=1e-12)


CASES = [  # (n, k, never predicted, absent)
    (1, 2, 0, 0),
    (50, 2, 0, 0),
    (64, 3, 1, 0),
    (200, 4, 0, 1),
    (300, 10, 2, 3),
    (500, 15, 0, 0),
    (40, 30, 5, 8),
]


@pytest.mark.parametrize(("n", "k", "never", "absent"), CASES)
def test_fast_report_equals_the_reference(n: int, k: int, never: int, absent: int) -> None:
    rng = np.random.default_rng(n * 100 + k)
    logits, y = _case(rng, n, k, never_predicted=never, absent=absent)
    assert_reports_close(
        report_from_logits(logits, y, _names(k)), report_from_logits_reference(logits, y, _names(k))
    )


@pytest.mark.parametrize(("n", "k", "never", "absent"), CASES)
def test_report_agrees_with_scikit_learn(n: int, k: int, never: int, absent: int) -> None:
    rng = np.random.default_rng(n * 7 + k)
    logits, y = _case(rng, n, k, never_predicted=never, absent=absent)
    report = report_from_logits(logits, y, _names(k))
    labels = list(range(k))
    predicted = logits.argmax(axis=1)

    p, r, f, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    np.testing.assert_allclose([c.precision for c in report.classes], p, atol=1e-12)
    np.testing.assert_allclose([c.recall for c in report.classes], r, atol=1e-12)
    np.testing.assert_allclose([c.f1 for c in report.classes], f, atol=1e-12)
    assert [c.support for c in report.classes] == support.tolist()
    macro = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0, average="macro"
    )
    np.testing.assert_allclose(
        [report.macro_precision, report.macro_recall, report.macro_f1], macro[:3], atol=1e-12
    )
    np.testing.assert_array_equal(report.matrix(), confusion_matrix(y, predicted, labels=labels))
    for top in report.top_k:
        if k == 2:  # sklearn takes a binary problem's score as one column, > 0 = class 1
            margin = logits[:, 1] - logits[:, 0]
            expected = top_k_accuracy_score(y, margin, k=top.k, labels=labels)
        else:
            expected = top_k_accuracy_score(y, logits, k=top.k, labels=labels)
        assert top.accuracy == pytest.approx(expected, abs=1e-12)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    # sklearn clips probabilities at float64 eps, so classes pushed 100 nats down differ there
    if never == 0:
        assert report.loss == pytest.approx(log_loss(y, probabilities, labels=labels), rel=1e-9)


def test_never_predicted_and_absent_classes_score_zero_not_nan() -> None:
    rng = np.random.default_rng(3)
    logits, y = _case(rng, 100, 5, never_predicted=1, absent=1)
    report = report_from_logits(logits, y, _names(5))
    never, absent = report.classes[0], report.classes[4]
    assert never.precision == 0.0 and never.f1 == 0.0 and never.support > 0
    assert absent.recall == 0.0 and absent.support == 0
    # macro means run over all five classes, the two zeros included
    assert report.macro_recall == pytest.approx(sum(c.recall for c in report.classes) / 5)


def test_worked_example() -> None:
    # Three classes, four images (logits rows; true labels y):
    #   [3, 1, 0] y=0 -> predicted 0, true class rank 0
    #   [1, 3, 0] y=0 -> predicted 1, rank 1 (class 1 beats it)
    #   [0, 1, 3] y=2 -> predicted 2, rank 0
    #   [0, 3, 1] y=2 -> predicted 1, rank 1
    # Confusion: row 0 = [1, 1, 0], row 1 = [0, 0, 0], row 2 = [0, 1, 1].
    # Precision: class 0 1/1, class 1 0/2, class 2 1/1; recall: 1/2, 0 (absent), 1/2.
    # F1: class 0 2*1*0.5/1.5 = 2/3, class 1 0, class 2 2/3. Top-k: only k = 1 (3 !< 3).
    logits = np.array([[3, 1, 0], [1, 3, 0], [0, 1, 3], [0, 3, 1]], dtype=np.float64)
    y = np.array([0, 0, 2, 2])
    report = report_from_logits(logits, y, ["a", "b", "c"])
    assert report.confusion_matrix == [1, 1, 0, 0, 0, 0, 0, 1, 1]
    assert report.accuracy == 0.5
    assert [(t.k, t.accuracy) for t in report.top_k] == [(1, 0.5)]
    assert [c.precision for c in report.classes] == [1.0, 0.0, 1.0]
    assert [c.recall for c in report.classes] == [0.5, 0.0, 0.5]
    assert [c.f1 for c in report.classes] == pytest.approx([2 / 3, 0.0, 2 / 3])
    assert report.macro_f1 == pytest.approx(4 / 9)
    # Loss: the mean over rows of logsumexp(row) - row[y].
    expected = np.mean(
        [np.log(np.exp(row).sum()) - row[t] for row, t in zip(logits, y, strict=True)]
    )
    assert report.loss == pytest.approx(expected)


def test_ties_follow_argmax_so_top_1_equals_accuracy() -> None:
    # All scores equal: argmax predicts class 0; class i is beaten by the i classes before it,
    # so it is in the top k exactly when i < k. Labels 0..5 over six classes:
    # top-1 = 1/6 (label 0), top-3 = 3/6, top-5 = 5/6.
    logits = np.zeros((6, 6))
    report = report_from_logits(logits, np.arange(6), _names(6))
    assert report.accuracy == pytest.approx(1 / 6)
    assert [(t.k, t.accuracy) for t in report.top_k] == [(1, 1 / 6), (3, 0.5), (5, 5 / 6)]
    assert report.loss == pytest.approx(np.log(6))
    assert_reports_close(report, report_from_logits_reference(logits, np.arange(6), _names(6)))


@pytest.mark.parametrize(("k", "expected"), [(2, (1,)), (3, (1,)), (4, (1, 3)), (6, (1, 3, 5))])
def test_top_k_below_the_class_count(k: int, expected: tuple[int, ...]) -> None:
    assert top_k_values(k) == expected


def _model() -> Sequential:
    return Sequential.from_spec(ARCH, (1, 8, 8), seed=5)


@pytest.mark.parametrize("batch_size", [1, 7, 512])
def test_evaluate_in_batches_equals_one_pass_over_all_logits(batch_size: int) -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 17, (45, 1, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 4, 45)
    norm = Normalisation(mean=[6.0], std=[4.0])
    model = _model()
    batched = evaluate(model, x, y, _names(4), normalisation=norm, batch_size=batch_size)
    whole = report_from_logits(model.logits(norm.apply(x)), y, _names(4))
    # float32 logits of a batch of one and of 45 may differ in the last bits (GEMM blocking)
    assert_reports_close(batched, whole, rtol=1e-6)
    # the model's own accuracy (what model.json's test_accuracy comes from) agrees
    assert batched.accuracy == model.evaluate(norm.apply(x), y).accuracy


def test_evaluate_without_normalisation_takes_model_input() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 20)
    model = _model()
    assert_reports_close(
        evaluate(model, x, y, _names(4)), report_from_logits(model.logits(x), y, _names(4))
    )


@pytest.mark.parametrize(
    ("labels", "names", "batch_size", "message"),
    [
        (np.array([0, 4]), _names(4), 8, "labels span 0..4, outside the classes 0..3"),
        (np.array([0, 1]), _names(3), 8, "3 class names given, the model outputs 4"),
        (np.array([0]), _names(4), 8, "labels have shape (1,), expected (2,)"),
        (np.array([0.0, 1.0]), _names(4), 8, "labels have dtype float64"),
        (np.array([0, 1]), _names(4), 0, "batch_size must be >= 1"),
    ],
)
def test_evaluate_rejects_what_does_not_fit(
    labels: np.ndarray, names: list[str], batch_size: int, message: str
) -> None:
    x = np.zeros((2, 1, 8, 8), dtype=np.uint8)
    with pytest.raises(EvaluationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(_model(), x, labels, names, batch_size=batch_size)


def test_an_empty_split_is_refused() -> None:
    with pytest.raises(EvaluationError, match="no images"):
        report_from_logits(np.zeros((0, 3)), np.zeros(0, dtype=np.int64), _names(3))


def test_non_finite_scores_are_refused_with_a_clear_error() -> None:
    logits = np.array([[np.inf, 0.0], [0.0, 1.0]])
    with pytest.raises(EvaluationError, match="not finite"):
        report_from_logits(logits, np.array([1, 1]), _names(2))


def test_report_json_round_trip_is_exact() -> None:
    logits, y = _case(np.random.default_rng(4), 80, 7)
    report = report_from_logits(logits, y, _names(7))
    assert EvaluationReport.model_validate_json(report.model_dump_json()) == report


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"confusion_matrix": [1, 0, 0]}, "expected K\\*K = 4"),
        ({"samples": 5}, "confusion_matrix counts 4 images, samples is 5"),
        ({"confusion_matrix": [3, 0, 2, -1]}, "confusion_matrix has a negative count, -1"),
        ({"top_k": [{"k": 3, "accuracy": 1.0}]}, "top_k must have distinct ascending k below 2"),
        ({"accuracy": 1.5}, "less than or equal to 1"),
        ({"loss": -1.0}, "greater than or equal to 0"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_reports_are_rejected(change: dict[str, Any], message: str) -> None:
    good = report_from_logits(
        np.array([[1.0, 0], [0, 1], [1, 0], [1, 0]]), [0, 1, 1, 0], ["a", "b"]
    )
    doc = good.model_dump() | change
    with pytest.raises(ValidationError, match=message):
        EvaluationReport.model_validate(doc)
