"""The report of `bench.core_ops`: the comparison table (ours, PyTorch, ONNX Runtime), the
conv GFLOP/s and the where-the-time-goes tables. Formatting only; nothing here measures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.timing import Result

# one row per net: (name, ours, torch or None, onnx runtime or None)
Row = tuple[str, "Result", "Result | None", "Result | None"]


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}{unit}" if v >= 100 else f"{v:,.1f}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def print_comparison(rows: Sequence[Row]) -> None:
    """The table of speeds per net and metric, with speed ratios (>1: ours is faster)."""
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


def print_profiles(profiles: Mapping[str, Mapping[str, Any]], matmul_gflops: float) -> None:
    """Conv GFLOP/s next to NumPy's matmul, then per net where a training batch and an
    inference call go (:mod:`bench.core_profile`)."""
    print()
    for name, prof in profiles.items():
        print(
            f"{name}: conv GFLOP/s ours: inference b64 {prof['conv_infer_gflops']:.1f}, "
            f"training fwd {prof['conv_fwd_gflops']:.1f}, fwd+bwd {prof['conv_train_gflops']:.1f}"
            f"  (NumPy matmul {matmul_gflops:.1f})"
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
            for n, algorithms in inf.get("algorithms", {}).items():
                print(f"  conv algorithms at batch {n}: {', '.join(algorithms)}")


def print_call_cost(cost: Mapping[str, float]) -> None:
    """Fixed cost per inference call (:mod:`bench.call_cost`), microseconds at batch 1."""
    print()
    print("Fixed cost of one call (model: flatten + dense 1->2, batch 1, median us)")
    for label, key in (
        ("model.predict_proba", "predict_proba"),
        ("model.logits", "logits"),
        ("server compute path", "server_path"),
    ):
        print(f"  {label:<34}{cost[key]:>9.1f}")
