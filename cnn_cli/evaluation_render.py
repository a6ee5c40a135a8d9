"""The evaluation report of a model version as plain text for `cnn models show`.

Headline figures, a per-class table, then the confusion matrix: as a grid when it fits a
terminal (K <= 12 classes), otherwise the largest off-diagonal cells ("top confusions").
"""

from __future__ import annotations

from core.evaluation import EvaluationReport
from core.regression import RegressionReport

#: Up to this many classes the whole confusion matrix is printed as a grid.
MAX_GRID_CLASSES = 12
#: How many of the largest mistakes are listed instead of a grid.
TOP_CONFUSIONS = 10
NAME_WIDTH = 24
CORNER = "true \\ predicted"


def _name(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def headline(report: EvaluationReport) -> list[str]:
    """Two lines: split, images, accuracy, top-k and loss; then the macro averages."""
    top_k = "".join(f", top-{t.k} {t.accuracy:.3f}" for t in report.top_k if t.k > 1)
    return [
        f"{report.split} split, {report.samples:,} images: accuracy {report.accuracy:.3f}"
        f"{top_k}, loss {report.loss:.4f}",
        f"macro precision {report.macro_precision:.3f}, recall {report.macro_recall:.3f}, "
        f"F1 {report.macro_f1:.3f}",
    ]


def regression_lines(report: RegressionReport) -> list[str]:
    """A regression report: the headline (means over targets), then one row per target."""
    width = max(6, *(len(_name(t.name)) for t in report.targets))
    lines = [
        f"{report.split} split, {report.samples:,} samples: R² {report.r2:.4f}, "
        f"MAE {report.mae:.4g}, RMSE {report.rmse:.4g} (means over {len(report.targets)} "
        "targets)",
        "",
        f"{'target':<{width}}         R²         MAE        RMSE",
    ]
    for t in report.targets:
        lines.append(f"{_name(t.name):<{width}}  {t.r2:9.4f}  {t.mae:10.4g}  {t.rmse:10.4g}")
    return lines


def class_table(report: EvaluationReport) -> list[str]:
    """One row per class: precision, recall, F1 and support."""
    width = max(5, *(len(_name(c.name)) for c in report.classes))
    lines = [f"{'class':<{width}}  precision  recall     F1  support"]
    for c in report.classes:
        lines.append(
            f"{_name(c.name):<{width}}  {c.precision:9.3f}  {c.recall:6.3f}  {c.f1:5.3f}  "
            f"{c.support:7,}"
        )
    return lines


def confusion_grid(report: EvaluationReport) -> list[str]:
    """The K x K counts; columns are headed by class index, rows by index and name."""
    matrix = report.matrix()
    k = report.num_classes
    cell = max(len(str(int(matrix.max()))), len(str(k - 1))) + 1
    names = [  # the index heads the column: the name repeats it unless they are the same
        name if name == str(i) else f"{i} {_name(name, 16)}"
        for i, name in enumerate(report.class_names)
    ]
    label = max(len(CORNER), *(len(n) for n in names))
    lines = [f"{CORNER:<{label}}" + "".join(f"{j:>{cell}}" for j in range(k))]
    for i in range(k):
        lines.append(f"{names[i]:<{label}}" + "".join(f"{int(v):>{cell}}" for v in matrix[i]))
    return lines


def top_confusions(report: EvaluationReport, limit: int = TOP_CONFUSIONS) -> list[str]:
    """The `limit` largest off-diagonal cells, largest first (ties: by true, then predicted)."""
    matrix = report.matrix()
    names = report.class_names
    cells = [
        (int(matrix[i, j]), i, j)
        for i in range(len(names))
        for j in range(len(names))
        if i != j and matrix[i, j] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    if not cells:
        return ["no image was misclassified"]
    lines = []
    for count, i, j in cells[:limit]:
        share = count / report.classes[i].support
        lines.append(
            f"{_name(names[i])} -> {_name(names[j])}: {count:,} ({share:.1%} of its class)"
        )
    return lines


def render_details(report: EvaluationReport) -> str:
    """The per-class table, then the confusion grid or the top confusions (no final newline)."""
    lines = [*class_table(report), ""]
    if report.num_classes <= MAX_GRID_CLASSES:
        lines += ["confusion matrix (rows: true class, columns: predicted class)"]
        lines += confusion_grid(report)
    else:
        lines += [f"top confusions (true -> predicted: images), of {report.num_classes} classes"]
        lines += ["  " + line for line in top_confusions(report)]
    return "\n".join(lines)
