"""Saliency (input gradient), feature maps and receptive-field boxes (core.explain)."""

from __future__ import annotations

import numpy as np
import pytest

from core.explain import (
    Box,
    feature_maps,
    input_gradient,
    input_gradient_reference,
    saliency,
    unit_box,
)
from core.model import Sequential
from core.summary import ReceptiveField

#: 3x3 conv -> 2x2 pool -> 3x3 conv on 12x12, all "valid": the hand-computed case.
STACK = [
    {"type": "conv2d", "filters": 2, "kernel_size": 3},
    {"type": "avgpool2d", "size": 2},
    {"type": "conv2d", "filters": 2, "kernel_size": 3},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def small_model(arch: list[dict], shape: tuple[int, int, int], seed: int = 0) -> Sequential:
    model = Sequential.from_spec(arch, shape, dtype=np.float64, seed=seed)
    return model


def test_hand_computed_stack_fields_and_boxes() -> None:
    rows = small_model(STACK, (1, 12, 12)).summary().rows
    # conv 3x3: size 3, jump 1, centre of unit 0 at pixel 1
    assert (rows[0].field.size, rows[0].field.jump, rows[0].field.start) == ((3, 3), (1, 1), (1, 1))
    # pool 2: size 3 + 1*1 = 4, jump 2, start 1 + 0.5*1 = 1.5
    assert (rows[1].field.size, rows[1].field.jump, rows[1].field.start) == (
        (4, 4),
        (2, 2),
        (1.5, 1.5),
    )
    # conv 3x3: size 4 + 2*2 = 8, jump 2, start 1.5 + 1*2 = 3.5
    field = rows[2].field
    assert (field.size, field.jump, field.start) == ((8, 8), (2, 2), (3.5, 3.5))
    # unit (0, 0): centre 3.5, 3.5 +- 3.5 -> pixels 0..7; unit (1, 2): centres 5.5, 7.5
    assert unit_box(field, 0, 0, 12, 12) == Box(0, 0, 7, 7)
    assert unit_box(field, 1, 2, 12, 12) == Box(2, 4, 9, 11)


def test_a_units_box_is_exactly_where_its_input_gradient_lives() -> None:
    model = small_model(STACK, (1, 12, 12), seed=3)
    x = np.random.default_rng(1).standard_normal((1, 1, 12, 12))
    h = x
    for layer in model.layers[:3]:
        h = layer.forward(h, training=False)
    field = model.summary().rows[2].field
    for y, xx in [(0, 0), (1, 2), (2, 1)]:
        dout = np.zeros_like(h)
        dout[0, 1, y, xx] = 1.0
        g = dout
        for layer in reversed(model.layers[:3]):
            g = layer.backward(g)
        rows, cols = np.nonzero(np.abs(g[0, 0]) > 1e-12)
        box = unit_box(field, y, xx, 12, 12)
        assert (rows.min(), cols.min(), rows.max(), cols.max()) == (
            box.top,
            box.left,
            box.bottom,
            box.right,
        )


def test_boxes_are_clipped_to_the_image_when_the_field_hangs_into_padding() -> None:
    field = ReceptiveField().through((5, 5), (1, 1), (2, 2), (1, 1))  # size 5, start 0
    assert unit_box(field, 0, 0, 28, 28) == Box(0, 0, 2, 2)
    assert unit_box(field, 27, 27, 28, 28) == Box(25, 25, 27, 27)


def test_a_global_field_has_no_box() -> None:
    with pytest.raises(ValueError, match="global"):
        unit_box(ReceptiveField(is_global=True), 0, 0, 8, 8)


@pytest.mark.parametrize(
    "arch",
    [
        STACK,
        [
            {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 2},
            {"type": "tanh"},
            {"type": "flatten"},
            {"type": "dense", "units": 4},
        ],
    ],
)
def test_input_gradient_matches_finite_differences(arch: list[dict]) -> None:
    model = small_model(arch, (2, 10, 10), seed=5)
    x = np.random.default_rng(2).standard_normal((2, 2, 10, 10))
    targets = [0, 1]
    fast = input_gradient(model, x, targets)
    slow = input_gradient_reference(model, x, targets, h=1e-5)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-7)
    assert all(not p.grad.any() for p in model.parameters())  # the pass leaves no grads behind


def test_saliency_is_the_channel_max_of_the_absolute_gradient() -> None:
    model = small_model(STACK, (3, 12, 12))
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12))
    grad = input_gradient(model, x, [2, 0])
    maps = saliency(model, x, [2, 0])
    assert maps.shape == (2, 12, 12)
    np.testing.assert_array_equal(maps, np.abs(grad).max(axis=1))


def test_targets_are_checked() -> None:
    model = small_model(STACK, (1, 12, 12))
    x = np.zeros((1, 1, 12, 12))
    with pytest.raises(ValueError, match=r"targets: class indices must be in \[0, 3\)"):
        saliency(model, x, [3])
    with pytest.raises(ValueError, match="one class index per sample"):
        saliency(model, x, [0, 1])


def test_feature_maps_are_the_layer_outputs() -> None:
    model = small_model(STACK, (1, 12, 12))
    x = np.random.default_rng(0).standard_normal((1, 1, 12, 12))
    maps = feature_maps(model, x, [0, 2])
    assert sorted(maps) == [0, 2]
    assert maps[0].shape == (1, 2, 10, 10) and maps[2].shape == (1, 2, 3, 3)
    np.testing.assert_allclose(
        maps[2], model.layers[2].forward(model.layers[1].forward(maps[0]), training=False)
    )
    with pytest.raises(ValueError, match=r"layers: indices must be in \[0, 5\)"):
        feature_maps(model, x, [5])
