"""Warm start in `core`: which layers transfer (`plan_transfer`), copying and freezing
(`warm_start`, `Sequential.freeze`), and training with frozen layers (`fit`): frozen arrays
are bit-identical afterwards, gradients still reach earlier layers, resume stays exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.datasets import Dataset, Normalisation, load_digits
from core.errors import SpecError
from core.losses import softmax_cross_entropy
from core.model import Sequential
from core.training import TrainConfig, fit
from core.warm_start import TransferPlan, plan_transfer, rescale_normalisation, warm_start

DIGITS = (1, 8, 8)


def _arch(classes: int = 10, filters: int = 4, batchnorm: bool = False) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": filters, "kernel_size": 3, "padding": "same"},
    ]
    if batchnorm:
        layers.append({"type": "batchnorm2d"})
    layers += [
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": classes},
    ]
    return layers


def _plan(architecture: list[dict[str, Any]], **kwargs: Any) -> tuple[TransferPlan, list[str]]:
    shape = kwargs.pop("input_shape", DIGITS)
    plan, problems = plan_transfer(_arch(), DIGITS, architecture, shape, **kwargs)
    return plan, [".".join(map(str, loc)) + ": " + message for loc, message in problems]


# --- plan_transfer ------------------------------------------------------------------------------


def test_the_same_architecture_copies_every_layer_with_parameters() -> None:
    plan, problems = _plan(_arch())
    assert problems == []
    assert plan == TransferPlan(copied=(0, 3, 6), frozen=(), head=None)


def test_reset_head_leaves_the_last_layer_out_and_lets_its_units_differ() -> None:
    plan, problems = _plan(_arch(classes=5), reset_head=True, freeze=[0])
    assert problems == []
    assert plan == TransferPlan(copied=(0, 3), frozen=(0,), head=6)


def test_another_class_count_without_reset_head_names_the_head_and_both_shapes() -> None:
    _, problems = _plan(_arch(classes=5))
    assert problems == [
        "architecture.6: dense parameters weight (96, 5), bias (5,) here, weight (96, 10), "
        "bias (10,) in the source model"
    ]


def test_a_layer_of_another_size_names_its_index_and_both_shapes() -> None:
    _, problems = _plan(_arch(filters=8), reset_head=True)
    assert problems == [
        "architecture.0: conv2d parameters weight (8, 1, 3, 3), bias (8,) here, "
        "weight (4, 1, 3, 3), bias (4,) in the source model",
        "architecture.3: conv2d parameters weight (6, 8, 3, 3), bias (6,) here, "
        "weight (6, 4, 3, 3), bias (6,) in the source model",
    ]


def test_other_input_channels_name_the_first_conv_and_both_inputs() -> None:
    _, problems = _plan(_arch(), input_shape=(3, 8, 8), reset_head=True)
    assert problems == [
        "architecture.0: conv2d parameters weight (4, 3, 3, 3), bias (4,) here, "
        "weight (4, 1, 3, 3), bias (4,) in the source model "
        "(input (3, 8, 8) here, (1, 8, 8) in the source model)"
    ]


def test_a_layer_of_another_type_or_beyond_the_source_is_named() -> None:
    arch = _arch()
    arch[3] = {"type": "batchnorm2d"}
    arch[6:6] = [{"type": "dense", "units": 96}]
    _, problems = _plan(arch)
    assert problems == [
        "architecture.3: batchnorm2d here, conv2d at layer 3 of the source model",
        "architecture.6: dense parameters weight (64, 96), bias (96,) here, weight (96, 10), "
        "bias (10,) in the source model",
        "architecture.7: dense has parameters to copy, but the source model has only 7 layers",
    ]


def test_freeze_entries_must_name_layers_with_parameters() -> None:
    _, problems = _plan(_arch(), freeze=[1, 9, "batchnorm2d"])
    assert problems == [
        "init_from.freeze.0: layer 1 (relu) has no parameters to freeze",
        "init_from.freeze.1: no layer 9: the architecture has layers 0..6",
        "init_from.freeze.2: the architecture has no batchnorm2d layer with parameters",
    ]


def test_a_type_shorthand_freezes_every_layer_of_that_type() -> None:
    plan, problems = _plan(_arch(), freeze=["conv2d"])
    assert problems == []
    assert plan.frozen == (0, 3)


def test_the_reset_head_cannot_be_frozen() -> None:
    _, problems = _plan(_arch(classes=3), reset_head=True, freeze=["dense"])
    assert problems == [
        "init_from.freeze.0: layer 6 (dense) is the head that reset_head re-initialises: it "
        "cannot be frozen"
    ]


def test_freezing_everything_leaves_nothing_to_train() -> None:
    _, problems = _plan(_arch(), freeze=["conv2d", 6])
    assert problems == ["init_from.freeze: every layer with parameters is frozen: nothing to train"]


# --- warm_start and Sequential.freeze ------------------------------------------------------------


def _model(architecture: list[dict[str, Any]], seed: int) -> Sequential:
    return Sequential.from_spec(architecture, DIGITS, seed=seed)


def test_warm_start_copies_parameters_and_batchnorm_statistics_and_zeroes_the_head() -> None:
    source = _model(_arch(batchnorm=True), seed=1)
    bn = source.layers[1]
    bn.running_mean[...] = [0.5, 1.0, 1.5, 2.0]  # as if trained
    bn.running_var[...] = [2.0, 3.0, 4.0, 5.0]
    model = _model(_arch(classes=5, batchnorm=True), seed=2)
    plan, problems = plan_transfer(
        source.architecture, DIGITS, model.architecture, DIGITS, freeze=[0], reset_head=True
    )
    assert problems == []
    warm_start(model, source, plan)
    for key, value in source.named_arrays().items():
        if not key.startswith("7."):
            assert np.array_equal(model.named_arrays()[key], value), key
    assert not model.layers[7].weight.value.any() and not model.layers[7].bias.value.any()
    assert model.frozen == frozenset({0})


def test_freeze_refuses_a_layer_without_parameters() -> None:
    with pytest.raises(SpecError, match="layer 1: not a layer with parameters"):
        _model(_arch(), seed=0).freeze([1])


def test_trainable_parameters_leave_frozen_layers_out() -> None:
    model = _model(_arch(), seed=0)
    model.freeze([0, 3])
    head = model.layers[6].parameters()
    assert [id(p) for p in model.trainable_parameters()] == [id(p) for p in head.values()]


def _gradients(model: Sequential, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    model.zero_grad()
    _, _, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
    model.backward(dlogits)
    return {
        f"{i}.{name}": p.grad.copy()
        for i, layer in enumerate(model.layers)
        for name, p in layer.parameters().items()
    }


def test_gradients_flow_through_a_frozen_layer_to_earlier_ones() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, *DIGITS)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    free = _gradients(_model(_arch(), seed=3), x, y)
    middle_frozen = _model(_arch(), seed=3)
    middle_frozen.freeze([3])
    frozen = _gradients(middle_frozen, x, y)
    # the first conv's gradient went through the frozen conv: the same as with nothing frozen
    np.testing.assert_array_equal(frozen["0.weight"], free["0.weight"])
    np.testing.assert_array_equal(frozen["6.weight"], free["6.weight"])
    assert np.abs(free["3.weight"]).sum() > 0
    assert not frozen["3.weight"].any() and not frozen["3.bias"].any()


def test_backward_without_input_gradient_stops_below_the_lowest_trainable_layer() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, *DIGITS)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    model = _model(_arch(), seed=4)
    model.freeze([0])
    full = _gradients(model, x, y)
    model.zero_grad()
    _, _, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
    partial = model.backward(dlogits, input_grad=False)
    assert partial.shape == (4, 4, 4, 4)  # the input of layer 3, the lowest trainable one
    for key in ("3.weight", "3.bias", "6.weight", "6.bias"):
        layer, name = key.split(".")
        np.testing.assert_array_equal(model.layers[int(layer)].parameters()[name].grad, full[key])


def test_a_frozen_batchnorm_normalises_with_its_running_statistics_in_training() -> None:
    model = _model(_arch(batchnorm=True), seed=5)
    bn = model.layers[1]
    bn.running_mean[...] = 0.25
    x = np.random.default_rng(2).normal(size=(8, *DIGITS)).astype(np.float32)
    model.freeze([1])
    trained_mode = model.forward(x, training=True)
    np.testing.assert_array_equal(trained_mode, model.forward(x, training=False))
    assert np.all(bn.running_mean == np.float32(0.25))


def test_rescaled_normalisation_maps_equal_brightness_to_equal_values() -> None:
    # digits 0..16 -> 0..255: s = 255 / 16 = 15.9375; mean 4 -> 63.75, std 6 -> 95.625
    source = Normalisation(mean=[4.0], std=[6.0])
    scaled = rescale_normalisation(source, (0.0, 16.0), (0.0, 255.0))
    assert scaled == Normalisation(mean=[63.75], std=[95.625])
    pixel = np.array([[[[8.0]]]])
    np.testing.assert_allclose(scaled.apply(pixel * 15.9375), source.apply(pixel))


# --- fit with frozen layers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def _config(**overrides: Any) -> TrainConfig:
    config: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": {"type": "adam", "lr": 0.01},
        "validation_split": 0.1,
        "seed": 0,
    }
    config.update(overrides)
    return TrainConfig.model_validate(config)


def test_fit_leaves_frozen_arrays_bit_identical_and_trains_the_rest(digits: Dataset) -> None:
    model = _model(_arch(batchnorm=True), seed=6)
    model.freeze([0, 1])
    before = model.named_arrays()
    result = fit(model, digits, _config())
    after = model.named_arrays()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert np.array_equal(after[key], before[key]), key
    for key in ("4.weight", "4.bias", "7.weight", "7.bias"):
        assert not np.array_equal(after[key], before[key]), key
    assert result.metrics["test_accuracy"] > 0.5


def test_a_frozen_run_resumes_exactly_from_its_checkpoint(digits: Dataset, tmp_path: Path) -> None:
    config = _config(checkpoint_every=5)
    whole = _model(_arch(), seed=7)
    whole.freeze([0])
    fit(whole, digits, config)

    resumed = _model(_arch(), seed=7)
    resumed.freeze([0])
    steps = {"n": 0}

    def stop_after_eight() -> bool:
        steps["n"] += 1
        return steps["n"] > 8

    first = fit(resumed, digits, config, checkpoint_dir=tmp_path, should_stop=stop_after_eight)
    assert first.cancelled
    again = _model(_arch(), seed=7)
    again.freeze([0])
    fit(again, digits, config, checkpoint_dir=tmp_path)
    for key, value in whole.named_arrays().items():
        assert np.array_equal(again.named_arrays()[key], value), key


def test_a_checkpoint_of_other_frozen_layers_is_refused(digits: Dataset, tmp_path: Path) -> None:
    config = _config(checkpoint_every=3)
    model = _model(_arch(), seed=8)
    model.freeze([0])
    fit(model, digits, config, checkpoint_dir=tmp_path, should_stop=lambda: model.frozen == {0})
    other = _model(_arch(), seed=8)
    with pytest.raises(SpecError, match="belongs to a different run"):
        fit(other, digits, config, checkpoint_dir=tmp_path)


def test_fit_normalises_with_the_normalisation_it_is_given(digits: Dataset) -> None:
    shifted = Normalisation(mean=[8.0], std=[2.0])  # not the data set's own statistics
    plain = fit(_model(_arch(), seed=9), digits, _config(epochs=1))
    odd = fit(_model(_arch(), seed=9), digits, _config(epochs=1), normalisation=shifted)
    assert odd.history[0]["loss"] != plain.history[0]["loss"]
