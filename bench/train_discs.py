"""Benchmark: the disc regression (centre x, y and radius of a drawn disc) from upload to model.

    python -m bench.train_discs [--samples 800] [--epochs 10]

Generates the disc data set of the tests (`tests.support.discs`: 32x32 grey images of one
anti-aliased disc, radius 3..8 px), stores it as an ``.npz`` upload, trains it with the worker's
training function (`worker.train.run_training`, the spec of `tests.support.regression_run`:
MSE on standardised targets, Adam 3e-3, batch 32) and prints side by side the time of each
stage and, on the seeded held-out 20%, R², MAE and RMSE per target and their means, next to
the R² the tests require (`DISC_MIN_R2`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from core.artifacts import load_artifact
from core.regression import RegressionReport
from tests.support import regression_run
from tests.support.regression_run import DISC_MIN_R2, train_discs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=regression_run.DISC_SAMPLES)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    regression_run.DISC_SAMPLES = args.samples
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = train_discs(Path(tmp), epochs=args.epochs)
        total = time.perf_counter() - started
        report = load_artifact(run.outcome.path).evaluation
    assert isinstance(report, RegressionReport)
    timings = run.outcome.timings
    print(f"discs: {args.samples} samples 32x32, {args.epochs} epochs, test split {report.samples}")
    print(
        f"time:  load {timings['load_data_s']:.2f} s  fit {timings['fit_s']:.2f} s  "
        f"evaluate {timings['evaluate_s']:.2f} s  total with upload and publish {total:.2f} s"
    )
    print(f"{'target':<8}{'R²':>8}{'MAE px':>10}{'RMSE px':>10}")
    for target in report.targets:
        print(f"{target.name:<8}{target.r2:8.4f}{target.mae:10.3f}{target.rmse:10.3f}")
    print(f"{'mean':<8}{report.r2:8.4f}{report.mae:10.3f}{report.rmse:10.3f}")
    margin = report.r2 - DISC_MIN_R2
    print(f"R² {report.r2:.4f} vs the tests' threshold {DISC_MIN_R2}: margin {margin:+.4f}")


if __name__ == "__main__":
    main()
