"""Benchmark: what writing TensorBoard event files costs a training run.

    python -m bench.tensorboard_overhead [--dataset mnist-5k] [--epochs 2] [--pairs 5]

Trains LeNet-5 (`core.zoo.lenet5`, Adam 1e-3, batch 64, 10% validation) with `core.training.fit`
the same way twice per pair: without event files, and with the worker's event log
(`worker.training_events.TrainingEvents` with the defaults of ``"tensorboard": true``: scalars
every step, histograms of every parameter and kernel images every epoch). The two runs of a
pair are interleaved and their order alternates from pair to pair, so load from other
processes on a shared machine falls on both. Each run's rate is its training images over the
whole `fit` (validation, epoch ends, final metrics and the writer's last flush included), by the
wall clock and by the process's CPU time (every thread: the event writer's too). On a shared
machine the wall clock mostly measures the neighbours, so the target (slowdown <= 5%) is judged
on CPU time, with the wall-clock figures printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.datasets import Dataset, load_dataset
from core.model import Sequential
from core.training import Progress, TrainConfig, fit
from core.zoo import lenet5
from jobs.spec import TensorBoardOptions
from worker.training_events import TrainingEvents

TARGET_SLOWDOWN = 0.05


@dataclass(frozen=True)
class Run:
    """One training run: images per wall-clock second and per CPU second, event bytes."""

    wall_ips: float
    cpu_ips: float
    event_bytes: int
    #: CPU seconds the training thread spent in the event log (callback and close) and the
    #: share of the run's CPU seconds that is
    log_cpu_s: float = 0.0
    log_share: float = 0.0


def one_run(data: Dataset, config: TrainConfig, log_dir: Path | None) -> Run:
    """Train a fresh seeded LeNet-5, with event files in `log_dir` when given."""
    model = Sequential.from_spec(lenet5(), data.input_shape, seed=0)
    started, cpu0 = time.perf_counter(), time.process_time()
    spent = 0.0  # CPU of this thread inside the event log

    def logged(report: Progress) -> None:
        nonlocal spent
        assert events is not None
        t0 = time.thread_time()
        events(report)
        spent += time.thread_time() - t0

    events = TrainingEvents(log_dir, model, TensorBoardOptions()) if log_dir else None
    result = fit(model, data, config, on_progress=logged if events is not None else None)
    if events is not None:
        t0 = time.thread_time()
        events.close()  # part of the cost: the last events reach the disk
        spent += time.thread_time() - t0
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    n_train = data.x_train.shape[0] - round(data.x_train.shape[0] * config.validation_split)
    images = n_train * result.epochs_run
    size = sum(p.stat().st_size for p in log_dir.iterdir()) if log_dir else 0
    return Run(images / elapsed, images / cpu, size, spent, spent / cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k", help="bundled data set (28x28 grey)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved with/without pairs")
    args = parser.parse_args()
    data = load_dataset({"name": args.dataset})
    config = TrainConfig(epochs=args.epochs, batch_size=64, seed=0, validation_split=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # compile (or load) every kernel and import tensorboard before anything is timed
        one_run(data, config.model_copy(update={"epochs": 1}), root / "warm-up")
        plain: list[Run] = []
        logged: list[Run] = []
        for pair in range(args.pairs):
            order = ("plain", "logged") if pair % 2 == 0 else ("logged", "plain")
            for mode in order:
                if mode == "plain":
                    plain.append(one_run(data, config, None))
                else:
                    logged.append(one_run(data, config, root / f"run-{pair}"))
    print(
        f"tensorboard overhead: LeNet-5 on {args.dataset} ({data.x_train.shape[0]} images, 10% "
        f"validation), {args.epochs} epochs, batch 64, {args.pairs} interleaved pairs, medians"
    )
    print(f"{'':22}{'without':>10}{'with':>10}{'ratio':>8}   per-pair ratios")
    for label, key in (("images/CPU-s", "cpu_ips"), ("images/s (wall)", "wall_ips")):
        base = statistics.median(getattr(r, key) for r in plain)
        with_events = statistics.median(getattr(r, key) for r in logged)
        pairs = [getattr(w, key) / getattr(p, key) for w, p in zip(logged, plain, strict=True)]
        print(
            f"  {label:20}{base:10.1f}{with_events:10.1f}{with_events / base:8.3f}   "
            + ", ".join(f"{r:.3f}" for r in pairs)
        )
        if key == "cpu_ips":
            slowdown = 1 - with_events / base
            verdict = "met" if slowdown <= TARGET_SLOWDOWN else "NOT met"
    log_ms = statistics.median(r.log_cpu_s for r in logged) * 1e3
    share = statistics.median(r.log_share for r in logged)
    print(
        f"  the event log itself: {log_ms:.0f} ms CPU of the training thread per run, "
        f"{100 * share:.1f}% of the run's CPU (median)"
    )
    print(
        f"  slowdown by CPU time {100 * slowdown:+.1f}% (target <= {100 * TARGET_SLOWDOWN:.0f}%: "
        f"{verdict}); event files {statistics.median(r.event_bytes for r in logged) / 1024:.0f} "
        "KiB per run"
    )


if __name__ == "__main__":
    main()
