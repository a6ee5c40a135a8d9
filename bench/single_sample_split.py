"""Whether spreading ONE sample's work over the threads pays: batch-1 latency of inference plans
built with and without the single-sample splits of :mod:`core.inference`.

Run ``python -m bench.single_sample_split [--rounds N]``. Prints, in one run (the settings
interleaved round by round, so load that comes and goes hits them alike):

- dense layers alone (flatten + dense I -> O, batch 1): median and best microseconds with
  ``DENSE_SPLIT_MACS`` off and on, for sizes from 64x64 to VGG-small's 4096x256: the size where
  waking the thread pool starts to pay is the threshold to set;
- VGG-small at batch 1, the four combinations of the dense split and the conv split
  (``SPLIT_MACS``) on and off.

Thread count: Numba's default (the machine's cores); the splits do nothing with one thread.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence

import numba
import numpy as np

from core import inference
from core.inference import InferencePlan
from core.model import Sequential
from core.zoo import vgg_small

DENSE_SIZES = [(64, 64), (256, 256), (1024, 256), (2048, 256), (4096, 256)]
ON = 1  # a threshold of 1 MAC: every dense layer / blocked conv of a single sample splits


def _plan(model: Sequential, dense: int, conv: int) -> InferencePlan:
    saved = inference.DENSE_SPLIT_MACS, inference.SPLIT_MACS
    inference.DENSE_SPLIT_MACS, inference.SPLIT_MACS = dense, conv
    try:
        return InferencePlan.compile(model)
    finally:
        inference.DENSE_SPLIT_MACS, inference.SPLIT_MACS = saved


def _call(fn: Callable[[np.ndarray], object], x: np.ndarray) -> Callable[[], object]:
    return lambda: fn(x)


def _interleaved(
    calls: Mapping[str, Callable[[], object]], rounds: int, per_round: int
) -> dict[str, tuple[float, float]]:
    """{name: (median us, best us)} of the calls, timed in turn ``per_round`` times a round."""
    for call in calls.values():  # compile / warm
        for _ in range(20):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    return {k: (float(np.median(v)) * 1e6, float(np.min(v)) * 1e6) for k, v in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"threads={numba.get_num_threads()}")
    print("dense layer alone, batch 1 (us: median / best)")
    print(f"  {'I x O':>12}  {'one thread':>17}  {'split':>17}  speed-up (medians)")
    for i_, o_ in DENSE_SIZES:
        model = Sequential.from_spec(
            [{"type": "flatten"}, {"type": "dense", "units": o_}], (1, 1, i_), seed=0
        )
        x = np.random.default_rng(0).standard_normal((1, 1, 1, i_)).astype(np.float32)
        plans = {"off": _plan(model, 0, 0), "on": _plan(model, ON, 0)}
        np.testing.assert_allclose(
            plans["on"].logits(x), plans["off"].logits(x), rtol=1e-4, atol=1e-4
        )
        got = _interleaved({k: _call(p.logits, x) for k, p in plans.items()}, args.rounds, 20)
        off, on = got["off"], got["on"]
        print(
            f"  {f'{i_}x{o_}':>12}  {off[0]:8.1f} / {off[1]:6.1f}  {on[0]:8.1f} / {on[1]:6.1f}"
            f"  {off[0] / on[0]:.2f}x"
        )
    model = Sequential.from_spec(vgg_small(), (3, 32, 32), seed=0)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    configs = {
        "no split": (0, 0),
        "dense split": (ON, 0),
        "conv split (SPLIT_MACS)": (0, ON),
        "both": (ON, ON),
    }
    plans = {name: _plan(model, d, c) for name, (d, c) in configs.items()}
    print("VGG-small batch 1, predict_proba through the plan (us: median / best)")
    got = _interleaved({k: _call(p.predict_proba, x) for k, p in plans.items()}, args.rounds, 10)
    base = got["no split"][0]
    for name, (med, best) in got.items():
        print(f"  {name:<24} {med:8.1f} / {best:6.1f}  {base / med:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
