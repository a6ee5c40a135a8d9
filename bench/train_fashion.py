"""Benchmark: LeNet on the full Fashion-MNIST, this library vs PyTorch, side by side.

    python -m bench.train_fashion [--epochs 10] [--batch-size 64] [--lr 0.001] [--limit N]

Both runs use the same architecture, the same initial weights (copied from ours into the
PyTorch modules), the same normalisation, epochs, batch size and optimizer (Adam); they differ
only in shuffling order and kernels. The learning-rate schedule (default cosine) is computed
per step by ``core.schedules`` for both. Prints test accuracy and wall time of each.
PyTorch is optional (``pip install torch``); ``--skip-torch`` runs ours only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.datasets import Dataset
from core.model import Sequential
from core.zoo import lenet5


def _subset(data: Dataset, limit: int | None) -> Dataset:
    """The first `limit` training images (all of them when `limit` is None or 0)."""
    if not limit:
        return data
    return dataclasses.replace(data, x_train=data.x_train[:limit], y_train=data.y_train[:limit])


def _test_split(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(x_test, y_test); Fashion-MNIST always has them, the accuracies are measured on them.

    Raises:
        ValueError: the data set has no test split.
    """
    if data.x_test is None or data.y_test is None:
        raise ValueError(f"data set {data.name!r}: no test split to measure accuracy on")
    return data.x_test, data.y_test


def run_ours(
    data: Dataset, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train LeNet-5 with `core.training.fit`; returns the results and the initial weights."""
    from core.training import Progress, TrainConfig, fit

    model = Sequential.from_spec(lenet5(), data.input_shape, seed=args.seed)
    initial = model.named_arrays()
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer={"type": "adam", "lr": args.lr},
        schedule={"type": args.schedule},
        seed=args.seed,
        validation_split=0.0,
    )

    def report(p: Progress) -> None:
        if p.phase == "epoch_end":
            print(
                f"  ours  epoch {p.epoch}/{p.epochs} loss {p.loss:.4f} "
                f"train acc {p.train_accuracy:.4f} {p.images_per_s:.0f} img/s",
                flush=True,
            )

    start = time.perf_counter()
    result = fit(model, data, config, on_progress=report)
    wall = time.perf_counter() - start
    return {"test_accuracy": result.metrics["test_accuracy"], "wall_s": wall}, initial


def run_torch(
    data: Dataset, args: argparse.Namespace, initial: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Train the same LeNet-5 in PyTorch from the same `initial` weights and schedule."""
    import torch
    from torch import nn

    from bench.torch_reference import torch_model

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    ours = Sequential.from_spec(lenet5(), data.input_shape, seed=args.seed)
    ours.load_named_arrays(initial)
    net = torch_model(ours)  # same layers, our initial weights copied over
    norm = data.normalisation
    x_train = torch.from_numpy(norm.apply(data.x_train))
    y_train = torch.from_numpy(data.y_train)
    x_test_array, y_test_array = _test_split(data)
    x_test = torch.from_numpy(norm.apply(x_test_array))
    y_test = torch.from_numpy(y_test_array)
    from core.schedules import schedule_from_config

    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(x_train.shape[0] / args.batch_size)
    lr_at = schedule_from_config({"type": args.schedule}, args.lr, steps_per_epoch * args.epochs)
    step = 0
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)
    n = x_train.shape[0]
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(n, generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(math.ceil(n / args.batch_size)):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            logits = net(x_train[idx])
            loss = loss_fn(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)  # the same per-step schedule as ours
            optimizer.step()
            step += 1
            total += len(idx)
            correct += int((logits.argmax(1) == y_train[idx]).sum())
            loss_sum += loss.item() * len(idx)
        print(
            f"  torch epoch {epoch + 1}/{args.epochs} loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.4f}",
            flush=True,
        )
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x_test[i : i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    wall = time.perf_counter() - start
    return {"test_accuracy": float((pred == y_test).float().mean()), "wall_s": wall}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_fashion", description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--schedule", choices=("constant", "cosine"), default="cosine", help="lr schedule"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only N training images")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for both (default: all CPUs)"
    )
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import numba

    from core.datasets import load_fashion_mnist
    from core.errors import DatasetError

    args.threads = args.threads or os.cpu_count() or 1
    numba.set_num_threads(min(args.threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))))

    try:
        data = _subset(load_fashion_mnist(), args.limit)
    except DatasetError as exc:
        print(f"train_fashion: {exc}", file=sys.stderr)
        return 2
    n_test = _test_split(data)[0].shape[0]
    print(
        f"fashion-mnist: {data.x_train.shape[0]} train / {n_test} test, LeNet, "
        f"{args.epochs} epochs, batch {args.batch_size}, adam lr {args.lr} {args.schedule}, "
        f"{args.threads} thread(s) on {os.cpu_count()} CPU(s)",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    results["cnn-service"], initial = run_ours(data, args)
    if not args.skip_torch:
        try:
            import torch
        except ImportError:
            print("  (PyTorch not installed: pip install torch)", flush=True)
        else:
            results[f"pytorch {torch.__version__}"] = run_torch(data, args, initial)
    print()
    print(f"{'':18}{'test accuracy':>14}{'wall time':>12}")
    for name, r in results.items():
        print(f"{name:18}{100 * r['test_accuracy']:13.2f}%{r['wall_s']:11.1f}s")
    if len(results) == 2:
        ours, theirs = (r["test_accuracy"] for r in results.values())
        print(f"{'difference':18}{100 * (ours - theirs):+13.2f} points")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
