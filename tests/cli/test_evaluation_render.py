"""`cnn_cli.evaluation_render` and the MODEL[:V] argument of `cnn models show`, worked out by
hand for fixed reports."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli import evaluation_render as render
from cnn_cli.errors import CliError
from cnn_cli.models import parse_model_ref
from core.evaluation import EvaluationReport, report_from_logits

# Three classes, four images: confusion rows [1, 1, 0], [0, 0, 0], [0, 1, 1] (rows true class).
LOGITS = np.array([[3, 1, 0], [1, 3, 0], [0, 1, 3], [0, 3, 1]], dtype=np.float64)
LABELS = np.array([0, 0, 2, 2])


def _report() -> EvaluationReport:
    return report_from_logits(LOGITS, LABELS, ["cat", "dog", "bird"])


def test_headline_gives_accuracy_top_k_loss_and_macro_figures() -> None:
    report = _report()
    # three classes: only top-1 is reported, and the headline's accuracy is it
    first, second = render.headline(report)
    assert first == f"test split, 4 images: accuracy 0.500, loss {report.loss:.4f}"
    # precision (1 + 0 + 1) / 3, recall (0.5 + 0 + 0.5) / 3, F1 (2/3 + 0 + 2/3) / 3
    assert second == "macro precision 0.667, recall 0.333, F1 0.444"


def test_class_table_has_one_row_per_class() -> None:
    assert render.class_table(_report()) == [
        "class  precision  recall     F1  support",
        "cat        1.000   0.500  0.667        2",
        "dog        0.000   0.000  0.000        0",
        "bird       1.000   0.500  0.667        2",
    ]


def test_small_matrices_print_as_a_grid() -> None:
    # label column: len("true \\ predicted") = 16; cells: widest count or index + 1 = 2
    assert render.confusion_grid(_report()) == [
        "true \\ predicted 0 1 2",
        "0 cat            1 1 0",
        "1 dog            0 0 0",
        "2 bird           0 1 1",
    ]
    assert "confusion matrix (rows: true class" in render.render_details(_report())


def test_large_matrices_print_the_top_confusions_instead() -> None:
    k = 13
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(k), 10)
    logits = np.eye(k)[y] * 5.0
    logits[:7, 4] = 9.0  # seven images of class 0 taken for class 4
    logits[10:13, 2] = 9.0  # three of class 1 for class 2
    report = report_from_logits(
        logits + rng.normal(0, 0.01, logits.shape), y, list("abcdefghijklm")
    )
    text = render.render_details(report)
    assert "confusion matrix" not in text
    assert render.top_confusions(report) == [
        "a -> e: 7 (70.0% of its class)",
        "b -> c: 3 (30.0% of its class)",
    ]
    assert "top confusions (true -> predicted: images), of 13 classes" in text


def test_a_perfect_model_has_no_confusions() -> None:
    report = report_from_logits(np.eye(3), np.arange(3), ["a", "b", "c"])
    assert render.top_confusions(report) == ["no image was misclassified"]


@pytest.mark.parametrize(
    ("ref", "version", "expected"),
    [("digits", 0, ("digits", 0)), ("digits:3", 0, ("digits", 3)), ("digits:3", 3, ("digits", 3)),
     ("digits", 2, ("digits", 2))],
)  # fmt: skip
def test_model_ref_takes_an_optional_version(
    ref: str, version: int, expected: tuple[str, int]
) -> None:
    assert parse_model_ref(ref, version) == expected


@pytest.mark.parametrize(
    ("ref", "version", "message"),
    [
        ("digits:x", 0, "the version after ':' must be >= 1, got 'x'"),
        ("digits:0", 0, "must be >= 1, got '0'"),
        ("digits:2", 3, "'digits:2' and --version 3 name different versions"),
        ("digits", -1, "--version must be >= 1"),
    ],
)
def test_model_ref_errors_name_the_argument(ref: str, version: int, message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(")):
        parse_model_ref(ref, version)
