"""A plan per batch regime: the batch-1 (latency) and batched (throughput) programs may compute
a conv by different algorithms, share the weight list, and both equal the layer-by-layer
forward, before and after an in-place weight change."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core import conv_algorithms, inference
from core.inference import LATENCY, THROUGHPUT, InferencePlan
from core.kernels import infer as ik
from core.model import Sequential
from core.zoo import lenet5

TOL = 1e-5

# one conv of each class the plan treats differently (see tests/core/test_kernels_direct.py)
CONVS: list[dict[str, Any]] = [
    {"filters": 6, "kernel_size": 5, "padding": 2},  # LeNet conv1 geometry
    {"filters": 9, "kernel_size": 3},  # a partial second filter block
    {"filters": 16, "kernel_size": [3, 2], "padding": [1, 0, 2, 1]},
    {"filters": 8, "kernel_size": 3, "dilation": 2, "padding": "same"},
    {"filters": 12, "kernel_size": 3, "groups": 3, "padding": 1},
    {"filters": 8, "kernel_size": 3, "stride": 2, "padding": 1},  # stride 2: im2col in both
    {"filters": 10, "kernel_size": 1},  # 1x1: one GEMM in both
]


@pytest.fixture(params=["blocked at batch 1", "blocked when batched"])
def split_rules(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The two regimes' rules forced to opposite answers (and never Winograd)."""
    latency = request.param == "blocked at batch 1"
    monkeypatch.setenv(conv_algorithms.ENV, "im2col")
    monkeypatch.setattr(inference, "BLOCKED_CONV", lambda k, fg, oh, ow: latency)
    monkeypatch.setattr(inference, "BLOCKED_CONV_BATCHED", lambda k, fg, oh, ow: not latency)
    return LATENCY if latency else THROUGHPUT


def _randomise(model: Sequential, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, p in layer.parameters().items():
            if name != "weight":
                p.value[...] = rng.uniform(0.5, 1.5, p.value.shape) * rng.choice([-1, 1])


def _assert_matches(model: Sequential, plan: InferencePlan, n: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((n, *model.input_shape)).astype(np.float32)
    ref = model.forward(x, training=False)
    np.testing.assert_allclose(plan.logits(x), ref, atol=TOL * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("conv", CONVS)
def test_both_regimes_match_layer_forward(split_rules: str, conv: dict[str, Any]) -> None:
    arch = [{"type": "conv2d", **conv}, {"type": "relu"}, {"type": "maxpool2d", "size": 2}]
    arch += [{"type": "flatten"}, {"type": "dense", "units": 3}]
    model = Sequential.from_spec(arch, (6, 11, 9))
    _randomise(model, 0)
    plan = InferencePlan.compile(model)
    for n in (1, 2, 37):
        _assert_matches(model, plan, n, seed=n)
    batch1, batched = plan.program(1).conv_algorithms(), plan.program(2).conv_algorithms()
    stride1 = conv.get("stride", 1) == 1 and conv["kernel_size"] != 1
    if stride1:  # the regimes took different algorithms, as the rules said
        blocked = batch1 if split_rules == LATENCY else batched
        other = batched if split_rules == LATENCY else batch1
        assert blocked == ["blocked"] and other[0] in ("im2col", "direct")  # few filters: direct
    else:
        assert batch1 == batched


def test_regime_follows_the_number_of_samples() -> None:
    plan = InferencePlan.compile(Sequential.from_spec(lenet5(), (1, 28, 28)))
    assert plan.program(1).regime == LATENCY
    assert plan.program(inference.BATCHED_FROM).regime == THROUGHPUT
    assert plan.program(64).regime == THROUGHPUT
    assert plan.prog is plan.programs[LATENCY].prog  # the single-program view is batch 1's


def test_in_place_weight_changes_reach_both_regimes(split_rules: str) -> None:
    arch = [{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"}]
    arch += [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "flatten"}]
    arch += [{"type": "dense", "units": 2}]
    model = Sequential.from_spec(arch, (2, 7, 7))
    _randomise(model, 1)
    plan = InferencePlan.compile(model)
    _assert_matches(model, plan, 1, seed=0)
    _assert_matches(model, plan, 4, seed=0)
    for step, layer in enumerate((0, 2, 4)):  # as an optimizer step would, in place
        model.layers[layer].parameters()["weight"].value[...] *= -1.5
        for n in (1, 4, 1):  # each regime sees the change, then the other one again
            _assert_matches(model, plan, n, seed=step)
    assert plan.is_current()


def test_regimes_share_the_weights_and_packed_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "BLOCKED_CONV", lambda k, fg, oh, ow: True)
    monkeypatch.setattr(inference, "BLOCKED_CONV_BATCHED", lambda k, fg, oh, ow: True)
    model = Sequential.from_spec(lenet5(), (1, 28, 28))
    plan = InferencePlan.compile(model)
    one, many = plan.program(1).prog, plan.program(64).prog
    for field in (ik.F_WI, ik.F_BI, ik.F_PACK):  # the same arrays, packed once
        np.testing.assert_array_equal(one[:, field], many[:, field])
    params = sum(len(layer.parameters()) for layer in model.layers)
    # each parameter once, plus two packed convs and the weights they were packed from
    assert len(plan._arrays_py) == params + 4
