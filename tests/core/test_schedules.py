"""Learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from core.errors import SpecError
from core.schedules import schedule_from_config


def test_none_is_constant():
    lr = schedule_from_config(None, 0.1, 100)
    assert lr(0) == lr(99) == 0.1


def test_step_schedule():
    lr = schedule_from_config({"type": "step", "step_size": 10, "gamma": 0.5}, 1.0, 100)
    assert [lr(0), lr(9), lr(10), lr(25)] == [1.0, 1.0, 0.5, 0.25]


def test_cosine_schedule_ends_at_min_lr():
    lr = schedule_from_config({"type": "cosine", "min_lr": 0.1}, 1.0, 100)
    assert lr(0) == 1.0
    assert lr(50) == pytest.approx(0.55)
    assert lr(100) == pytest.approx(0.1)
    assert lr(500) == pytest.approx(0.1)


def test_warmup_rises_linearly_then_hands_over():
    lr = schedule_from_config({"type": "cosine", "warmup_steps": 4}, 0.8, 14)
    assert [lr(0), lr(1), lr(3)] == pytest.approx([0.2, 0.4, 0.8])
    assert lr(4) == pytest.approx(0.8)
    assert lr(9) == pytest.approx(0.4 * (1 + math.cos(math.pi / 2)))


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"type": "linear"}, "linear"),
        ({"type": "step"}, "step_size"),
        ({"type": "step", "step_size": 0}, "step_size"),
        ({"type": "cosine", "gamma": 0.1}, "gamma"),
        ({"type": "constant", "warmup_steps": -1}, "warmup_steps"),
        ({"type": "cosine", "min_lr": 2.0}, "min_lr"),
    ],
)
def test_bad_schedules(cfg, match):
    with pytest.raises(SpecError, match=match):
        schedule_from_config(cfg, 1.0, 10)
