"""Model estimates: the sizes of a spec's model, from its shapes alone (nothing allocated)."""

from __future__ import annotations

import tracemalloc
from typing import Any, ClassVar

import numpy as np
import pytest

from core import zoo
from core.errors import SpecError
from core.estimate import ModelEstimate, estimate
from core.layers import Dense, Layer, Parameter
from core.model import Sequential
from core.optim import OPTIMIZER_TYPES, optimizer_from_config

Architecture = list[dict[str, Any]]

ZOO: list[tuple[str, Architecture, tuple[int, int, int]]] = [
    ("lenet5", zoo.lenet5(), (1, 28, 28)),
    ("vgg_small", zoo.vgg_small(), (3, 32, 32)),
    ("digits_cnn", zoo.digits_cnn(), (1, 8, 8)),
]


PADDINGS: list[Any] = ["valid", "same", 1, [0, 2], [1, 0, 2, 1]]


def _random_architecture(rng: np.random.Generator) -> Architecture:
    """A small stack of random layers ending in class scores; some do not fit their input."""
    arch: Architecture = []
    for _ in range(int(rng.integers(1, 6))):
        kind = rng.choice(["conv2d", "maxpool2d", "avgpool2d", "batchnorm2d", "act", "dropout"])
        if kind == "conv2d":
            groups = int(rng.choice([1, 2]))
            arch.append(
                {
                    "type": "conv2d",
                    "filters": groups * int(rng.integers(1, 4)),
                    "kernel_size": [int(rng.integers(1, 4)), int(rng.integers(1, 4))],
                    "stride": int(rng.integers(1, 3)),
                    "dilation": int(rng.integers(1, 3)),
                    "padding": PADDINGS[int(rng.integers(0, len(PADDINGS)))],
                    "groups": groups,
                    "use_bias": bool(rng.integers(0, 2)),
                }
            )
        elif kind in ("maxpool2d", "avgpool2d"):
            arch.append({"type": str(kind), "size": int(rng.integers(1, 4)), "padding": 0})
        elif kind == "act":
            arch.append({"type": str(rng.choice(["relu", "leaky_relu", "sigmoid", "tanh"]))})
        else:
            arch.append({"type": str(kind)})
    arch.append({"type": str(rng.choice(["flatten", "global_avgpool2d"]))})
    arch.append({"type": "dense", "units": int(rng.integers(2, 6))})
    return arch


RANDOM = [_random_architecture(np.random.default_rng(seed)) for seed in range(60)]


def _assert_estimate_matches(est: ModelEstimate, model: Sequential) -> None:
    assert est.input_shape == model.input_shape
    assert [e.output_shape for e in est.layers] == model.shapes
    for row, layer in zip(est.layers, model.layers, strict=True):
        assert row.type_name == layer.type_name
        assert row.parameter_shapes == {k: p.shape for k, p in layer.parameters().items()}
        assert row.parameters == sum(p.size for p in layer.parameters().values())
        assert row.buffers == sum(b.size for b in layer.buffers().values())
    assert est.parameters == sum(p.size for p in model.parameters())
    assert est.parameter_bytes == sum(p.value.nbytes for p in model.parameters())


