"""`python -m worker.warmup [--kernels] [--force]`: fill the compile cache so a job's first step
does not compile.

Runs in its own process, started by the worker before it takes jobs: the worker itself forks
work horses and must never start Numba's OpenMP thread pool. The warm-up trains three tiny models
for one short epoch on synthetic float32 data through `core.training.fit` -- the same code path a
job takes -- covering every layer type, the optimizers, augmentation, evaluation (the inference
plan, batched and batch 1), and both convolution algorithms (im2col + GEMM, and Winograd forward
and backward-data, forced, since a job uses them where `core.conv_algorithms` measures them
faster), so every ``cache=True`` kernel specialisation a typical job needs is compiled (or found)
in the cache.

The kernels land in the per-machine cache (`core.kernels.compile_cache`), so a second worker,
clone or demo on the machine loads them instead of compiling; old revisions' caches are pruned.
When it finishes it writes a marker (`worker.warm_marker`); a later warm-up of the same code on
the machine finds it and skips the work (``--force`` runs anyway), and so does a worker before
it even starts this process. Prints one JSON line: seconds per phase, how many kernel signatures
were compiled and how many loaded from the cache (``--kernels`` adds the per-kernel figures),
and ``skipped`` with the reason when it skipped; exit status 0 on success.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

#: Exercises conv (same/valid, stride, bias), batchnorm, relu, leaky relu, max/avg pooling,
#: dropout, flatten and dense.
ARCH_A: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1, "stride": 1},
    {"type": "leaky_relu"},
    {"type": "avgpool2d", "size": 2},
    {"type": "dropout", "rate": 0.25},
    {"type": "flatten"},
    {"type": "dense", "units": 8},
    {"type": "tanh"},
    {"type": "dense", "units": 3},
]
#: Exercises strided/valid conv (always im2col + GEMM: forward and backward), sigmoid and global
#: average pooling.
ARCH_B: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": "valid"},
    {"type": "sigmoid"},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
]
#: VGG-like, trained with Winograd forced: the Winograd training kernels (forward, backward-data
#: with the transposed filter transform, the im2col weight gradient) that a VGG-like job runs
#: when `core.conv_algorithms` measures Winograd faster, and Winograd rows in the inference plan.
ARCH_C: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def _dataset(channels: int, side: int, n: int = 24) -> Any:
    from core.datasets import Dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, channels, side, side), dtype=np.uint8)
    y = (np.arange(n) % 3).astype(np.int64)
    return Dataset(x, y, None, None, ["a", "b", "c"], name="warmup")


def warm_up() -> dict[str, float]:
    """Run the warm-up; returns seconds per phase."""
    from core import conv_algorithms
    from core.model import Sequential
    from core.training import TrainConfig, fit

    timings: dict[str, float] = {}
    # The last field is CNN_CONV_ALGORITHM during the run: ``auto`` measures (the kernels a job's
    # measurement runs), ``winograd`` forces the Winograd kernels whatever this machine measures.
    runs: list[tuple[str, list[dict[str, Any]], int, int, dict[str, Any], str]] = [
        ("a_adam", ARCH_A, 1, 8, {"type": "adam", "lr": 1e-3}, "auto"),
        ("b_sgd", ARCH_B, 3, 9, {"type": "sgd", "lr": 0.01, "momentum": 0.9}, "auto"),
        ("c_winograd", ARCH_C, 3, 8, {"type": "adam", "lr": 1e-3}, "winograd"),
    ]
    for label, arch, channels, side, optimizer, algorithm in runs:
        os.environ[conv_algorithms.ENV] = algorithm  # this process only
        started = time.monotonic()
        data = _dataset(channels, side)
        model = Sequential.from_spec(arch, data.input_shape, seed=0)
        config = TrainConfig.model_validate(
            {
                "epochs": 1,
                "batch_size": 8,
                "optimizer": optimizer,
                "validation_split": 0.25,
                "augmentation": {"shift": 1, "flip": True},
            }
        )
        fit(model, data, config)
        model.predict_proba(data.x_train[:4].astype(np.float32))
        timings[label] = round(time.monotonic() - started, 3)
    # Whatever mix of algorithms a job's shapes measure to (the runs above force all-Winograd
    # or measure tiny shapes that stay im2col), every candidate kernel is now compiled.
    started = time.monotonic()
    os.environ[conv_algorithms.ENV] = "auto"
    conv_algorithms.compile_candidates("float32")
    timings["conv_candidates"] = round(time.monotonic() - started, 3)
    return timings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    per_kernel, force = "--kernels" in args, "--force" in args
    from core.kernels import compile_cache
    from worker import warm_marker

    started = time.monotonic()
    report: dict[str, Any]
    with warm_marker.warmup_lock():  # a concurrent warm-up of this revision finishes first
        marker = None if force else warm_marker.read_marker()
        if marker is not None:
            report = {
                "warmup": {"total_s": round(time.monotonic() - started, 3)},
                "skipped": f"the compile cache is warm for this code: {warm_marker.marker_path()}",
                "compiled": 0,
                "loaded": 0,
            }
            stats: dict[str, dict[str, Any]] = {}
        else:
            timings = warm_up()
            timings["total_s"] = round(time.monotonic() - started, 3)
            stats = compile_cache.kernel_stats()
            report = {
                "warmup": timings,
                "compiled": sum(int(s["compiled"]) for s in stats.values()),
                "loaded": sum(int(s["loaded"]) for s in stats.values()),
            }
            warm_marker.write_marker(report["compiled"], report["loaded"])
    report["cache"] = str(compile_cache.revision_dir())
    report["pruned"] = [str(p) for p in compile_cache.prune()]
    if per_kernel:
        report["kernels"] = stats
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
