"""Benchmark: fine-tuning a published model on new classes against training from scratch.

    python -m bench.finetune [--per-class 25] [--epochs 15] [--base-epochs 8] [--repeats 3]

The data (mnist-5k: 5,000 real MNIST digits, 28x28, the bundled 1,000 held out):

- base task: digits 0..4, every training image (~2,000); a LeNet is trained on it;
- new task: digits 5..9, only ``--per-class`` training images per class (the usual situation
  for fine-tuning: little data for the new classes), tested on every held-out 5..9 image.

The two tasks share the image domain (handwritten digits, same scanner and size) but not a
single class: what transfers is the learned strokes and shapes, not the answers. (Relabelling
the same images, e.g. "< 5" vs ">= 5", would let the base model carry the answer over; the 8x8
``digits`` set is too easy to show a difference.)

Three runs on the new task, same architecture (LeNet, the head with 5 units), same seed,
batch and optimizer, per-epoch accuracy on the held-out 5..9 images printed side by side (the
mean over ``--repeats`` draws of the training images and initial weights: one run's curve
moves by a point or two from draw to draw):

- scratch: random initialisation, the data set's own normalisation;
- frozen: ``init_from`` with ``freeze: ["conv2d"]`` and ``reset_head``: the conv features
  stay bit-identical, the dense layers learn (backward stops at the first dense layer);
- all: ``init_from`` with ``reset_head`` only: every layer fine-tuned.

It uses the functions the worker uses (`core.warm_start.plan_transfer`, `warm_start`, the
source's normalisation, `core.training.fit`), in process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from core.datasets import Dataset, Normalisation, load_mnist_5k
from core.model import Sequential
from core.training import Progress, TrainConfig, fit
from core.warm_start import plan_transfer, warm_start

ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 6, "kernel_size": 5, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 16, "kernel_size": 5},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 120},
    {"type": "relu"},
    {"type": "dense", "units": 84},
    {"type": "relu"},
    {"type": "dense", "units": 5},
]


def subset(data: Dataset, classes: range, per_class: int | None, seed: int) -> Dataset:
    """The images of ``classes`` relabelled 0..K-1; at most ``per_class`` training images of
    each (chosen with ``seed``), every test image."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in classes:
        found = np.flatnonzero(data.y_train == label)
        keep.append(found if per_class is None else rng.permutation(found)[:per_class])
    train = np.sort(np.concatenate(keep))
    assert data.x_test is not None and data.y_test is not None
    test = np.isin(data.y_test, list(classes))
    return Dataset(
        data.x_train[train],
        data.y_train[train] - classes.start,
        data.x_test[test],
        data.y_test[test] - classes.start,
        [str(c) for c in classes],
        data.pixel_range,
        f"mnist-5k {classes.start}..{classes.stop - 1}",
    )


def train(
    model: Sequential, data: Dataset, config: TrainConfig, norm: Normalisation
) -> tuple[list[float], float]:
    """Fit; returns the held-out accuracy after each epoch and the seconds per epoch."""
    assert data.x_test is not None and data.y_test is not None
    x_test, y_test = norm.apply(data.x_test), data.y_test
    curve: list[float] = []
    fit_s = 0.0
    started = time.perf_counter()

    def on_progress(progress: Progress) -> None:
        nonlocal fit_s, started
        if progress.phase == "epoch_end":
            fit_s += time.perf_counter() - started
            curve.append(model.evaluate(x_test, y_test).accuracy)
            started = time.perf_counter()

    fit(model, data, config, on_progress=on_progress, normalisation=norm)
    return curve, fit_s / max(1, len(curve))


def first_reaching(curve: list[float], target: float) -> str:
    for epoch, accuracy in enumerate(curve, start=1):
        if accuracy >= target:
            return str(epoch)
    return f"> {len(curve)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=25, help="new-task training images")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the new task")
    parser.add_argument("--base-epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="new-task draws averaged")
    args = parser.parse_args(argv)

    mnist = load_mnist_5k()
    base_data = subset(mnist, range(0, 5), None, args.seed)
    optimizer = {"type": "adam", "lr": 1e-3}
    base_config = TrainConfig(
        epochs=args.base_epochs, batch_size=32, optimizer=optimizer, seed=args.seed
    )
    base = Sequential.from_spec(ARCHITECTURE, base_data.input_shape, seed=args.seed)
    started = time.perf_counter()
    base_result = fit(base, base_data, base_config)
    print(
        f"base: digits 0..4, {base_data.x_train.shape[0]} training images, "
        f"{args.base_epochs} epochs ({time.perf_counter() - started:.1f} s): held-out accuracy "
        f"{base_result.metrics['test_accuracy']:.3f}"
    )

    names = ("scratch", "frozen convs", "all layers")
    curves: dict[str, list[list[float]]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        seed = args.seed + 1 + repeat
        new_data = subset(mnist, range(5, 10), args.per_class, seed)
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=32,
            optimizer=optimizer,
            seed=seed,
            validation_split=0.0,
        )
        for name, freeze in zip(names, (None, ["conv2d"], []), strict=True):
            model = Sequential.from_spec(ARCHITECTURE, new_data.input_shape, seed=seed)
            norm = new_data.normalisation
            if freeze is not None:
                plan, problems = plan_transfer(
                    base.architecture,
                    base.input_shape,
                    ARCHITECTURE,
                    new_data.input_shape,
                    freeze=freeze,
                    reset_head=True,
                )
                assert not problems, problems
                warm_start(model, base, plan)
                norm = base_data.normalisation  # the source's, as the worker does
            curve, per_epoch = train(model, new_data, config, norm)
            curves[name].append(curve)
            seconds[name].append(per_epoch)
    assert new_data.x_test is not None
    print(
        f"new:  digits 5..9, {new_data.x_train.shape[0]} training images "
        f"({args.per_class} per class), {new_data.x_test.shape[0]} held-out images; "
        f"mean of {args.repeats} draws\n"
    )

    mean = {name: np.mean(curves[name], axis=0).tolist() for name in names}
    print("held-out accuracy on digits 5..9 after each epoch")
    print("epoch  " + "".join(f"{name:>14}" for name in names))
    for epoch in range(args.epochs):
        print(f"{epoch + 1:5d}  " + "".join(f"{mean[n][epoch]:14.3f}" for n in names))
    target = mean["scratch"][-1]
    print(f"\nepochs to reach scratch's final accuracy ({target:.3f}):")
    print("       " + "".join(f"{first_reaching(mean[n], target):>14}" for n in names))
    print("s/epoch" + "".join(f"{float(np.mean(seconds[n])):14.3f}" for n in names))


if __name__ == "__main__":
    main()
