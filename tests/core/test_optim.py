"""Optimizers against hand-computed steps; state round trip; config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import SpecError
from core.optim import SGD, Adam, AdamW, optimizer_from_config
from core.parameter import Parameter


def _param(value, grad):
    p = Parameter(np.array(value, np.float64))
    p.grad[...] = grad
    return p


def test_plain_sgd_step():
    p = _param([1.0, -2.0], [0.5, 1.0])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.value, [0.95, -2.1])


def test_sgd_momentum_two_steps():
    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # buf = 1 -> w = 0.9
    opt.step()  # buf = 0.9*1 + 1 = 1.9 -> w = 0.9 - 0.19 = 0.71
    np.testing.assert_allclose(p.value, [0.71])


def test_sgd_nesterov_and_weight_decay():
    p = _param([2.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)
    opt.step()  # d = 1 + 0.2 = 1.2; buf = 1.2; update = 1.2 + 0.6 = 1.8; w = 1.82
    np.testing.assert_allclose(p.value, [1.82])
    opt.step()  # d = 1 + 0.182 = 1.182; buf = 0.6 + 1.182 = 1.782; upd = 1.182 + 0.891 = 2.073
    np.testing.assert_allclose(p.value, [1.82 - 0.2073])


def test_adam_first_steps_by_hand():
    p = _param([1.0, 1.0], [0.1, -3.0])
    opt = Adam([p], lr=0.01)
    opt.step()  # bias-corrected first step moves each weight by lr * sign(g)
    np.testing.assert_allclose(p.value, [0.99, 1.01], rtol=1e-6)
    p.grad[...] = [0.2, 1.0]
    opt.step()
    m = 0.9 * 0.01 * np.array([0.1, -3.0]) / 0.1 * 0.1 + 0.1 * np.array([0.2, 1.0])
    m = 0.9 * (0.1 * np.array([0.1, -3.0])) + 0.1 * np.array([0.2, 1.0])
    v = 0.999 * (0.001 * np.array([0.01, 9.0])) + 0.001 * np.array([0.04, 1.0])
    step = 0.01 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(p.value, np.array([0.99, 1.01]) - step, rtol=1e-6)


def test_adam_weight_decay_is_l2_added_to_the_gradient():
    p = _param([2.0], [1.0])
    Adam([p], lr=0.1, weight_decay=0.5).step()
    # g' = g + wd*w = 1 + 0.5*2 = 2; m = 0.1*2 = 0.2, v = 0.001*4 = 0.004;
    # mhat = 0.2/(1-0.9) = 2, vhat = 0.004/(1-0.999) = 4; move = 0.1 * 2/sqrt(4) = 0.1:
    # Adam's normalisation cancels the decay term -> w = 1.9
    np.testing.assert_allclose(p.value, [1.9], rtol=1e-6)


def test_adamw_decays_the_weight_apart_from_the_adam_step():
    """Decoupled decay (Loshchilov & Hutter): w -= lr*wd*w, then the Adam step of the raw
    gradient. The same case with L2 gives 1.9 after one step and ~1.80007 after two."""
    p = _param([2.0], [1.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    opt.step()
    # decay: w = 2 * (1 - 0.1*0.5) = 1.9; m = 0.1*1 = 0.1, v = 0.001*1 = 0.001;
    # mhat = 0.1/(1-0.9) = 1, vhat = 0.001/(1-0.999) = 1; move = 0.1 * 1/sqrt(1) -> w = 1.8
    np.testing.assert_allclose(p.value, [1.8], rtol=1e-6)
    opt.step()  # the same gradient, 1
    # decay: w = 1.8 * 0.95 = 1.71; m = 0.9*0.1 + 0.1*1 = 0.19, mhat = 0.19/(1-0.81) = 1;
    # v = 0.999*0.001 + 0.001*1 = 0.001999, vhat = 0.001999/(1-0.998001) = 1;
    # move = 0.1 -> w = 1.61
    np.testing.assert_allclose(p.value, [1.61], rtol=1e-6)
    # With L2 instead: g' = 1 + 0.5*1.9 = 1.95; m = 0.9*0.2 + 0.1*1.95 = 0.375,
    # v = 0.999*0.004 + 0.001*1.95**2 = 0.0077985; move = 0.1 * (0.375/0.19) /
    # sqrt(0.0077985/0.001999) = 0.099926 -> w = 1.800074


def test_step_uses_the_lr_argument():
    p = _param([1.0], [1.0])
    SGD([p], lr=0.1).step(lr=0.5)
    np.testing.assert_allclose(p.value, [0.5])


def test_float32_parameters_stay_float32_and_in_place():
    p = Parameter(np.ones(3, np.float32))
    value = p.value
    p.grad[...] = 1
    Adam([p]).step()
    assert p.value is value and p.value.dtype == np.float32


@pytest.mark.parametrize(
    "cfg",
    [
        {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"type": "adam", "lr": 0.01},
        {"type": "adamw", "lr": 0.01, "weight_decay": 0.1},
    ],
)
def test_state_dict_resumes_exactly(cfg):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(6)]

    def run(steps, opt, p):
        for g in steps:
            p.grad[...] = g
            opt.step()

    p1 = Parameter(np.ones(4))
    o1 = optimizer_from_config(cfg, [p1])
    run(grads, o1, p1)

    p2 = Parameter(np.ones(4))
    o2 = optimizer_from_config(cfg, [p2])
    run(grads[:3], o2, p2)
    state = {k: v.copy() for k, v in o2.state_dict().items()}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    p3 = Parameter(p2.value.copy())
    o3 = optimizer_from_config(cfg, [p3])
    o3.load_state_dict(state)
    run(grads[3:], o3, p3)
    np.testing.assert_array_equal(p1.value, p3.value)


def test_load_state_dict_rejects_wrong_shapes():
    opt = Adam([Parameter(np.ones(3))])
    state = opt.state_dict()
    state["exp_avg.0"] = np.zeros(4)
    with pytest.raises(SpecError, match=r"exp_avg\.0.*\(4,\).*\(3,\)"):
        opt.load_state_dict(state)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"type": "rmsprop"}, "rmsprop"),
        ({"type": "adam", "momentum": 0.9}, "momentum"),
        ({"type": "sgd", "lr": -1}, "lr"),
        ({"type": "adam", "betas": [0.9, 1.0]}, "betas"),
        ({"type": "sgd", "nesterov": True}, "nesterov"),
    ],
)
def test_bad_optimizer_configs(cfg, match):
    with pytest.raises(SpecError, match=match):
        optimizer_from_config(cfg, [Parameter(np.ones(1))])


def test_zero_grad_clears_all():
    p = _param([1.0], [3.0])
    SGD([p]).zero_grad()
    assert p.grad[0] == 0 and not math.isnan(p.value[0])
