"""Benchmark: what the evaluation report costs at publish time and at model load.

    python -m bench.evaluation [--repeat 5]

Prints, side by side:
- the report's forward pass (`core.evaluation.evaluate`, batches of 512, normalised per batch)
  against `Sequential.evaluate` on the whole normalised split (what training already does for
  test_accuracy), time and peak Python-heap memory (tracemalloc), on a mnist-5k-sized LeNet
  split of 10,000 random images (28x28);
- the counting kernel against its per-sample reference twin on 10,000 x 10 logits;
- drawing ``confusion_matrix.png`` (matplotlib import included the first time) for K = 10, 100;
- `core.artifacts.read_evaluation` for K = 10, 100, 1000 against `load_artifact` of the
  digits-sized model without it: the share of a server's model load the report adds.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.artifacts import EVALUATION_JSON, load_artifact, make_meta, read_evaluation, save_artifact
from core.confusion_plot import confusion_matrix_image_bytes
from core.datasets import Normalisation
from core.evaluation import evaluate, report_from_logits, report_from_logits_reference
from core.model import Sequential
from core.zoo import lenet5


def best_of(repeat: int, run: Callable[[], Any]) -> float:
    """The fastest of `repeat` runs, seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_bytes(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _random_report(k: int, n: int, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.0
    return report_from_logits(logits, y, [f"class {i}" for i in range(k)])


def forward_pass(repeat: int) -> None:
    rng = np.random.default_rng(0)
    model = Sequential.from_spec(lenet5(), (1, 28, 28), seed=0)
    x = rng.integers(0, 256, (10_000, 1, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 10_000)
    norm = Normalisation(mean=[33.0], std=[78.0])
    names = [str(i) for i in range(10)]

    def report() -> Any:
        return evaluate(model, x, y, names, normalisation=norm)

    def whole() -> Any:
        return model.evaluate(norm.apply(x), y, 512)

    report(), whole()  # compile / warm
    t_report, t_whole = best_of(repeat, report), best_of(repeat, whole)
    m_report, m_whole = peak_bytes(report), peak_bytes(whole)
    print("forward pass, LeNet-5, 10,000 images 28x28:")
    print(f"{'':<34}{'time s':>10}{'peak MiB':>10}")
    print(f"{'evaluate (report, batches of 512)':<34}{t_report:>10.3f}{m_report / 2**20:>10.1f}")
    print(f"{'Sequential.evaluate (whole split)':<34}{t_whole:>10.3f}{m_whole / 2**20:>10.1f}")
    print(f"ratio report/whole: time {t_report / t_whole:.2f}x, memory {m_report / m_whole:.2f}x")


def counting(repeat: int) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(10_000, 10))
    y = rng.integers(0, 10, 10_000)
    names = [str(i) for i in range(10)]
    fast = best_of(repeat, lambda: report_from_logits(logits, y, names))
    slow = best_of(1, lambda: report_from_logits_reference(logits, y, names))
    print(
        f"\ncounting 10,000 x 10 logits: fast {fast * 1e3:.2f} ms, reference {slow * 1e3:.0f} ms "
        f"({slow / fast:.0f}x)"
    )


def drawing() -> None:
    print("\nconfusion_matrix.png:")
    for k in (10, 10, 100):
        report = _random_report(k, 50 * k)
        started = time.perf_counter()
        size = len(confusion_matrix_image_bytes(report))
        print(f"  K = {k:>3}: {time.perf_counter() - started:.3f} s, {size / 1024:.0f} KiB")


def loading(repeat: int) -> None:
    model = Sequential.from_spec(
        [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
        (1, 8, 8),
        seed=0,
    )
    meta = make_meta(
        model,
        name="digits",
        class_names=[str(i) for i in range(10)],
        normalisation=Normalisation(mean=[4.9], std=[6.0]),
        pixel_range=(0.0, 16.0),
    )
    root = Path(tempfile.mkdtemp(prefix="bench-evaluation-"))
    try:
        save_artifact(root / "model", model, meta)
        t_load = best_of(repeat, lambda: load_artifact(root / "model"))
        print(f"\nload_artifact of a digits model (no report): {t_load * 1e3:.2f} ms")
        print(f"{'K':>6}{'file KiB':>10}{'read ms':>10}{'of load':>10}")
        for k in (10, 100, 1000):
            directory = root / f"k{k}"
            directory.mkdir()
            report = _random_report(k, 20 * k)
            (directory / EVALUATION_JSON).write_text(report.model_dump_json())
            t_read = best_of(repeat, functools.partial(read_evaluation, directory))
            size = (directory / EVALUATION_JSON).stat().st_size
            print(f"{k:>6}{size / 1024:>10.0f}{t_read * 1e3:>10.2f}{t_read / t_load:>10.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    args = parser.parse_args(argv)
    forward_pass(args.repeat)
    counting(args.repeat)
    drawing()
    loading(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
