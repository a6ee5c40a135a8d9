"""`cnn models show` prints a regression report: the means, then one row per target."""

from __future__ import annotations

import numpy as np

from cnn_cli.evaluation_render import regression_lines
from core.regression import regression_report


def test_regression_lines_show_the_means_and_every_target() -> None:
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    pred = y + np.array([[0.5, -1.0], [-0.5, 1.0], [0.0, 0.0]])
    report = regression_report(pred, y, ["width", "height"])
    lines = regression_lines(report)
    # width: SSE 0.5, SST 2 -> R² 0.75; height: SSE 2, SST 200 -> R² 0.99; mean 0.87
    assert lines[0].startswith("test split, 3 samples: R² 0.8700, MAE 0.5")
    assert lines[2].split() == ["target", "R²", "MAE", "RMSE"]
    assert lines[3].split()[:2] == ["width", "0.7500"]
    assert lines[4].split()[:2] == ["height", "0.9900"]
