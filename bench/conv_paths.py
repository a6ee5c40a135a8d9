"""Decide the blocked-direct rules of :mod:`core.inference`: each conv layer of LeNet-5 and
VGG-small, with its fused activation and pool, through the inference plan with the blocked
direct kernel forced on and forced off, at batch 1 and batch 64.

Run ``python -m bench.conv_paths [--rounds N]``. One Numba thread; each figure is the best of N
interleaved rounds of the calling thread's CPU time per image (``time.thread_time``: time the
thread was descheduled by other load does not count, so the figures stay comparable on the
shared machine; cache contention still does). Winograd is off (``CNN_CONV_ALGORITHM=im2col``):
the plan picks it first where it applies and measures faster, and this script decides what
happens to the other convs.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

BATCHES = (1, 64)


def _layers(arch: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """Each conv of ``arch`` with the activation / pool layers that fuse into it."""
    out = []
    for i, layer in enumerate(arch):
        if layer["type"] != "conv2d":
            continue
        tail = []
        for nxt in arch[i + 1 :]:
            if nxt["type"] in ("conv2d", "flatten", "dense"):
                break
            tail.append(nxt)
        out.append((i, [layer, *tail]))
    return out


def _step(plan: Any, x: Any) -> Callable[[], Any]:
    return lambda: plan.logits(x)


def _best(step: Callable[[], Any], reps: int) -> float:
    t0 = time.thread_time()
    for _ in range(reps):
        step()
    return (time.thread_time() - t0) / reps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conv_paths", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="best of this many rounds")
    args = parser.parse_args(argv)
    os.environ["CNN_CONV_ALGORITHM"] = "im2col"
    import numba
    import numpy as np

    from core import inference
    from core.inference import InferencePlan
    from core.model import Sequential
    from core.zoo import lenet5, vgg_small

    numba.set_num_threads(1)
    nets = {"LeNet-5": (lenet5(), (1, 28, 28)), "VGG-small": (vgg_small(), (3, 32, 32))}
    print(f"{'conv layer':<38}{'batch':>6}{'im2col us/img':>15}{'blocked us/img':>16}{'ratio':>8}")
    for net, (arch, in_shape) in nets.items():
        shape: tuple[int, ...] = in_shape
        full = Sequential.from_spec(arch, in_shape)
        for index, layers in _layers(arch):
            if index > 0:
                shape = full.shapes[index - 1]
            spec = [*layers, {"type": "flatten"}, {"type": "dense", "units": 2}]
            model = Sequential.from_spec(spec, shape)
            plans = {}
            for on in (False, True):
                rule = lambda k, fg, oh, ow, on=on: on  # noqa: E731
                inference.BLOCKED_CONV = inference.BLOCKED_CONV_BATCHED = rule
                plans[on] = InferencePlan.compile(model)
            rng = np.random.default_rng(0)
            for n in BATCHES:
                x = rng.standard_normal((n, *shape)).astype(np.float32)
                reps = max(3, 256 // n)
                best = {on: float("inf") for on in plans}
                for plan in plans.values():
                    plan.logits(x)
                for _ in range(args.rounds):
                    for on, plan in plans.items():
                        best[on] = min(best[on], _best(_step(plan, x), reps))
                off_us, on_us = (best[on] / n * 1e6 for on in (False, True))
                c, f = shape[0], layers[0]["filters"]
                label = f"{net} {index} conv {c}->{f} on {shape[1]}x{shape[2]}"
                print(f"{label:<38}{n:>6}{off_us:>15.2f}{on_us:>16.2f}{on_us / off_us:>7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
