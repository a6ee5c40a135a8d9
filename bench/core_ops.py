"""Benchmark: this library vs PyTorch (CPU) vs ONNX Runtime, same architectures, same threads.

Run ``python -m bench.core_ops [--quick] [--threads N]``. Measures, in one process:
- training images/s at batch 64 with Adam (lr 1e-3) on LeNet-5 (1x28x28) and a small VGG
  (3x32x32), synthetic data;
- inference latency at batch 1 (median, microseconds) and throughput at batch 64 (images/s) of
  the path users get, ``Sequential.predict_proba`` (the compiled :mod:`core.inference` plan;
  softmax included, the PyTorch / ONNX Runtime columns time logits only);
- achieved GFLOP/s of the conv layers next to NumPy's float32 matmul GFLOP/s;
- where the time goes: per-layer forward/backward milliseconds per training batch, and per fused
  op of the inference plan at batch 1 and 64 (next to the layer-by-layer forward);
- the fixed cost of one inference call (:mod:`bench.call_cost`: a model computing nearly
  nothing, through ``predict_proba`` and through the server's compute path);
- peak memory of a training batch of 64, ours next to PyTorch's (:mod:`bench.train_memory`:
  a fresh subprocess per measurement, peak RSS over the steady state).
PyTorch / ONNX Runtime parts are skipped with a message when the packages are missing.

Modules: :mod:`bench.ours` (our side), :mod:`bench.torch_reference` (theirs),
:mod:`bench.core_profile` (where the time goes), :mod:`bench.core_report` (the tables).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from bench import core_report
from core.zoo import Architecture, lenet5, vgg_small

ARCHS: dict[str, tuple[Architecture, tuple[int, int, int]]] = {
    "LeNet-5": (lenet5(), (1, 28, 28)),
    "VGG-small": (vgg_small(), (3, 32, 32)),
}
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(threads: int) -> None:
    """Ask BLAS and OpenMP for `threads` threads, unless the environment already chose.

    Takes effect only if NumPy is not loaded yet: OpenBLAS sizes its pool when it loads, which
    is why this module imports NumPy (and everything that uses it) only inside :func:`main`.
    """
    if "numpy" in sys.modules:
        print(
            "bench.core_ops: NumPy was imported before the thread count was set; BLAS keeps the "
            "threads it started with",
            file=sys.stderr,
        )
    for var in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(var, str(threads))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.core_ops", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurements (~30 s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arch", choices=sorted(ARCHS), action="append", help="only these nets")
    parser.add_argument(
        "--baseline",
        default="im2col",
        help="also measure ours with CNN_CONV_ALGORITHM=<this> (rows '<net> <this>'; 'none' to "
        "skip): before/after in one run",
    )
    return parser


def _measure(args: argparse.Namespace) -> int:
    """Every measurement and the report; NumPy, Numba and the library load here."""
    import numba
    import numpy as np

    from bench import call_cost, core_profile, torch_reference, train_memory
    from bench.ours import Net, bench_ours

    max_threads = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
    threads = max(1, min(args.threads, max_threads))
    numba.set_num_threads(threads)
    budget, warm = (0.5, 2) if args.quick else (2.0, 4)

    torch_version = torch_reference.torch_version(threads)
    have_torch = torch_version is not None
    if not have_torch:
        print("PyTorch not installed: skipping the PyTorch and ONNX Runtime columns.")
    have_ort = torch_reference.have_onnxruntime()
    if not have_ort:
        print("onnxruntime not installed: skipping the ONNX Runtime column.")
    have_ort = have_ort and have_torch  # the ONNX model is exported from the torch one

    print(
        f"threads={threads} (numba {getattr(numba.config, 'THREADING_LAYER', '?')} threading, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
        # set by core.kernels at import; torch's OpenMP pool (imported later) sees it too, which
        # measured faster for torch as well on a loaded machine (LeNet train 2.8-3.0k -> 3.7-7.0k)
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), "
        f"numpy {np.__version__}, numba {numba.__version__}"
        + (f", torch {torch_version}" if have_torch else "")
    )
    mm = core_profile.numpy_matmul_gflops()
    print(f"NumPy float32 matmul 1024^3: {mm:.1f} GFLOP/s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > threads:
        print(
            f"WARNING: load average {load:.1f} > {threads} threads: other processes share the "
            "cores, absolute figures are unreliable (ratios from this run are still comparable)"
        )

    rows: list[core_report.Row] = []
    profiles: dict[str, dict[str, Any]] = {}
    reps = 3 if args.quick else 10
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as tmpdir:
        for name in args.arch or list(ARCHS):
            arch, in_shape = ARCHS[name]
            net = Net(arch, in_shape)
            t0 = time.perf_counter()
            ours = bench_ours(net, in_shape, budget, warm)
            compile_note = time.perf_counter() - t0
            prof = core_profile.profile_training(Net(arch, in_shape), in_shape, reps)
            prof["conv_infer_gflops"] = core_profile.conv_infer_gflops(net, in_shape, 64, 3)
            prof["inference"] = core_profile.profile_inference(net, in_shape, reps)
            profiles[name] = prof
            tr = onnx = None
            if have_torch:
                ref_net = Net(arch, in_shape)
                model = torch_reference.torch_model(ref_net.model)
                diff = torch_reference.max_logit_diff(model, ref_net, in_shape)
                print(f"{name}: |ours - torch| logits max diff with shared weights = {diff:.2e}")
                tr, model = torch_reference.bench_torch(model, in_shape, budget, warm)
                if have_ort:
                    onnx = torch_reference.bench_onnx(
                        model, in_shape, threads, budget, warm, os.path.join(tmpdir, f"{name}.onnx")
                    )
            rows.append((name, ours, tr, onnx))
            print(f"{name}: measured ({compile_note:.1f} s incl. any first-run compile)")
            print(f"{name}: conv algorithms {conv_choices(net)}")
            if args.baseline != "none":
                label = f"{name[:3]}:{args.baseline}"
                rows.append((label, _baseline(args, arch, in_shape), tr, onnx))

    core_report.print_comparison(rows)
    core_report.print_profiles(profiles, mm)
    cost = call_cost.call_cost_us(budget / 2)
    core_report.print_call_cost(cost)
    memory = train_memory.measure_all(args.arch or list(ARCHS), 64, threads, have_torch)
    train_memory.print_table(memory, 64)
    return 0


def conv_choices(net: Any) -> str:
    """'im2col' / 'winograd<m>' per conv layer of the net (forward), in layer order."""
    from core.layers import Conv2D

    names = []
    for layer, shape in zip(net.layers, net.shapes, strict=False):
        if isinstance(layer, Conv2D):
            m = layer._winograd_tile(shape, backward=False)
            names.append(f"winograd{m}" if m else "im2col")
    return ", ".join(names)


def _baseline(args: argparse.Namespace, arch: Any, in_shape: tuple[int, int, int]) -> Any:
    """Our figures with CNN_CONV_ALGORITHM forced to ``args.baseline`` (a fresh net)."""
    from bench.ours import Net, bench_ours
    from core import conv_algorithms

    budget, warm = (0.5, 2) if args.quick else (2.0, 4)
    saved = os.environ.get(conv_algorithms.ENV)
    os.environ[conv_algorithms.ENV] = args.baseline
    try:
        return bench_ours(Net(arch, in_shape), in_shape, budget, warm)
    finally:
        if saved is None:
            del os.environ[conv_algorithms.ENV]
        else:
            os.environ[conv_algorithms.ENV] = saved


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    limit_blas_threads(args.threads)  # before _measure loads NumPy
    return _measure(args)


if __name__ == "__main__":
    raise SystemExit(main())
