"""Benchmark: what writing TensorBoard event files costs a training run.

    python -m bench.tensorboard_overhead [--dataset mnist-5k] [--epochs 3] [--pairs 3]

Trains LeNet-5 (`core.zoo.lenet5`, Adam 1e-3, batch 64, 10% validation) with `core.training.fit`
the same way twice per pair: without event files, and with the worker's event log
(`worker.training_events.TrainingEvents` with the defaults of ``"tensorboard": true``: scalars
every step, histograms of every parameter and kernel images every epoch). The two runs of a
pair are interleaved and their order alternates from pair to pair, so load from other
processes on a shared machine falls on both; each run's rate is its training images over the
whole `fit` wall time (validation, epoch ends and final metrics included). Prints both medians,
their ratio, the per-pair ratios and the target (slowdown <= 5%).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from core.datasets import Dataset, load_dataset
from core.model import Sequential
from core.training import TrainConfig, fit
from core.zoo import lenet5
from jobs.spec import TensorBoardOptions
from worker.training_events import TrainingEvents

TARGET_SLOWDOWN = 0.05


def one_run(data: Dataset, config: TrainConfig, log_dir: Path | None) -> tuple[float, int]:
    """Train a fresh seeded LeNet-5; returns (images per second, event bytes written)."""
    model = Sequential.from_spec(lenet5(), data.input_shape, seed=0)
    events = TrainingEvents(log_dir, model, TensorBoardOptions()) if log_dir else None
    started = time.perf_counter()
    result = fit(model, data, config, on_progress=events)
    if events is not None:
        events.close()  # part of the cost: the last events reach the disk
    elapsed = time.perf_counter() - started
    n_train = data.x_train.shape[0] - round(data.x_train.shape[0] * config.validation_split)
    size = sum(p.stat().st_size for p in log_dir.iterdir()) if log_dir else 0
    return n_train * result.epochs_run / elapsed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k", help="bundled data set (28x28 grey)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3, help="interleaved with/without pairs")
    args = parser.parse_args()
    data = load_dataset({"name": args.dataset})
    config = TrainConfig(epochs=args.epochs, batch_size=64, seed=0, validation_split=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # compile (or load) every kernel and import tensorboard before anything is timed
        one_run(data, config.model_copy(update={"epochs": 1}), root / "warm-up")
        plain: list[float] = []
        logged: list[float] = []
        sizes: list[int] = []
        for pair in range(args.pairs):
            order = ("plain", "logged") if pair % 2 == 0 else ("logged", "plain")
            for mode in order:
                if mode == "plain":
                    plain.append(one_run(data, config, None)[0])
                else:
                    rate, size = one_run(data, config, root / f"run-{pair}")
                    logged.append(rate)
                    sizes.append(size)
    ratios = [w / p for w, p in zip(logged, plain, strict=True)]
    base, with_events = statistics.median(plain), statistics.median(logged)
    ratio = with_events / base
    print(
        f"tensorboard overhead: LeNet-5 on {args.dataset} {data.x_train.shape[0]} images, "
        f"{args.epochs} epochs, batch 64, {args.pairs} interleaved pairs (medians)"
    )
    print(f"  without event files  {base:9.1f} images/s")
    print(f"  with event files     {with_events:9.1f} images/s")
    print(
        f"  ratio {ratio:.3f} (slowdown {100 * (1 - ratio):+.1f}%, target <= "
        f"{100 * TARGET_SLOWDOWN:.0f}%: {'met' if 1 - ratio <= TARGET_SLOWDOWN else 'NOT met'})"
    )
    print(f"  per-pair ratios {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"  event files {statistics.median(sizes) / 1024:.0f} KiB per run (median)")


if __name__ == "__main__":
    main()
