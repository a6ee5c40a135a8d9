"""Adding a layer is one class: a layer defined here, outside core/, trains and joins the compiled
inference plan (with its fusion rules); an inherited or wrong step is reported (a layer with no
step at all: tests/core/test_inference.py)."""

from __future__ import annotations

from typing import Any, ClassVar

import numba
import numpy as np
import pytest

from core.gradcheck import check_layer, numerical_gradient, relative_error
from core.inference import InferencePlan, PlanBuilder, PlanStepError, UnsupportedModel
from core.layers import Conv2D, Dense, Flatten, Layer, ReLU, serial_when_small
from core.model import Sequential

TOL = 1e-5


class Scale(Layer):
    """y = factor * x (any shape); dy/dx = factor. Everything about the layer is in this class."""

    type_name = "scale"
    _defaults: ClassVar[dict[str, Any]] = {"factor": 2.0}

    def _configure(self) -> None:
        self.factor = float(self.options["factor"])

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self._input(x) * self.dtype.type(self.factor)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.asarray(dout, self.dtype) * self.dtype.type(self.factor)

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.channel_affine(scale=self.factor)


def _scaled_net(dtype: Any = np.float32) -> Sequential:
    layers = [
        Conv2D(filters=3, kernel_size=3),
        Scale(factor=-0.5),
        ReLU(),
        Flatten(),
        Dense(units=4),
        Scale(factor=3.0),
    ]
    return Sequential(layers, (2, 6, 5), seed=1, dtype=dtype)


def test_custom_layer_gradients_match_finite_differences() -> None:
    layer = Scale(factor=-1.5)
    layer.build((2, 3, 3), np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 3))
    assert max(check_layer(layer, x).values()) < 1e-6


def test_custom_layer_backpropagates_through_a_sequential() -> None:
    model = _scaled_net(np.float64)
    x = np.random.default_rng(2).standard_normal((2, *model.input_shape))
    r = np.random.default_rng(3).standard_normal((2, model.num_classes))

    def loss() -> float:
        return float(np.sum(model.forward(x) * r))

    model.zero_grad()
    model.forward(x)
    dx = model.backward(r)
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    conv_weight = model.layers[0].parameters()["weight"]
    assert relative_error(conv_weight.grad, numerical_gradient(loss, conv_weight.value)) < 1e-6


def test_custom_layer_joins_the_plan_and_fuses_like_a_batchnorm() -> None:
    model = _scaled_net()
    plan = model.inference_plan()
    assert plan is not None
    # after a conv the scale folds into its epilogue (as a batchnorm would); after a dense it
    # is a stand-alone per-feature affine
    assert plan.labels == ["0 conv2d+scale+relu+flatten", "4 dense", "5 scale"]
    x = np.random.default_rng(4).standard_normal((3, *model.input_shape)).astype(np.float32)
    ref = model.forward(x)
    np.testing.assert_allclose(model.logits(x), ref, atol=TOL * max(1.0, np.abs(ref).max()))


def test_subclass_that_overrides_forward_does_not_inherit_its_parents_step() -> None:
    class ShiftedReLU(ReLU):
        def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
            return super().forward(x, training=training) + 1

    model = Sequential([Flatten(), ShiftedReLU(), Dense(units=2)], (1, 2, 2))
    with pytest.raises(UnsupportedModel, match=r"ShiftedReLU overrides forward\(\).*ReLU"):
        InferencePlan.compile(model)
    x = np.ones((1, 1, 2, 2), np.float32)
    np.testing.assert_allclose(model.logits(x), model.forward(x))


def test_step_that_does_not_fit_the_shapes_is_an_error_not_a_fallback() -> None:
    class BadDense(Dense):
        def plan_step(self, plan: PlanBuilder) -> None:
            assert self.weight is not None
            plan.conv(
                self.weight,
                None,
                groups=1,
                kernel=(1, 1),
                stride=(1, 1),
                padding=(0, 0, 0, 0),
                dilation=(1, 1),
            )

    model = Sequential([BadDense(units=2)], (1, 2, 2))
    with pytest.raises(PlanStepError, match=r"layer 0 \(dense, BadDense\).*\(C, H, W\) output"):
        model.inference_plan()


def test_step_that_adds_nothing_is_an_error() -> None:
    class Forgetful(Flatten):
        def plan_step(self, plan: PlanBuilder) -> None:
            pass

    model = Sequential([Forgetful(), Dense(units=2)], (1, 2, 2))
    with pytest.raises(PlanStepError, match=r"added no step.*plan\.identity\(\)"):
        InferencePlan.compile(model)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs a multi-thread Numba pool")
def test_serial_when_small_runs_one_sample_on_the_calling_thread_only() -> None:
    class ThreadProbe(Layer):
        type_name = "thread_probe"

        @serial_when_small
        def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
            self.threads_seen = numba.get_num_threads()
            return x

    probe = ThreadProbe()
    before = numba.get_num_threads()
    assert before >= 2
    probe.forward(np.zeros((1, 16, 64, 64), np.float32))  # one sample (65,536 elements)
    assert probe.threads_seen == 1
    probe.forward(np.zeros((8, 4, 2, 2), np.float32))  # 128 elements < SERIAL_BELOW
    assert probe.threads_seen == 1
    probe.forward(np.zeros((2, 16, 64, 64), np.float32))  # 131,072 elements, 2 samples
    assert probe.threads_seen == before
    assert numba.get_num_threads() == before
