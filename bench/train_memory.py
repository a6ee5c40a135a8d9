"""Peak memory of one training batch, ours vs PyTorch, one fresh subprocess per measurement.

Method (the same for both libraries, so the columns compare): in a new process, build the net
(same architecture), run one warm-up training step at batch 2 (loads or compiles every kernel,
creates the optimizer state and thread pools, with tiny activations), then note the resident
set (VmRSS), reset the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0)
and run 3 steps at the measured batch; peak = VmHWM - that VmRSS: the memory a batch's
activations, gradients and workspaces add over the steady state. For ours the child also reports
tracemalloc's peak over the same steps (NumPy registers its buffers with tracemalloc; Numba-side
allocations are not seen, so it is a lower bound that shows how much of the RSS is arrays).

    python -m bench.train_memory [--batch 64] [--arch LeNet-5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARCH_SHAPES = {"LeNet-5": (1, 28, 28), "VGG-small": (3, 32, 32)}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _child(lib: str, arch_name: str, batch: int, threads: int) -> dict[str, Any]:
    """Runs in the subprocess: the measurement described in the module docstring."""
    import numpy as np

    from core.zoo import lenet5, vgg_small

    arch = {"LeNet-5": lenet5(), "VGG-small": vgg_small()}[arch_name]
    in_shape = ARCH_SHAPES[arch_name]
    rng = np.random.default_rng(0)
    xs = {n: rng.standard_normal((n, *in_shape)).astype(np.float32) for n in (2, batch)}
    ys = {n: rng.integers(0, 10, n) for n in (2, batch)}
    traced = None
    if lib == "ours":
        import numba

        from bench.ours import Net, train_step
        from core.optim import Adam

        numba.set_num_threads(max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS))))  # type: ignore[attr-defined]
        net = Net(arch, in_shape)
        opt = Adam(net.params, lr=1e-3)

        def step(n: int) -> None:
            train_step(net, opt, xs[n], ys[n])

    else:
        import torch

        from bench.ours import Net
        from bench.torch_reference import torch_model

        torch.set_num_threads(threads)
        model = torch_model(Net(arch, in_shape).model)
        topt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        txs = {n: torch.from_numpy(x) for n, x in xs.items()}
        tys = {n: torch.from_numpy(y) for n, y in ys.items()}

        def step(n: int) -> None:
            topt.zero_grad()
            loss_fn(model(txs[n]), tys[n]).backward()
            topt.step()

    step(2)
    step(2)
    import gc
    import tracemalloc

    gc.collect()
    if lib == "ours":
        tracemalloc.start()
    base = _status_kib("VmRSS")
    ok = _reset_peak()
    for _ in range(3):
        step(batch)
    peak = _status_kib("VmHWM")
    if lib == "ours":
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "peak_mib": (peak - base) / 1024 if ok else None,
        "traced_mib": None if traced is None else traced / 2**20,
        "rss_mib": base / 1024,
    }


def measure(lib: str, arch_name: str, batch: int = 64, threads: int = 2) -> dict[str, Any]:
    """One fresh process measuring `lib` ("ours" or "torch") on `arch_name`."""
    code = (
        "import json, sys; from bench.train_memory import _child; "
        f"print('RESULT ' + json.dumps(_child({lib!r}, {arch_name!r}, {batch}, {threads})))"
    )
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, str(threads))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"memory child for {lib} {arch_name} failed:\n{proc.stderr[-2000:]}")


def measure_all(
    archs: Sequence[str], batch: int, threads: int, with_torch: bool
) -> dict[str, dict[str, dict[str, Any]]]:
    """{arch: {"ours": ..., "torch": ...}} (torch missing when not installed)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in archs:
        out[name] = {"ours": measure("ours", name, batch, threads)}
        if with_torch:
            out[name]["torch"] = measure("torch", name, batch, threads)
    return out


def print_table(results: dict[str, dict[str, dict[str, Any]]], batch: int) -> None:
    print()
    print(f"Peak memory of a training batch of {batch} (MiB over the steady state, per process;")
    print(" VmHWM - VmRSS around 3 steps after a batch-2 warm-up, fresh process each)")
    head = f"  {'net':<11}{'ours':>9}{'torch':>9}{'ours/torch':>12}{'ours numpy (tracemalloc)':>27}"
    print(head)
    for name, r in results.items():
        ours, tr = r["ours"]["peak_mib"], r.get("torch", {}).get("peak_mib")
        ratio = f"{ours / tr:.2f}x" if ours is not None and tr else "-"
        traced = r["ours"]["traced_mib"]
        print(f"  {name:<11}{_f(ours):>9}{_f(tr):>9}{ratio:>12}{_f(traced):>27}")
    print("  (ours/torch < 1: ours needs less)")


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_memory", description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", choices=sorted(ARCH_SHAPES), action="append")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False
    results = measure_all(args.arch or list(ARCH_SHAPES), args.batch, args.threads, with_torch)
    print_table(results, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