@pytest.mark.parametrize(("name", "arch", "shape"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_estimates_equal_the_built_models(
    name: str, arch: Architecture, shape: tuple[int, int, int]
) -> None:
    _assert_estimate_matches(estimate(arch, shape), Sequential.from_spec(arch, shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimates_follow_the_dtype(dtype: type) -> None:
    arch, shape = zoo.lenet5(), (1, 28, 28)
    est = estimate(arch, shape, dtype=dtype)
    assert est.itemsize == np.dtype(dtype).itemsize
    _assert_estimate_matches(est, Sequential.from_spec(arch, shape, dtype=dtype))


@pytest.mark.parametrize("arch", RANDOM, ids=[f"random{i}" for i in range(len(RANDOM))])
def test_random_architectures_estimate_as_they_build_or_fail_alike(arch: Architecture) -> None:
    shape = (2, 9, 8)
    try:
        model = Sequential.from_spec(arch, shape)
    except SpecError as exc:
        with pytest.raises(SpecError) as raised:
            estimate(arch, shape)
        assert str(raised.value) == str(exc)
        return
    _assert_estimate_matches(estimate(arch, shape), model)


def test_random_architectures_include_models_that_build() -> None:
    """The random grid is not all failures (it would then test nothing about sizes)."""
    built = 0
    for arch in RANDOM:
        try:
            Sequential.from_spec(arch, (2, 9, 8))
        except SpecError:
            continue
        built += 1
    assert built >= len(RANDOM) // 3


@pytest.mark.parametrize(
    ("arch", "shape"),
    [
        ("conv2d", (1, 8, 8)),
        ([], (1, 8, 8)),
        (["relu"], (1, 8, 8)),
        ([{"type": "conv3d"}], (1, 8, 8)),
        ([{"type": "dense", "units": 0}], (1, 8, 8)),
        ([{"type": "dense", "units": 4, "kernal": 1}], (1, 8, 8)),
        ([{"type": "flatten"}, {"type": "dense", "units": 3}], (8, 8)),
        ([{"type": "flatten"}, {"type": "dense", "units": 3}], (1, 8, 5000)),
        ([{"type": "conv2d", "filters": 2, "kernel_size": 9}], (1, 8, 8)),
        ([{"type": "conv2d", "filters": 2, "kernel_size": 3}], (1, 8, 8)),
        ([{"type": "conv2d", "filters": 4, "kernel_size": 1, "groups": 4}], (3, 8, 8)),
        ([{"type": "maxpool2d", "size": 2, "padding": 2}], (1, 8, 8)),
        ([{"type": "flatten"}, {"type": "maxpool2d"}], (1, 8, 8)),
        ([{"type": "flatten"}, {"type": "batchnorm2d"}], (1, 8, 8)),
        ([{"type": "relu"}] * 1001, (1, 8, 8)),
    ],
)
def test_errors_are_the_errors_of_building(arch: Any, shape: tuple[int, ...]) -> None:
    with pytest.raises(SpecError) as built:
        Sequential.from_spec(arch, shape)
    with pytest.raises(SpecError) as estimated:
        estimate(arch, shape)
    assert str(estimated.value) == str(built.value)


def test_dtype_errors_are_the_errors_of_building() -> None:
    arch = zoo.digits_cnn()
    with pytest.raises(SpecError) as built:
        Sequential.from_spec(arch, (1, 8, 8), dtype=np.int32)
    with pytest.raises(SpecError) as estimated:
        estimate(arch, (1, 8, 8), dtype=np.int32)
    assert str(estimated.value) == str(built.value)


def _peak_bytes(arch: Architecture, shape: tuple[int, int, int]) -> tuple[ModelEstimate, int]:
    estimate(zoo.digits_cnn(), (1, 8, 8))  # imports done before measuring
    tracemalloc.start()
    try:
        est = estimate(arch, shape)
        return est, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_dense_layer_of_a_billion_units_is_sized_without_allocating_it() -> None:
    arch = [{"type": "flatten"}, {"type": "dense", "units": 2**30}]
    est, peak = _peak_bytes(arch, (64, 4096, 4096))
    assert est.parameters == 64 * 4096 * 4096 * 2**30 + 2**30  # 2**60 + 2**30: ~4.6 EiB
    assert peak < 2 * 2**20


def test_a_conv_with_padding_4000_is_sized_without_allocating_it() -> None:
    arch = [
        {"type": "conv2d", "filters": 256, "kernel_size": 3, "padding": 4000},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    est, peak = _peak_bytes(arch, (1, 28, 28))
    side = 28 + 2 * 4000 - 2  # 8026
    assert est.layers[0].output_shape == (256, side, side)
    # the conv output alone: 256 * 8026**2 float32 = 61.4 GiB per sample
    assert est.activation_bytes_per_sample > 4 * 256 * side * side > 61 * 2**30
    assert peak < 2 * 2**20


def test_activation_bytes_per_sample_by_hand() -> None:
    arch = [
        {"type": "conv2d", "filters": 2, "kernel_size": 3},  # (1, 4, 4) -> (2, 2, 2)
        {"type": "relu"},  # (2, 2, 2)
        {"type": "maxpool2d", "size": 2},  # (2, 1, 1)
        {"type": "flatten"},  # (2,), a view
        {"type": "dense", "units": 3},  # (3,)
    ]
    est = estimate(arch, (1, 4, 4))
    # outputs kept by forward: input 16 + conv 8 + relu 8 + pool 2 + flatten 0 (view) + dense 3
    outputs = 16 + 8 + 8 + 2 + 0 + 3
    # conv scratch at stride 1, 2x2 output (< 2048 pixels: no row bands, R = OH = 2):
    # Wg = OW + (KW-1) = 4, S = (OH + KH-1) * Wg + (KW-1) = 18, K = 1*3*3 = 9, F/G = 2:
    # 2*C*S + (2*K + F/G) * R*Wg = 2*18 + (18 + 2) * 2*4 = 196 values
    conv_scratch = 4 * 196
    pool_argmax = 8 * 2  # one int64 per pooled value
    # gradients in flight: conv 16 + 8, relu 8 + 8, pool 8 + 2, flatten 2 (view), dense 2 + 3
    in_flight = 16 + 8
    assert [e.workspace_bytes for e in est.layers] == [conv_scratch, 0, pool_argmax, 0, 0]
    assert est.activation_bytes_per_sample == (
        4 * outputs + conv_scratch + pool_argmax + 4 * in_flight
    )
    assert est.activation_bytes_per_sample == 148 + 784 + 16 + 96 == 1044
    # parameters: conv 2*1*3*3 + 2 = 20, dense 2*3 + 3 = 9
    assert est.parameters == 29 and est.parameter_bytes == 116
    assert est.optimizer_state_bytes("adam") == 2 * 116
    assert est.optimizer_state_bytes("sgd") == 116
    # batch of 10 with Adam: values + gradients + moments, then 10 samples
    assert est.training_bytes(10, "adam") == 4 * 116 + 10 * 1044


def test_conv_scratch_uses_row_bands_on_large_maps() -> None:
    arch = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "global_avgpool2d"},
        {"type": "dense", "units": 2},
    ]
    est = estimate(arch, (8, 64, 64))
    # 64*64 = 4096 >= 2048 output pixels: bands of R = 262144 // (K*Wg*4) rows,
    # K = 8*9 = 72, Wg = 64 + 2 = 66: R = 262144 // 19008 = 13
    # S = (64 + 2) * 66 + 2 = 4358; 2*C*S + (2*K + F) * R*Wg = 69728 + 148 * 858 = 196712
    assert est.layers[0].workspace_bytes == 4 * 196712


def test_unknown_optimizer_state_is_a_spec_error() -> None:
    est = estimate(zoo.digits_cnn(), (1, 8, 8))
    with pytest.raises(SpecError, match="unknown optimizer type 'lion'"):
        est.optimizer_state_bytes("lion")


@pytest.mark.parametrize("name", sorted(OPTIMIZER_TYPES))
def test_optimizer_state_counts_the_arrays_the_optimizer_keeps(name: str) -> None:
    model = Sequential.from_spec(zoo.digits_cnn(), (1, 8, 8))
    optimizer = optimizer_from_config({"type": name}, model.parameters())
    kept = sum(
        a.nbytes
        for value in vars(optimizer).values()
        if isinstance(value, list)
        for a in value
        if isinstance(a, np.ndarray)
    )
    est = estimate(zoo.digits_cnn(), (1, 8, 8))
    assert est.optimizer_state_bytes(name) == kept


def test_layer_shapes_leave_the_layer_unbuilt() -> None:
    layer = Dense(units=5)
    shapes = layer.shapes((2, 3, 4))
    assert shapes.out_shape == (5,)
    assert dict(shapes.parameters) == {"weight": (24, 5), "bias": (5,)}
    assert layer.in_shape is None and layer.parameters() == {}


class _Doubler(Layer):
    """A custom layer that changes its shape in _build without saying so in _shapes."""

    type_name = "doubler"
    _defaults: ClassVar[dict[str, Any]] = {}

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.weight = Parameter(np.ones(in_shape))
        return in_shape


def test_a_layer_that_builds_without_shapes_cannot_be_estimated() -> None:
    with pytest.raises(SpecError, match="overrides _build\\(\\) but not _shapes\\(\\)"):
        _Doubler().shapes((1, 2, 2))


STRIDED_SAME: Architecture = [
    # 'same' padding at stride 2 depends on the input size: top pad 0 for 28, 1 for 27
    {"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"},
    {"type": "maxpool2d", "size": 3, "stride": 2, "padding": "same"},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 2},
]


@pytest.mark.parametrize(
    ("arch", "shape"),
    [(z[1], z[2]) for z in ZOO] + [(STRIDED_SAME, (1, 28, 28)), (STRIDED_SAME, (1, 27, 27))],
    ids=[z[0] for z in ZOO] + ["strided_same_28", "strided_same_27"],
)
def test_the_estimate_summary_is_the_built_models_summary(
    arch: Architecture, shape: tuple[int, int, int]
) -> None:
    built = Sequential.from_spec(arch, shape).summary()
    assert estimate(arch, shape).summary() == built
    assert str(estimate(arch, shape).summary()) == str(built)


def test_random_architectures_summarise_alike() -> None:
    compared = 0
    for arch in RANDOM:
        try:
            model = Sequential.from_spec(arch, (2, 9, 8))
        except SpecError:
            continue
        assert estimate(arch, (2, 9, 8)).summary() == model.summary()
        compared += 1
    assert compared > 0
