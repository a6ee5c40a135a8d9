"""Benchmark: this library vs PyTorch (CPU) vs ONNX Runtime, same architectures, same threads.

Run ``python -m bench.core_ops [--quick] [--threads N]``. Measures, in one process:
- training images/s at batch 64 with Adam (lr 1e-3) on LeNet-5 (1x28x28) and a small VGG
  (3x32x32), synthetic data;
- inference latency at batch 1 (median, microseconds) and throughput at batch 64 (images/s) of
  the path users get, ``Sequential.predict_proba`` (the compiled :mod:`core.inference` plan;
  softmax included, the PyTorch / ONNX Runtime columns time logits only);
- achieved GFLOP/s of the conv layers next to NumPy's float32 matmul GFLOP/s;
- where the time goes: per-layer forward/backward milliseconds per training batch, and per fused
  op of the inference plan at batch 1 and 64 (next to the layer-by-layer forward).
PyTorch / ONNX Runtime parts are skipped with a message when the packages are missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _early_threads() -> int:
    """Thread count from argv, set for BLAS before NumPy is imported."""
    n = os.cpu_count() or 1
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            n = int(sys.argv[i + 1])
        elif a.startswith("--threads="):
            n = int(a.split("=", 1)[1])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    return n


if __name__ == "__main__":
    _early_threads()

import numpy as np  # noqa: E402

from core.layers import Conv2D, Layer  # noqa: E402
from core.losses import softmax_cross_entropy  # noqa: E402
from core.model import Sequential  # noqa: E402
from core.optim import Adam  # noqa: E402
from core.zoo import lenet5, vgg_small  # noqa: E402

LENET = lenet5()
VGG = vgg_small()

ARCHS: dict[str, tuple[list[dict[str, Any]], tuple[int, int, int]]] = {
    "LeNet-5": (LENET, (1, 28, 28)),
    "VGG-small": (VGG, (3, 32, 32)),
}


# ----------------------------------------------------------------------------- our network


class Net:
    """A :class:`Sequential` plus the layer-by-layer loops the training timings use."""

    def __init__(self, arch: list[dict[str, Any]], in_shape: tuple[int, int, int], seed: int = 0):
        self.model = Sequential.from_spec(arch, in_shape, seed=seed)
        self.layers: list[Layer] = self.model.layers
        self.shapes: list[tuple[int, ...]] = [in_shape, *self.model.shapes]
        self.params = self.model.parameters()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, d: np.ndarray) -> None:
        for layer in reversed(self.layers):
            d = layer.backward(d)

    def conv_flops(self, batch: int) -> int:
        """Forward multiply-adds x 2 of the conv layers for a batch."""
        total = 0
        for layer, shape in zip(self.layers, self.shapes, strict=False):
            if isinstance(layer, Conv2D):
                c = shape[0]
                f, oh, ow = layer.out_shape or (0, 0, 0)
                kh, kw = layer.kernel
                total += 2 * batch * f * oh * ow * (c // layer.groups) * kh * kw
        return total


def _train_step(net: Net, opt: Adam, x: np.ndarray, y: np.ndarray) -> float:
    out = net.forward(x, training=True)
    _, cost, d = softmax_cross_entropy(out, y)
    opt.zero_grad()
    net.backward(d)
    opt.step()
    return cost


# ----------------------------------------------------------------------------- timing helpers


_CPU: dict[int, float] = {}  # id(step) -> process CPU seconds per step of the last measurement


def _throughput(step: Callable[[], Any], batch: int, budget: float, min_steps: int) -> float:
    """Images/s of repeated ``step()`` calls over about ``budget`` seconds, from the median step
    time (robust to other processes sharing the cores). Also records the process CPU time per
    step (all threads, spinning included) for :func:`_cpu_ips`."""
    times: list[float] = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    while len(times) < min_steps or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    _CPU[0] = (time.process_time() - cpu0) / len(times)
    return batch / float(np.median(times))


def _cpu_ips(batch: int) -> float:
    """Images per CPU-second of the last :func:`_throughput` measurement: the work rate that does
    not depend on how much of the shared cores other processes left us."""
    return batch / _CPU[0] if _CPU.get(0) else 0.0


def _median_us(call: Callable[[], Any], budget: float, min_calls: int = 20) -> float:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6


def _warm(call: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        call()


@dataclass
class Result:
    train_ips: float | None = None
    lat1_us: float | None = None
    inf64_ips: float | None = None
    train_cpu: float | None = None  # images per CPU-second
    inf64_cpu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- torch / onnx


def _torch_model(arch: list[dict[str, Any]], in_shape: tuple[int, int, int], net: Net) -> Any:
    import torch
    from torch import nn

    mods: list[nn.Module] = []
    shape: tuple[int, ...] = in_shape
    for cfg, layer, out_shape in zip(arch, net.layers, net.shapes[1:], strict=True):
        t = cfg["type"]
        if t == "conv2d":
            assert isinstance(layer, Conv2D) and layer.pads is not None
            top, bottom, left, right = layer.pads
            assert top == bottom and left == right
            m: nn.Module = nn.Conv2d(
                shape[0], layer.filters, layer.kernel, layer.stride, (top, left)
            )
            m.weight.data = torch.from_numpy(layer.weight.value.copy())  # type: ignore[union-attr]
            m.bias.data = torch.from_numpy(layer.bias.value.copy())  # type: ignore[union-attr]
        elif t == "relu":
            m = nn.ReLU()
        elif t == "maxpool2d":
            m = nn.MaxPool2d(cfg["size"])
        elif t == "flatten":
            m = nn.Flatten()
        elif t == "dense":
            m = nn.Linear(int(np.prod(shape)), cfg["units"])
            params = layer.parameters()
            m.weight.data = torch.from_numpy(params["weight"].value.T.copy())
            m.bias.data = torch.from_numpy(params["bias"].value.copy())
        else:
            raise ValueError(f"bench: no torch equivalent for {t}")
        mods.append(m)
        shape = out_shape
    return nn.Sequential(*mods)


def _bench_torch(
    model: Any, in_shape: tuple[int, int, int], budget: float, warm: int
) -> tuple[Result, Any]:
    import torch

    rng = np.random.default_rng(1)
    x64 = torch.from_numpy(rng.standard_normal((64, *in_shape)).astype(np.float32))
    y64 = torch.from_numpy(rng.integers(0, 10, 64))
    x1 = x64[:1].clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x64), y64).backward()
        opt.step()

    model.train()
    _warm(step, warm)
    res = Result(train_ips=_throughput(step, 64, budget, 5), train_cpu=_cpu_ips(64))
    model.eval()
    with torch.inference_mode():
        _warm(lambda: model(x1), warm)
        res.lat1_us = _median_us(lambda: model(x1), budget / 2)
        _warm(lambda: model(x64), warm)
        res.inf64_ips = _throughput(lambda: model(x64), 64, budget / 2, 5)
        res.inf64_cpu = _cpu_ips(64)
    return res, model


def _bench_onnx(
    model: Any, in_shape: tuple[int, int, int], threads: int, budget: float, warm: int, path: str
) -> Result:
    import onnxruntime as ort
    import torch

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros((1, *in_shape)),),
            path,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    x1 = x64[:1].copy()
    res = Result()
    _warm(lambda: sess.run(None, {"x": x1}), warm)
    res.lat1_us = _median_us(lambda: sess.run(None, {"x": x1}), budget / 2)
    _warm(lambda: sess.run(None, {"x": x64}), warm)
    res.inf64_ips = _throughput(lambda: sess.run(None, {"x": x64}), 64, budget / 2, 5)
    res.inf64_cpu = _cpu_ips(64)
    return res


# ----------------------------------------------------------------------------- ours


def _bench_ours(net: Net, in_shape: tuple[int, int, int], budget: float, warm: int) -> Result:
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    y64 = rng.integers(0, 10, 64)
    x1 = x64[:1].copy()
    opt = Adam(net.params, lr=1e-3)
    step = lambda: _train_step(net, opt, x64, y64)  # noqa: E731
    _warm(step, warm)
    res = Result(train_ips=_throughput(step, 64, budget, 5), train_cpu=_cpu_ips(64))
    model = net.model
    _warm(lambda: model.predict_proba(x1), warm)
    res.lat1_us = _median_us(lambda: model.predict_proba(x1), budget / 2)
    _warm(lambda: model.predict_proba(x64), warm)
    res.inf64_ips = _throughput(lambda: model.predict_proba(x64), 64, budget / 2, 5)
    res.inf64_cpu = _cpu_ips(64)
    return res


def _profile_inference(net: Net, in_shape: tuple[int, int, int], reps: int) -> dict[str, Any]:
    """Per fused op microseconds of the inference plan at batch 1 and 64, and the layer path."""
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    x1 = x64[:1].copy()
    plan = net.model.inference_plan()
    if plan is None:
        return {}
    b1 = plan.profile(x1, reps * 5)
    b64 = plan.profile(x64, reps)
    layer1 = _median_us(lambda: net.forward(x1), 0.2, reps * 5)
    layer64 = _median_us(lambda: net.forward(x64), 0.5, reps)
    return {
        "rows": [(lab, t1 * 1e3, t64 * 1e3) for (lab, t1), (_, t64) in zip(b1, b64, strict=True)],
        "layer_us": (layer1, layer64),
        "plan_us": (sum(t for _, t in b1) * 1e3, sum(t for _, t in b64) * 1e3),
    }


def _profile(net: Net, in_shape: tuple[int, int, int], reps: int) -> dict[str, Any]:
    """Per-layer forward/backward ms per training batch of 64 (plus loss and optimizer)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, *in_shape)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    opt = Adam(net.params, lr=1e-3)
    n = len(net.layers)
    fwd, bwd = np.zeros(n), np.zeros(n)
    loss_t = opt_t = 0.0
    for _ in range(reps):
        h = x
        for i, layer in enumerate(net.layers):
            t0 = time.perf_counter()
            h = layer.forward(h, training=True)
            fwd[i] += time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, d = softmax_cross_entropy(h, y)
        opt.zero_grad()
        loss_t += time.perf_counter() - t0
        for i in range(n - 1, -1, -1):
            t0 = time.perf_counter()
            d = net.layers[i].backward(d)
            bwd[i] += time.perf_counter() - t0
        t0 = time.perf_counter()
        opt.step()
        opt_t += time.perf_counter() - t0
    scale = 1e3 / reps
    conv_idx = [i for i, layer in enumerate(net.layers) if isinstance(layer, Conv2D)]
    conv_f = sum(fwd[i] for i in conv_idx) / reps
    conv_b = sum(bwd[i] for i in conv_idx) / reps
    flops = net.conv_flops(64)
    return {
        "rows": [
            (f"{i:2d} {layer.type_name}", fwd[i] * scale, bwd[i] * scale, net.shapes[i + 1])
            for i, layer in enumerate(net.layers)
        ],
        "loss_ms": loss_t * scale,
        "opt_ms": opt_t * scale,
        "total_ms": (fwd.sum() + bwd.sum() + loss_t + opt_t) * scale,
        "conv_fwd_gflops": flops / conv_f / 1e9 if conv_f else 0.0,
        "conv_train_gflops": 3 * flops / (conv_f + conv_b) / 1e9 if conv_f + conv_b else 0.0,
    }


