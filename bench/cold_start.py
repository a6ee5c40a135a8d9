"""Benchmark: cold start on a fresh clone, per-machine compile cache cold vs warm.

Run ``python -m bench.cold_start [--keep]``. Copies the repository's tracked files twice to new
temporary paths (two "fresh clones": new paths, new mtimes, no ``__pycache__``, no cache of
their own) and times fresh processes (wall clock, interpreter start included) against one
machine cache root (``NUMBA_CACHE_DIR`` = an empty temporary directory):

- cold (clone A, empty machine cache):
  - ``python -m worker.warmup`` -- what a new worker (CNN_WARMUP=block) and ``cnn demo``'s worker
    wait for before taking a job: the demo's compile phase;
  - first training step (LeNet-5, batch 64, Adam) after that warm-up -- a new worker's first step
    is the sum of the two; and the same for VGG-small (3x32x32, Winograd where measured faster);
  - first training step with no warm-up (CNN_WARMUP=off: compiles only what LeNet needs; its
    own empty cache);
  - first inference (LeNet-5, batch 1, ``predict_proba`` as the server runs it; its own empty
    cache) -- a server's first answer;
- warm (clone B at another path, the machine cache clone A filled): the same. The warm-up finds
  the marker clone A's warm-up left (``worker.warm_marker``) and skips (a worker does not even
  start it); ``warm-up --force`` is what it cost before the marker: loading every kernel.

Before the per-machine cache, every fresh clone (and every ``cnn demo`` work directory) was in
the cold column: Numba keyed the cache directory on the source path. Also prints which kernels
take the compile time and how many signatures each compiled (from the cold warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Process start -> first optimizer step done (fit stops at once after it).
FIRST_STEP = """
import sys
import numpy as np
from core.datasets import Dataset
from core.model import Sequential
from core.training import TrainConfig, fit
from core.zoo import lenet5, vgg_small

vgg = sys.argv[1:] == ["vgg_small"]
shape = (3, 32, 32) if vgg else (1, 28, 28)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(128, *shape), dtype=np.uint8)
y = (np.arange(128) % 10).astype(np.int64)
data = Dataset(x, y, None, None, [str(i) for i in range(10)], name="bench")
model = Sequential.from_spec(vgg_small() if vgg else lenet5(), data.input_shape, seed=0)
config = TrainConfig.model_validate(
    {"epochs": 1, "batch_size": 64, "optimizer": {"type": "adam", "lr": 1e-3}}
)
steps = []
fit(model, data, config, on_progress=steps.append, should_stop=lambda: bool(steps))
assert steps, "no training step ran"
"""

# Process start -> first batch-1 inference answered.
FIRST_INFERENCE = """
import numpy as np
from core.model import Sequential
from core.zoo import lenet5

model = Sequential.from_spec(lenet5(), (1, 28, 28), seed=0)
x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
assert model.predict_proba(x).shape == (1, 10)
"""


def fresh_clone(dest: Path) -> Path:
    """Copy the repository's tracked files (plus uncommitted edits) to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)  # new mtimes, like a clone
    return dest


def timed(clone: Path, root: Path, args: list[str]) -> tuple[float, str]:
    """Run ``python <args>`` in ``clone`` with the cache root; (wall seconds, stdout)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root), "PYTHONPATH": str(clone)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed in {clone}:\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def warmup(clone: Path, root: Path, *args: str) -> tuple[float, dict[str, Any]]:
    elapsed, out = timed(clone, root, ["-m", "worker.warmup", "--kernels", *args])
    return elapsed, json.loads(out.strip().splitlines()[-1])


def measure(clone: Path, root: Path, spare_roots: tuple[Path, Path]) -> dict[str, Any]:
    """The figures of one column."""
    warm_s, report = warmup(clone, root)
    step_s, _ = timed(clone, root, ["-c", FIRST_STEP])
    vgg_step_s, _ = timed(clone, root, ["-c", FIRST_STEP, "vgg_small"])
    no_warmup_s, _ = timed(clone, spare_roots[0], ["-c", FIRST_STEP])
    inference_s, _ = timed(clone, spare_roots[1], ["-c", FIRST_INFERENCE])
    return {
        "warmup_s": warm_s,
        "step_s": step_s,
        "worker_s": warm_s + step_s,
        "vgg_step_s": vgg_step_s,
        "no_warmup_s": no_warmup_s,
        "inference_s": inference_s,
        "report": report,
    }


def kernel_table(kernels: dict[str, dict[str, Any]], top: int = 14) -> list[str]:
    """The kernels that take the compile time. A kernel's seconds include the callees compiled
    inside it (a cached callee is compiled once, inside its first caller), so they overlap."""
    compiled = {name: k for name, k in kernels.items() if k["compiled"]}
    signatures = sum(k["compiled"] for k in compiled.values())
    multi = sorted(
        name.removeprefix("core.kernels.") for name, k in compiled.items() if k["compiled"] > 1
    )
    lines = [
        f"compiled by the cold warm-up: {len(compiled)} kernels, {signatures} signatures "
        f"({len(multi)} kernels with 2+: {', '.join(multi) or '-'})",
        f"  {'kernel':<32} {'parallel':>8} {'sigs':>4} {'compile s, callees included':>28}",
    ]
    ranked = sorted(compiled.items(), key=lambda item: -item[1]["compile_s"])
    for name, k in ranked[:top]:
        lines.append(
            f"  {name.removeprefix('core.kernels.'):<32} {'yes' if k['parallel'] else 'no':>8} "
            f"{k['compiled']:>4} {k['compile_s']:>28.2f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cnn-cold-start-"))
    try:
        root = work / "machine-cache"
        cold = measure(fresh_clone(work / "clone-a"), root, (work / "empty-1", work / "empty-2"))
        # Clone B: another path; its spare roots are warm copies of the machine cache.
        for spare in ("warm-1", "warm-2"):
            shutil.copytree(root, work / spare)
        clone_b = fresh_clone(work / "elsewhere" / "clone-b")
        warm = measure(clone_b, root, (work / "warm-1", work / "warm-2"))
        forced_s, forced = warmup(clone_b, root, "--force")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    rows = [
        ("worker warm-up (= cnn demo's compile phase), s", "warmup_s"),
        ("first training step after it, s", "step_s"),
        ("new worker: start -> first step, s", "worker_s"),
        ("first training step after it, VGG-small, s", "vgg_step_s"),
        ("first step without warm-up (CNN_WARMUP=off), s", "no_warmup_s"),
        ("server: first inference (LeNet-5, batch 1), s", "inference_s"),
    ]
    print(f"cold start on a fresh clone, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"  {'':<50} {'cold':>8} {'warm':>8} {'cold/warm':>9}")
    for label, key in rows:
        ratio = cold[key] / warm[key] if warm[key] else float("inf")
        print(f"  {label:<50} {cold[key]:>8.2f} {warm[key]:>8.2f} {ratio:>8.1f}x")
    for name, column in (("cold", cold), ("warm", warm)):
        report = column["report"]
        print(
            f"  warm-up {name}: {report['compiled']} signatures compiled, "
            f"{report['loaded']} loaded from the cache"
            + (f"; skipped ({report['skipped']})" if "skipped" in report else "")
        )
    print(
        f"  warm-up --force on the warm cache (what it cost before the marker): {forced_s:.2f} s, "
        f"{forced['compiled']} signatures compiled, {forced['loaded']} loaded"
    )
    print("\n".join(kernel_table(cold["report"]["kernels"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
