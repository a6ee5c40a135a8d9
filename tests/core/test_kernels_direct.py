"""The small-work inference path: the blocked direct conv kernel against its reference twin, and
whole plans using it (and 1x1 GEMM convs, and pools fused into the conv output step) against the
layer-by-layer forward and the program's reference twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core import conv_algorithms, inference
from core.inference import InferencePlan
from core.kernels import direct
from core.kernels import infer as ik
from core.model import Sequential, softmax

TOL = 1e-5


@pytest.mark.parametrize(
    ("cg", "kh", "kw", "dh", "dw", "oh", "ow", "blocks"),
    [
        (1, 5, 5, 1, 1, 28, 28, 1),  # LeNet conv1 (6 filters: one block, 2 zero lanes)
        (6, 5, 5, 1, 1, 10, 10, 2),  # LeNet conv2
        (3, 3, 3, 1, 1, 7, 9, 3),  # odd map, OW not a multiple of TILE
        (2, 3, 2, 2, 1, 5, 13, 1),  # dilation, rectangular kernel
        (4, 1, 3, 1, 2, 3, 1, 2),  # one output column
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_block_matches_reference(
    cg: int, kh: int, kw: int, dh: int, dw: int, oh: int, ow: int, blocks: int, dtype: type
) -> None:
    rng = np.random.default_rng(cg * 100 + kh * 10 + ow)
    wg = ow + dw * (kw - 1)
    plane = (oh + dh * (kh - 1)) * wg + dw * (kw - 1)
    base = 3  # the kernel must honour an offset into the planes
    xp = rng.standard_normal(base + cg * plane + direct.TILE).astype(dtype)
    wp = rng.standard_normal(blocks * cg * kh * kw * direct.LANES).astype(dtype)
    owp = -(-ow // direct.TILE) * direct.TILE
    for fb in range(blocks):
        fast = np.full(direct.LANES * oh * owp, np.nan, dtype)
        slow = np.full_like(fast, np.nan)
        args = (xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, oh, ow)
        direct.conv_block(*args, fast)
        direct.conv_block_reference(*args, slow)
        valid = (slice(None), slice(None), slice(0, ow))  # junk columns >= OW are unspecified
        f3 = fast.reshape(direct.LANES, oh, owp)[valid]
        s3 = slow.reshape(direct.LANES, oh, owp)[valid]
        np.testing.assert_allclose(f3, s3, rtol=1e-5, atol=1e-5)


def test_pack_weights_layout() -> None:
    # 2 groups of 3 filters, K = 2 taps: each group padded to one block of LANES filters
    w = np.arange(12, dtype=np.float32).reshape(6, 2)  # w[f, r] = 2f + r
    out = np.full(direct.packed_size(6, 2, 2), -1, np.float32)
    direct.pack_weights(w, 2, out)
    wp = out.reshape(2, 2, direct.LANES)  # (group block, tap, lane)
    assert wp[0, 1, 2] == w[2, 1]  # group 0, filter 2, tap 1
    assert wp[1, 0, 0] == w[3, 0]  # group 1's first filter is filter 3
    assert (wp[:, :, 3:] == 0).all()  # missing filters are zero


def _randomise(model: Sequential, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, p in layer.parameters().items():
            if name != "weight" or layer.type_name == "batchnorm2d":
                p.value[...] = rng.uniform(0.5, 1.5, p.value.shape) * rng.choice([-1, 1])
        for name, buf in layer.buffers().items():
            buf[...] = (
                rng.uniform(0.5, 2.0, buf.shape) if "var" in name else rng.normal(0, 1, buf.shape)
            )


def _check(model: Sequential, n: int, seed: int = 0) -> InferencePlan:
    """The plan's logits and probabilities equal the layer path's and the reference twin's."""
    _randomise(model, seed)
    x = np.random.default_rng(seed + 1).standard_normal((n, *model.input_shape))
    x = x.astype(model.dtype)
    ref = model.forward(x, training=False)
    plan = InferencePlan.compile(model)
    atol = TOL * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(plan.logits(x), ref, atol=atol)
    proba = softmax(ref.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(plan.predict_proba(x), proba, atol=TOL)
    twin = np.empty((n, model.num_classes), model.dtype)
    scratch = next(iter(plan._scratch.values()))
    program = plan.program(n)
    ik.run_program_reference(
        program.prog, program.fparams, list(plan._arrays_py), plan.layout, x.reshape(n, -1),
        twin, scratch, False, 0,
    )  # fmt: skip
    np.testing.assert_allclose(twin, ref, atol=atol)
    return plan


@pytest.fixture(params=["blocked", "not blocked"])
def blocked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test using this runs with the blocked kernel forced on and forced off (and never
    Winograd, which the plan would pick first where it measures faster: a Winograd row takes
    neither the blocked kernel nor a fused pool)."""
    on = request.param == "blocked"
    monkeypatch.setenv(conv_algorithms.ENV, "im2col")
    for rule in ("BLOCKED_CONV", "BLOCKED_CONV_BATCHED"):  # both batch regimes
        monkeypatch.setattr(inference, rule, lambda k, fg, oh, ow: on)
    return on


CONVS: list[dict[str, Any]] = [
    {"filters": 6, "kernel_size": 5, "padding": 2},  # LeNet conv1 geometry
    {"filters": 9, "kernel_size": 3},  # odd sizes, a partial second block
    {"filters": 16, "kernel_size": [3, 2], "padding": [1, 0, 2, 1]},
    {"filters": 8, "kernel_size": 3, "dilation": 2, "padding": "same"},
    {"filters": 12, "kernel_size": 3, "groups": 3, "padding": 1},
    {"filters": 8, "kernel_size": 3, "stride": 2, "padding": 1},  # stride 2: never blocked
    {"filters": 10, "kernel_size": 1},  # 1x1: straight to GEMM
    {"filters": 6, "kernel_size": 1, "groups": 3, "use_bias": False},
]


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("n", [1, 2, 64])
def test_conv_geometries_match_layer_forward(blocked: bool, conv: dict[str, Any], n: int) -> None:
    arch = [{"type": "conv2d", **conv}, {"type": "relu"}, {"type": "flatten"}]
    arch.append({"type": "dense", "units": 3})
    plan = _check(Sequential.from_spec(arch, (6, 11, 9)), n)
    row = plan.program(n).prog[0]
    unit = conv.get("stride", 1) == 1
    if conv["kernel_size"] == 1:
        assert row[ik.F_GEMM1] == 1 and row[ik.F_PACK] < 0
    else:
        assert (row[ik.F_PACK] >= 0) == (blocked and unit)


POOLS: list[list[dict[str, Any]]] = [
    [{"type": "relu"}, {"type": "maxpool2d", "size": 2}],
    [{"type": "batchnorm2d"}, {"type": "relu"}, {"type": "maxpool2d", "size": 3, "stride": 2}],
    [{"type": "tanh"}, {"type": "avgpool2d", "size": 2, "padding": 1}],
    [{"type": "maxpool2d", "size": 2, "stride": 1, "padding": 1}, {"type": "sigmoid"}],
    [{"type": "avgpool2d", "size": 3}, {"type": "relu"}],  # relu after the pool stays after it
]


@pytest.mark.parametrize("middle", POOLS)
@pytest.mark.parametrize("conv", [CONVS[1], CONVS[5], CONVS[6]])
def test_pool_fused_into_conv_matches_layer_forward(
    blocked: bool, middle: list[dict[str, Any]], conv: dict[str, Any]
) -> None:
    arch = [{"type": "conv2d", **conv}, *middle, {"type": "flatten"}, {"type": "dense", "units": 4}]
    plan = _check(Sequential.from_spec(arch, (3, 13, 11)), 5)
    assert "pool2d" in plan.labels[0]  # pooled in the conv's output step: no pool op of its own
    assert not any(r[ik.F_OP] in (ik.OP_MAXPOOL, ik.OP_AVGPOOL) for r in plan.prog)


def test_lenet_and_vgg_shapes_fuse_every_pool(blocked: bool) -> None:
    from core.zoo import lenet5, vgg_small

    lenet = _check(Sequential.from_spec(lenet5(), (1, 28, 28)), 3)
    assert lenet.labels[:2] == ["0 conv2d+relu+maxpool2d", "3 conv2d+relu+maxpool2d+flatten"]
    vgg = _check(Sequential.from_spec(vgg_small(), (3, 32, 32)), 2)
    _check(Sequential.from_spec(vgg_small(), (3, 32, 32)), 1)
    assert [lab.split()[1] for lab in vgg.labels[:4]] == [
        "conv2d+relu",
        "conv2d+relu+maxpool2d",
        "conv2d+relu",
        "conv2d+relu+maxpool2d+flatten",
    ]


def test_single_sample_convs_split_over_threads_match(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.zoo import vgg_small

    monkeypatch.setattr(inference, "SPLIT_MACS", 1)  # every blocked conv of a single sample
    plan = _check(Sequential.from_spec(vgg_small(), (3, 32, 32)), 1)
    assert plan.layout[ik.L_SPLIT] == 1


def test_packed_weights_follow_in_place_changes(blocked: bool) -> None:
    arch = [{"type": "conv2d", "filters": 8, "kernel_size": 3}, {"type": "relu"}]
    arch += [{"type": "flatten"}, {"type": "dense", "units": 2}]
    model = Sequential.from_spec(arch, (2, 6, 6))
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)
    model.predict_proba(x)  # the plan exists, its weights packed
    model.layers[0].parameters()["weight"].value[...] *= -2
    np.testing.assert_allclose(model.logits(x), model.forward(x), atol=TOL)


def test_float64_model_matches_on_the_other_paths(blocked: bool) -> None:
    arch = [{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"}]
    arch += [{"type": "maxpool2d", "size": 2}, {"type": "conv2d", "filters": 4, "kernel_size": 1}]
    arch += [{"type": "flatten"}, {"type": "dense", "units": 3}]
    _check(Sequential.from_spec(arch, (2, 7, 7), dtype=np.float64), 2)


def test_a_pool_after_a_winograd_conv_stays_its_own_op(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.zoo import vgg_small

    monkeypatch.setenv(conv_algorithms.ENV, "winograd")
    vgg = _check(Sequential.from_spec(vgg_small(), (3, 32, 32)), 2)
    labels = [lab.split()[1] for lab in vgg.labels]
    # the Winograd output step writes whole maps, so the pools run as ops of their own
    assert labels[:3] == ["conv2d(winograd4)+relu", "conv2d(winograd4)+relu", "maxpool2d"]
    assert sum(int(r[ik.F_OP] == ik.OP_MAXPOOL) for r in vgg.prog) == 2


@pytest.mark.parametrize(
    ("cg", "kh", "kw", "dh", "dw", "poh", "pw", "blocks"),
    [
        (1, 5, 5, 1, 1, 14, 14, 1),  # LeNet conv1 + pool (28x28 -> 14x14)
        (6, 5, 5, 1, 1, 5, 5, 2),  # LeNet conv2 + pool (10x10 -> 5x5): a junk pooled column
        (3, 3, 3, 1, 1, 3, 4, 3),  # odd conv map (7x9): its last row and column pool nothing
        (2, 3, 2, 2, 1, 2, 1, 1),  # dilation, rectangular kernel, one pooled column
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_pool_block_matches_reference(
    cg: int, kh: int, kw: int, dh: int, dw: int, poh: int, pw: int, blocks: int, dtype: type
) -> None:
    rng = np.random.default_rng(cg * 100 + kh * 10 + pw)
    oh, ow = 2 * poh + (cg == 3), 2 * pw + (cg == 3)  # a conv map may be one row/column longer
    wg = ow + dw * (kw - 1)
    plane = (oh + dh * (kh - 1)) * wg + dw * (kw - 1)
    base = 3
    xp = rng.standard_normal(base + cg * plane + direct.TILE).astype(dtype)
    wp = rng.standard_normal(blocks * cg * kh * kw * direct.LANES).astype(dtype)
    scale = rng.uniform(-1.5, 1.5, direct.LANES).astype(dtype)  # negative: affine before max
    shift = rng.standard_normal(direct.LANES).astype(dtype)
    pwp = direct.pooled_width(pw)
    for fb in range(blocks):
        fast = np.full(direct.LANES * poh * pwp, np.nan, dtype)
        slow = np.full_like(fast, np.nan)
        args = (xp, base, plane, wg, wp, fb, cg, kh, kw, dh, dw, poh, pw, scale, shift)
        direct.conv_pool_block(*args, fast)
        direct.conv_pool_block_reference(*args, slow)
        f3 = fast.reshape(direct.LANES, poh, pwp)[:, :, :pw]  # junk columns >= PW unspecified
        s3 = slow.reshape(direct.LANES, poh, pwp)[:, :, :pw]
        np.testing.assert_allclose(f3, s3, rtol=1e-5, atol=1e-5)