def _conv_infer_gflops(net: Net, in_shape: tuple[int, int, int], batch: int, reps: int) -> float:
    rng = np.random.default_rng(3)
    h = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    spent = 0.0
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            layer.forward(h)
            t0 = time.perf_counter()
            for _ in range(reps):
                out = layer.forward(h)
            spent += (time.perf_counter() - t0) / reps
            h = out
        else:
            h = layer.forward(h)
    return net.conv_flops(batch) / spent / 1e9


def numpy_matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """float32 n x n @ n x n GFLOP/s of NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


# ----------------------------------------------------------------------------- report


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}{unit}" if v >= 100 else f"{v:,.1f}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core_ops", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurements (~30 s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arch", choices=sorted(ARCHS), action="append", help="only these nets")
    args = parser.parse_args(argv)

    import numba

    max_threads = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
    threads = max(1, min(args.threads, max_threads))
    numba.set_num_threads(threads)
    budget, warm = (0.5, 2) if args.quick else (2.0, 4)

    try:
        import torch

        torch.set_num_threads(threads)
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not installed: skipping the PyTorch and ONNX Runtime columns.")
    try:
        import onnxruntime  # noqa: F401

        have_ort = have_torch
    except ImportError:
        have_ort = False
        print("onnxruntime not installed: skipping the ONNX Runtime column.")

    print(
        f"threads={threads} (numba {getattr(numba.config, 'THREADING_LAYER', '?')} threading, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
        # set by core.kernels at import; torch's OpenMP pool (imported later) sees it too, which
        # measured faster for torch as well on a loaded machine (LeNet train 2.8-3.0k -> 3.7-7.0k)
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), "
        f"numpy {np.__version__}, numba {numba.__version__}"
        + (f", torch {torch.__version__}" if have_torch else "")
    )
    mm = numpy_matmul_gflops()
    print(f"NumPy float32 matmul 1024^3: {mm:.1f} GFLOP/s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > threads:
        print(
            f"WARNING: load average {load:.1f} > {threads} threads: other processes share the "
            "cores, absolute figures are unreliable (ratios from this run are still comparable)"
        )

    import tempfile

    tmpdir = tempfile.mkdtemp(prefix="cnn-bench-")
    rows = []
    profiles = {}
    for name in args.arch or list(ARCHS):
        arch, in_shape = ARCHS[name]
        net = Net(arch, in_shape)
        t0 = time.perf_counter()
        ours = _bench_ours(net, in_shape, budget, warm)
        compile_note = time.perf_counter() - t0
        prof = _profile(Net(arch, in_shape), in_shape, 3 if args.quick else 10)
        prof["conv_infer_gflops"] = _conv_infer_gflops(net, in_shape, 64, 3)
        prof["inference"] = _profile_inference(net, in_shape, 3 if args.quick else 10)
        profiles[name] = prof
        tr = onnx = None
        if have_torch:
            ref_net = Net(arch, in_shape)
            model = _torch_model(arch, in_shape, ref_net)
            xchk = np.random.default_rng(5).standard_normal((2, *in_shape)).astype(np.float32)
            with torch.no_grad():
                diff = np.abs(model(torch.from_numpy(xchk)).numpy() - ref_net.forward(xchk)).max()
            print(f"{name}: |ours - torch| logits max diff with shared weights = {diff:.2e}")
            tr, model = _bench_torch(model, in_shape, budget, warm)
            if have_ort:
                onnx = _bench_onnx(
                    model, in_shape, threads, budget, warm, os.path.join(tmpdir, f"{name}.onnx")
                )
        rows.append((name, ours, tr, onnx))
        print(f"{name}: measured ({compile_note:.1f} s incl. any first-run compile)")

    w = 14
    print()
    head = (
        f"{'net':<10} {'metric':<22}{'ours':>{w}}{'torch':>{w}}{'onnxrt':>{w}}"
        f"{'ours/torch':>{w}}{'ours/onnx':>{w}}"
    )
    print(head)
    print("-" * len(head))
    for name, ours, tr, ox in rows:
        t_tr = tr.train_ips if tr else None
        print(
            f"{name:<10} {'train img/s (b64)':<22}{_fmt(ours.train_ips):>{w}}{_fmt(t_tr):>{w}}"
            f"{'-':>{w}}{_ratio(ours.train_ips, t_tr):>{w}}{'-':>{w}}"
        )
        t_l, o_l = (tr.lat1_us if tr else None), (ox.lat1_us if ox else None)
        # latency ratio as speed (their time / our time): >= 1 means we are at least as fast
        print(
            f"{'':<10} {'infer b1 median us':<22}{_fmt(ours.lat1_us):>{w}}{_fmt(t_l):>{w}}"
            f"{_fmt(o_l):>{w}}{_ratio(t_l, ours.lat1_us):>{w}}{_ratio(o_l, ours.lat1_us):>{w}}"
        )
        t_i, o_i = (tr.inf64_ips if tr else None), (ox.inf64_ips if ox else None)
        print(
            f"{'':<10} {'infer b64 img/s':<22}{_fmt(ours.inf64_ips):>{w}}{_fmt(t_i):>{w}}"
            f"{_fmt(o_i):>{w}}{_ratio(ours.inf64_ips, t_i):>{w}}{_ratio(ours.inf64_ips, o_i):>{w}}"
        )
    for name, ours, tr, ox in rows:
        t_c = tr.train_cpu if tr else None
        print(
            f"{name:<10} {'train img/cpu-s':<22}{_fmt(ours.train_cpu):>{w}}{_fmt(t_c):>{w}}"
            f"{'-':>{w}}{_ratio(ours.train_cpu, t_c):>{w}}{'-':>{w}}"
        )
        t_i, o_i = (tr.inf64_cpu if tr else None), (ox.inf64_cpu if ox else None)
        print(
            f"{'':<10} {'infer b64 img/cpu-s':<22}{_fmt(ours.inf64_cpu):>{w}}{_fmt(t_i):>{w}}"
            f"{_fmt(o_i):>{w}}{_ratio(ours.inf64_cpu, t_i):>{w}}{_ratio(ours.inf64_cpu, o_i):>{w}}"
        )
    print("(ratios are speed ratios: >1 means ours is faster; latency ratio = their us / our us;")
    print(" img/cpu-s = images per CPU-second used by the process, all threads incl. spinning:")
    print(" the efficiency that does not depend on how much of the shared cores we were given)")
    print()
    for name, prof in profiles.items():
        print(
            f"{name}: conv GFLOP/s ours: inference b64 {prof['conv_infer_gflops']:.1f}, "
            f"training fwd {prof['conv_fwd_gflops']:.1f}, fwd+bwd {prof['conv_train_gflops']:.1f}"
            f"  (NumPy matmul {mm:.1f})"
        )
    print()
    for name, prof in profiles.items():
        print(f"{name}: where a training batch of 64 goes (ms)")
        print(f"  {'layer':<20}{'forward':>9}{'backward':>10}  out shape")
        for label, f, b, shape in prof["rows"]:
            print(f"  {label:<20}{f:>9.3f}{b:>10.3f}  {shape}")
        print(f"  {'loss+zero_grad':<20}{prof['loss_ms']:>9.3f}")
        print(f"  {'adam step':<20}{prof['opt_ms']:>9.3f}")
        print(f"  {'total':<20}{prof['total_ms']:>9.3f}")
        inf = prof["inference"]
        if inf:
            print(f"{name}: where inference goes (us, compiled plan; prefix timings, noisy)")
            print(f"  {'fused op':<34}{'batch 1':>9}{'batch 64':>11}")
            for label, t1, t64 in inf["rows"]:
                print(f"  {label:<34}{t1:>9.1f}{t64:>11.1f}")
            p1, p64 = inf["plan_us"]
            l1, l64 = inf["layer_us"]
            print(f"  {'plan total (incl. call)':<34}{p1:>9.1f}{p64:>11.1f}")
            print(f"  {'layer-by-layer forward':<34}{l1:>9.1f}{l64:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
