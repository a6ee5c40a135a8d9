"""Sequential: spec validation, forward/backward, prediction, evaluation, weight round trips."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import ArtifactError, ShapeError, SpecError
from core.losses import softmax_cross_entropy
from core.model import Sequential

SMALL: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 4},
]


def test_unknown_layer_type_names_the_index() -> None:
    arch = [{"type": "flatten"}, {"type": "conv3d", "filters": 2}]
    with pytest.raises(SpecError, match=r"layer 1 \(conv3d\): unknown layer type 'conv3d'"):
        Sequential.from_spec(arch, (1, 8, 8))


def test_unknown_option_names_the_index_and_option() -> None:
    arch = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "kernal": 2}]
    with pytest.raises(SpecError, match=r"layer 0 \(conv2d\).*'kernal'"):
        Sequential.from_spec(arch, (1, 8, 8))


def test_incompatible_shapes_name_the_index_and_the_shapes() -> None:
    arch = [
        {"type": "conv2d", "filters": 2, "kernel_size": 5},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 2, "kernel_size": 3},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ]
    with pytest.raises(SpecError, match=r"layer 2 \(conv2d\): cannot take input shape \(2, 2, 2\)"):
        Sequential.from_spec(arch, (1, 8, 8))


def test_a_model_must_end_in_class_scores() -> None:
    with pytest.raises(SpecError, match=r"must output class scores \(K,\), got \(2, 6, 6\)"):
        Sequential.from_spec([{"type": "conv2d", "filters": 2, "kernel_size": 3}], (1, 8, 8))


def test_architecture_must_be_a_list_of_objects() -> None:
    with pytest.raises(SpecError, match="list of layer objects"):
        Sequential.from_spec("conv2d", (1, 8, 8))
    with pytest.raises(SpecError, match="layer 0: expected an object"):
        Sequential.from_spec(["relu"], (1, 8, 8))
    with pytest.raises(SpecError, match="input_shape"):
        Sequential.from_spec(SMALL, (8, 8))


def test_architecture_round_trips_and_seed_fixes_the_weights() -> None:
    a = Sequential.from_spec(SMALL, (2, 6, 6), seed=3)
    b = Sequential.from_spec(a.architecture, (2, 6, 6), seed=3)
    c = Sequential.from_spec(SMALL, (2, 6, 6), seed=4)
    assert a.architecture == b.architecture
    for key, value in a.named_arrays().items():
        np.testing.assert_array_equal(value, b.named_arrays()[key])
    assert not np.array_equal(a.named_arrays()["0.weight"], c.named_arrays()["0.weight"])


def test_named_arrays_include_buffers_and_load_back() -> None:
    a = Sequential.from_spec(SMALL, (2, 6, 6), seed=1)
    a.forward(np.random.default_rng(0).normal(size=(5, 2, 6, 6)), training=True)
    names = set(a.named_arrays())
    assert names == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "5.weight",
        "5.bias",
    }
    b = Sequential.from_spec(SMALL, (2, 6, 6), seed=2)
    b.load_named_arrays(a.named_arrays())
    x = np.random.default_rng(1).normal(size=(3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_load_named_arrays_reports_missing_and_misshapen_weights() -> None:
    model = Sequential.from_spec(SMALL, (2, 6, 6))
    arrays = model.named_arrays()
    del arrays["5.bias"]
    with pytest.raises(ArtifactError, match=r"missing \['5.bias'\]"):
        model.load_named_arrays(arrays)
    arrays = model.named_arrays()
    arrays["0.weight"] = np.zeros((1, 1))
    with pytest.raises(ArtifactError, match=r"'0.weight'.*\(1, 1\).*\(3, 2, 3, 3\)"):
        model.load_named_arrays(arrays)


def test_forward_checks_the_input_shape() -> None:
    model = Sequential.from_spec(SMALL, (2, 6, 6))
    with pytest.raises(ShapeError, match=r"\(4, 1, 6, 6\).*\(N, 2, 6, 6\)"):
        model.forward(np.zeros((4, 1, 6, 6), np.float32))


def test_predict_proba_rows_sum_to_one_and_predict_is_its_argmax() -> None:
    model = Sequential.from_spec(SMALL, (2, 6, 6), seed=0)
    x = np.random.default_rng(0).normal(size=(600, 2, 6, 6)).astype(np.float32)
    proba = model.predict_proba(x, batch_size=128)
    assert proba.shape == (600, 4) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x), proba.argmax(axis=1))


def test_evaluate_matches_scikit_learn() -> None:
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    model = Sequential.from_spec(SMALL, (2, 6, 6), seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    metrics = model.evaluate(x, y)
    pred = model.predict(x)
    assert metrics.accuracy == pytest.approx(float((pred == y).mean()))
    np.testing.assert_array_equal(metrics.confusion, confusion_matrix(y, pred, labels=range(4)))
    p = precision_score(y, pred, labels=range(4), average=None, zero_division=0)
    r = recall_score(y, pred, labels=range(4), average=None, zero_division=0)
    np.testing.assert_allclose(metrics.precision, p)
    np.testing.assert_allclose(metrics.recall, r)
    logits = model.forward(x).astype(np.float64)
    assert metrics.loss == pytest.approx(softmax_cross_entropy(logits, y)[1], rel=1e-5)
    assert metrics.to_dict()["count"] == 300


def test_backward_matches_numerical_gradients_through_the_whole_model() -> None:
    arch = [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1, "stride": 2},
        {"type": "tanh"},
        {"type": "avgpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ]
    model = Sequential.from_spec(arch, (1, 7, 7), seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 7, 7))
    y = np.array([0, 2])

    def cost() -> float:
        return softmax_cross_entropy(model.forward(x), y)[1]

    model.zero_grad()
    _, _, dlogits = softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(dlogits)
    assert dx.shape == x.shape
    eps = 1e-6
    for param in model.parameters():
        flat = param.value.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 5)):
            old = flat[i]
            flat[i] = old + eps
            up = cost()
            flat[i] = old - eps
            down = cost()
            flat[i] = old
            assert param.grad.reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), abs=1e-7)
