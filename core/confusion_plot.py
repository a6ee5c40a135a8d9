"""The confusion matrix of an evaluation report as a PNG, drawn with matplotlib (Agg).

matplotlib is imported inside :func:`confusion_matrix_image_bytes`, not at module level: the
server imports ``core`` for artifacts but never draws, and importing matplotlib costs ~0.3 s
and ~30 MB it would pay for nothing. No ``pyplot`` either: a ``Figure`` on an Agg canvas keeps
no global state, so drawing from a worker thread or a forked work horse is safe.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.evaluation import EvaluationReport

#: The picture's file name in a model version directory.
CONFUSION_MATRIX_PNG = "confusion_matrix.png"
#: Above this many classes the cells are too small for their counts: colour only.
MAX_LABELLED_CLASSES = 30
#: Above this many classes not every class gets a tick label on the axes.
MAX_TICKED_CLASSES = 60
DPI = 100


def confusion_matrix_image_bytes(report: EvaluationReport) -> bytes:
    """PNG bytes: counts in cells (K <= 30), class names on both axes (rotated when long), a
    colour bar and the accuracy in the title. Rows are true classes, columns predictions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = report.matrix()
    k = report.num_classes
    names = report.class_names
    longest = max(len(name) for name in names)
    side = min(16.0, max(5.0, 1.5 + 0.45 * k))  # inches: ~0.45 in per cell, within 5..16
    margin = min(3.0, 0.08 * longest)  # room for the tick labels
    fig = Figure(figsize=(side + 1.2 + margin, side + margin), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_title(
        f"confusion matrix, {report.split} split ({report.samples:,} images): "
        f"accuracy {report.accuracy:.2%}"
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= MAX_TICKED_CLASSES:
        ax.set_xticks(range(k), labels=names)
        ax.set_yticks(range(k), labels=names)
        if longest > 3 or k > 12:
            for label in ax.get_xticklabels():
                label.set_rotation(45 if longest <= 12 else 90)
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
    if k <= MAX_LABELLED_CLASSES:
        threshold = matrix.max() / 2 if matrix.max() else 1
        size = 10 if k <= 12 else 7
        for i in range(k):
            for j in range(k):
                count = int(matrix[i, j])
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if count > threshold else "black",
                )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def confusion_matrix_png(report: EvaluationReport, path: Path | str) -> Path:
    """Write :func:`confusion_matrix_image_bytes` to ``path`` atomically; returns the path."""
    from core.durable import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, confusion_matrix_image_bytes(report))
    return path
