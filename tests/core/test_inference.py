"""The compiled inference plan equals the layer-by-layer forward (the oracle)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from core.errors import ShapeError
from core.inference import InferencePlan, UnsupportedModel
from core.kernels import blas
from core.kernels import infer as ik
from core.layers import Layer
from core.model import Sequential, softmax
from core.zoo import lenet5

TOL = 1e-5


def _randomise(model: Sequential, seed: int) -> None:
    """Non-trivial biases and BatchNorm statistics (a fresh model has zeros and ones)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, p in layer.parameters().items():
            if name != "weight" or layer.type_name == "batchnorm2d":
                p.value[...] = rng.uniform(0.5, 1.5, p.value.shape) * rng.choice([-1, 1])
        for name, buf in layer.buffers().items():
            buf[...] = (
                rng.uniform(0.5, 2.0, buf.shape) if "var" in name else rng.normal(0, 1, buf.shape)
            )


def _check(model: Sequential, n: int = 3, seed: int = 0) -> None:
    _randomise(model, seed)
    x = np.random.default_rng(seed + 1).standard_normal((n, *model.input_shape))
    x = x.astype(model.dtype)
    ref = model.forward(x, training=False)
    plan = InferencePlan.compile(model)
    np.testing.assert_allclose(plan.logits(x), ref, atol=TOL * max(1.0, np.abs(ref).max()))
    proba = softmax(ref.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(plan.predict_proba(x), proba, atol=TOL)


CONV_CASES: list[dict[str, Any]] = [
    {"filters": 4, "kernel_size": 3},
    {"filters": 4, "kernel_size": 3, "padding": "same"},
    {"filters": 5, "kernel_size": [3, 2], "padding": [1, 0, 2, 1]},
    {"filters": 4, "kernel_size": 3, "stride": 2, "padding": 1},
    {"filters": 3, "kernel_size": [2, 3], "stride": [2, 1]},
    {"filters": 4, "kernel_size": 3, "dilation": 2, "padding": "same"},
    {"filters": 6, "kernel_size": 3, "groups": 2, "padding": 1},
    {"filters": 6, "kernel_size": 3, "groups": 6, "padding": 1, "use_bias": False},
    {"filters": 6, "kernel_size": 1},
    {"filters": 4, "kernel_size": 5, "stride": 3, "dilation": [1, 2], "padding": 2},
]


@pytest.mark.parametrize("conv", CONV_CASES)
def test_conv_geometries_match_layer_forward(conv: dict[str, Any]) -> None:
    arch = [{"type": "conv2d", **conv}, {"type": "relu"}, {"type": "flatten"}]
    arch.append({"type": "dense", "units": 3})
    _check(Sequential.from_spec(arch, (6, 9, 8)))


@pytest.mark.parametrize(
    "middle",
    [
        [{"type": "batchnorm2d"}, {"type": "relu"}],  # fused into the conv
        [{"type": "relu"}, {"type": "batchnorm2d", "eps": 1e-3}],  # stand-alone affine
        [{"type": "leaky_relu", "alpha": 0.2}, {"type": "tanh"}],  # second activation alone
        [{"type": "sigmoid"}, {"type": "dropout", "rate": 0.3}],
        [{"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1}, {"type": "relu"}],
        [{"type": "avgpool2d", "size": 2, "padding": 1}],
        [{"type": "maxpool2d", "size": 2}, {"type": "batchnorm2d"}, {"type": "leaky_relu"}],
        [{"type": "dropout"}, {"type": "batchnorm2d"}],
    ],
)
def test_layer_mixes_match_layer_forward(middle: list[dict[str, Any]]) -> None:
    arch = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1}, *middle]
    arch += [{"type": "global_avgpool2d"}, {"type": "dense", "units": 5}, {"type": "tanh"}]
    arch += [{"type": "dense", "units": 3, "use_bias": False}]
    _check(Sequential.from_spec(arch, (2, 7, 7)))


def test_random_models_match_layer_forward() -> None:
    rng = np.random.default_rng(42)
    for trial in range(12):
        arch: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(1, 4))
            groups = int(rng.choice([1, 2]))
            arch.append(
                {
                    "type": "conv2d",
                    "filters": 2 * int(rng.integers(1, 4)),
                    "kernel_size": k,
                    "stride": int(rng.integers(1, 3)),
                    "dilation": int(rng.integers(1, 3)) if k > 1 else 1,
                    "padding": "same",
                    "groups": groups,
                }
            )
            arch += [
                [{"type": "batchnorm2d"}],
                [{"type": "relu"}],
                [{"type": "batchnorm2d"}, {"type": "relu"}],
                [{"type": "sigmoid"}, {"type": "dropout"}],
                [],
            ][int(rng.integers(0, 5))]
        pool = ["maxpool2d", "avgpool2d", "global_avgpool2d"][int(rng.integers(0, 3))]
        arch.append({"type": pool} if pool == "global_avgpool2d" else {"type": pool, "size": 2})
        arch += [{"type": "flatten"}, {"type": "dense", "units": 7}, {"type": "relu"}]
        arch.append({"type": "dense", "units": 4})
        model = Sequential.from_spec(arch, (2, 12, 11), seed=trial)
        _check(model, n=int(rng.integers(1, 40)), seed=trial)


