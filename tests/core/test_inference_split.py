"""A single sample's dense layers split over the threads (core.inference.DENSE_SPLIT_MACS): the
split plan's outputs equal the layer path's and the reference twin's, with and without bias,
for row counts that do not divide evenly between the threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from core import inference
from core.inference import InferencePlan
from core.kernels import infer as ik
from core.model import Sequential

TOL = 1e-5


def _dense_net(inputs: int, units: int, bias: bool) -> Sequential:
    model = Sequential.from_spec(
        [
            {"type": "flatten"},
            {"type": "dense", "units": units, "use_bias": bias},
            {"type": "relu"},
            {"type": "dense", "units": 3},
        ],
        (1, 1, inputs),
        seed=0,
    )
    rng = np.random.default_rng(1)
    for param in model.parameters():  # non-zero biases, so a dropped bias would show
        param.value[...] = rng.standard_normal(param.value.shape).astype(param.value.dtype)
    return model


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("inputs", [1, 7, 301])
def test_split_dense_of_one_sample_matches_layer_path_and_twin(
    monkeypatch: pytest.MonkeyPatch, inputs: int, bias: bool
) -> None:
    if numba.get_num_threads() < 2:
        pytest.skip("the split needs two threads")
    monkeypatch.setattr(inference, "DENSE_SPLIT_MACS", 1)  # every dense layer of one sample
    model = _dense_net(inputs, 33, bias)
    plan = InferencePlan.compile(model)
    assert plan.layout[ik.L_DENSE_SPLIT] == 1
    x = np.random.default_rng(2).standard_normal((1, 1, 1, inputs)).astype(np.float32)
    ref = model.forward(x, training=False)
    atol = TOL * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(plan.logits(x), ref, atol=atol)
    twin = np.empty((1, 3), np.float32)
    scratch = next(iter(plan._scratch.values()))
    ik.run_program_reference(
        plan.prog, plan.fparams, list(plan._arrays_py), plan.layout, x.reshape(1, -1), twin,
        scratch, False, 0,
    )  # fmt: skip
    np.testing.assert_allclose(plan.logits(x), twin, atol=atol)


def test_batches_ignore_the_dense_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several samples split over the threads by sample, never inside a layer."""
    monkeypatch.setattr(inference, "DENSE_SPLIT_MACS", 1)
    model = _dense_net(50, 20, True)
    x = np.random.default_rng(3).standard_normal((5, 1, 1, 50)).astype(np.float32)
    np.testing.assert_allclose(
        InferencePlan.compile(model).logits(x), model.forward(x, training=False), atol=1e-4
    )