def test_lenet_batches_over_threads_match() -> None:
    model = Sequential.from_spec(lenet5(), (1, 28, 28))
    _check(model, n=70)


def test_float64_model_matches() -> None:
    arch = [
        {"type": "conv2d", "filters": 3, "kernel_size": 3},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ]
    model = Sequential.from_spec(arch, (1, 6, 6), dtype=np.float64)
    _check(model)
    assert model.logits(np.zeros((2, 1, 6, 6))).dtype == np.float64
    assert model.predict_proba(np.zeros((2, 1, 6, 6))).dtype == np.float32


def test_sequential_uses_plan_and_matches_layer_path() -> None:
    model = Sequential.from_spec(lenet5(), (1, 28, 28))
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    assert model.inference_plan() is not None
    fast = model.predict_proba(x)
    model.use_inference_plan = False
    slow = model.predict_proba(x)
    np.testing.assert_allclose(fast, slow, atol=TOL)
    assert fast.dtype == np.float32 and fast.shape == (5, 10)


def test_plan_sees_in_place_weight_and_statistics_changes() -> None:
    arch = [
        {"type": "conv2d", "filters": 3, "kernel_size": 3},
        {"type": "batchnorm2d"},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ]
    model = Sequential.from_spec(arch, (1, 5, 5))
    x = np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype(np.float32)
    model.predict_proba(x)
    model.layers[0].parameters()["weight"].value[...] *= -2
    model.layers[1].running_var[...] = 3.0
    np.testing.assert_allclose(model.logits(x), model.forward(x), atol=TOL)


def test_plan_is_rebuilt_when_a_parameter_array_is_replaced() -> None:
    arch = [{"type": "flatten"}, {"type": "dense", "units": 2}]
    model = Sequential.from_spec(arch, (1, 2, 2))
    x = np.ones((1, 1, 2, 2), np.float32)
    first = model.inference_plan()
    param = model.layers[1].parameters()["weight"]
    param.value = param.value + 1
    assert first is not None and not first.is_current()
    np.testing.assert_allclose(model.logits(x), model.forward(x), atol=TOL)
    assert model.inference_plan() is not first


def test_unknown_layer_falls_back_to_layer_path() -> None:
    class Double(Layer):
        type_name = "double"

        def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
            return self._input(x) * 2

    from core.layers import Dense, Flatten

    model = Sequential([Flatten(), Double(), Dense(units=2)], (1, 2, 2))
    with pytest.raises(UnsupportedModel, match=r"layer 1 \(double, Double\).*no plan_step"):
        InferencePlan.compile(model)
    assert model.inference_plan() is None
    x = np.ones((3, 1, 2, 2), np.float32)
    np.testing.assert_allclose(model.logits(x), model.forward(x))


def test_shape_errors_and_empty_batch() -> None:
    model = Sequential.from_spec([{"type": "flatten"}, {"type": "dense", "units": 2}], (1, 2, 2))
    with pytest.raises(ShapeError, match=r"expects \(N, 1, 2, 2\)"):
        model.predict_proba(np.zeros((1, 1, 3, 2), np.float32))
    assert model.predict_proba(np.zeros((0, 1, 2, 2), np.float32)).shape == (0, 2)


def test_concurrent_callers_get_their_own_results() -> None:
    model = Sequential.from_spec(lenet5(), (1, 28, 28))
    xs = [
        np.random.default_rng(i).standard_normal((4, 1, 28, 28)).astype(np.float32)
        for i in range(4)
    ]
    expected = [model.forward(x) for x in xs]
    errors: list[float] = []

    def work(i: int) -> None:
        for _ in range(20):
            errors.append(float(np.abs(model.logits(xs[i]) - expected[i]).max()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(errors) <= TOL


def test_run_program_matches_its_reference_twin() -> None:
    arch = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "leaky_relu", "alpha": 0.1},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "groups": 2, "dilation": 2},
        {"type": "sigmoid"},
        {"type": "avgpool2d", "size": 2, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ]
    model = Sequential.from_spec(arch, (2, 13, 12))
    _randomise(model, 3)
    plan = InferencePlan.compile(model)
    x = np.random.default_rng(0).standard_normal((5, 2 * 13 * 12)).astype(np.float32)
    plan.logits(x.reshape(5, 2, 13, 12))  # builds the typed weight list and scratch
    scratch = next(iter(plan._scratch.values()))
    arrays = list(plan._arrays_py)
    for softmax_flag, fptr in ((False, 0), (True, 0), (False, blas.sgemm_pointer())):
        fast = np.empty((5, 3), np.float32)
        slow = np.empty((5, 3), np.float32)
        args = (plan.prog, plan.fparams)
        ik.run_program(*args, plan._arrays, plan.layout, x, fast, scratch, softmax_flag, fptr)
        ik.run_program_reference(*args, arrays, plan.layout, x, slow, scratch, softmax_flag, 0)
        np.testing.assert_allclose(fast, slow, atol=TOL)
