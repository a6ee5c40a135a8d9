"""Import from ONNX: supported graphs become models that answer what ONNX Runtime answers;
anything else is refused, naming the node, its op and why, with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from core import zoo
from core.artifacts import LoadedModel, load_artifact
from core.onnx_export import export_bytes
from core.onnx_import import (
    ImportOptions,
    ImportOptionsError,
    ImportRefused,
    build_model,
    import_onnx,
)
from core.repository import ModelRepository
from core.summary import summarize
from tests.support.onnx_graphs import (
    LOGITS_ATOL,
    LOGITS_RTOL,
    PROBABILITY_ATOL,
    graph_model,
    pixels,
    run_onnx,
    seeded_artifact,
    softmax,
    weights,
)

node = helper.make_node


def _logits_of(data: bytes, x: np.ndarray, options: ImportOptions | None = None) -> np.ndarray:
    model, meta = build_model(data, "imported", options)
    return model.logits(meta.preprocessing.apply(x))


def _conv_head(c: int, h: int, w: int, k: int = 3) -> tuple[list, dict]:
    """Flatten + Gemm (transB) to 3 classes, for graphs whose last tensor is (N, c, h, w)."""
    return (
        [
            node("Flatten", ["t_end"], ["flat"], name="flatten", axis=1),
            node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        ],
        {"fc_w": weights((k, c * h * w), 9), "fc_b": weights((k,), 10)},
    )


# ----------------------------------------------------------------------------- supported ops

# Each case: nodes from input "x" (N, 2, 8, 8) to tensor "t_end", its initializers, the
# (C, H, W) of "t_end". A Flatten + Gemm head is appended.
OP_CASES: dict[str, tuple[list, dict, tuple[int, int, int]]] = {
    "Conv pads strides dilations group": (
        [
            node(
                "Conv",
                ["x", "w", "b"],
                ["t_end"],
                name="conv",
                pads=[1, 0, 2, 1],
                strides=[2, 1],
                dilations=[1, 2],
                group=2,
            )
        ],
        {"w": weights((4, 1, 3, 3)), "b": weights((4,), 1)},
        (4, 5, 5),
    ),
    "Conv auto_pad SAME_UPPER": (
        [node("Conv", ["x", "w"], ["t_end"], name="conv", auto_pad="SAME_UPPER", strides=[2, 2])],
        {"w": weights((3, 2, 2, 2))},
        (3, 4, 4),
    ),
    "Conv auto_pad SAME_LOWER": (
        [node("Conv", ["x", "w"], ["t_end"], name="conv", auto_pad="SAME_LOWER")],
        {"w": weights((3, 2, 2, 2))},
        (3, 8, 8),
    ),
    "Relu LeakyRelu Sigmoid Tanh": (
        [
            node("Relu", ["x"], ["a"], name="relu"),
            node("LeakyRelu", ["a"], ["b"], name="leaky", alpha=0.3),
            node("Sigmoid", ["b"], ["c"], name="sigmoid"),
            node("Tanh", ["c"], ["t_end"], name="tanh"),
        ],
        {},
        (2, 8, 8),
    ),
    "MaxPool with pads": (
        [
            node(
                "MaxPool",
                ["x"],
                ["t_end"],
                name="pool",
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            )
        ],
        {},
        (2, 4, 4),
    ),
    "AveragePool without counting pads": (
        [
            node(
                "AveragePool",
                ["x"],
                ["t_end"],
                name="pool",
                kernel_shape=[3, 2],
                strides=[1, 2],
                pads=[1, 0, 1, 0],
            )
        ],
        {},
        (2, 8, 4),
    ),
    "MaxPool ceil_mode where it rounds the same": (
        [
            node(
                "MaxPool",
                ["x"],
                ["t_end"],
                name="pool",
                kernel_shape=[2, 2],
                strides=[2, 2],
                ceil_mode=1,
            )
        ],
        {},
        (2, 4, 4),
    ),
    "BatchNormalization": (
        [
            node(
                "BatchNormalization",
                ["x", "g", "beta", "mu", "var"],
                ["t_end"],
                name="bn",
                epsilon=1e-3,
                momentum=0.8,
            )
        ],
        {
            "g": weights((2,), 2) + 1,
            "beta": weights((2,), 3),
            "mu": weights((2,), 4),
            "var": np.array([0.5, 2.0], np.float32),
        },
        (2, 8, 8),
    ),
    "Dropout and Identity": (
        [
            node("Dropout", ["x", "ratio"], ["a"], name="drop"),
            node("Identity", ["a"], ["t_end"], name="same"),
        ],
        {"ratio": np.array(0.25, np.float32)},
        (2, 8, 8),
    ),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_a_graph_of_supported_ops_answers_as_onnx_runtime(case: str) -> None:
    body, inits, end_shape = OP_CASES[case]
    head, head_inits = _conv_head(*end_shape)
    data = graph_model(body + head, {**inits, **head_inits}, ["N", 2, 8, 8], "logits")
    x = pixels((2, 8, 8), n=4, hi=1.0)
    (expected,) = run_onnx(data, x)
    np.testing.assert_allclose(_logits_of(data, x), expected, rtol=LOGITS_RTOL, atol=LOGITS_ATOL)


def test_global_average_pool_then_flatten() -> None:
    nodes = [
        node("Conv", ["x", "w"], ["a"], name="conv"),
        node("GlobalAveragePool", ["a"], ["g"], name="gap"),
        node("Flatten", ["g"], ["f"], name="flatten"),
        node("Gemm", ["f", "fc_w"], ["logits"], name="fc"),
    ]
    inits = {"w": weights((4, 2, 3, 3)), "fc_w": weights((4, 3), 1)}
    data = graph_model(nodes, inits, ["N", 2, 8, 8], "logits")
    x = pixels((2, 8, 8), hi=1.0)
    (expected,) = run_onnx(data, x)
    np.testing.assert_allclose(_logits_of(data, x), expected, rtol=LOGITS_RTOL, atol=LOGITS_ATOL)


def test_reshape_to_two_d_matmul_add_and_a_final_softmax() -> None:
    nodes = [
        node("Relu", ["x"], ["a"], name="relu"),
        node("Reshape", ["a", "shape"], ["flat"], name="reshape"),
        node("MatMul", ["flat", "w"], ["m"], name="matmul"),
        node("Add", ["m", "b"], ["logits"], name="add"),
        node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    inits = {
        "shape": np.array([0, -1], np.int64),
        "w": weights((2 * 8 * 8, 5)),
        "b": weights((5,), 1),
    }
    data = graph_model(nodes, inits, ["N", 2, 8, 8], "probs")
    x = pixels((2, 8, 8), hi=1.0)
    (expected,) = run_onnx(data, x)
    model, meta = build_model(data, "imported")
    assert [layer["type"] for layer in model.architecture] == ["relu", "flatten", "dense"]
    ours = LoadedModel(model, meta).predict_proba(x)  # the server applies the softmax
    np.testing.assert_allclose(ours, expected, atol=PROBABILITY_ATOL)


def test_gemm_alpha_beta_and_transb() -> None:
    nodes = [
        node("Flatten", ["x"], ["f"], name="flatten"),
        node("Gemm", ["f", "w", "b"], ["logits"], name="fc", alpha=0.5, beta=2.0, transB=1),
    ]
    inits = {"w": weights((3, 2 * 8 * 8)), "b": weights((1, 3), 1)}
    data = graph_model(nodes, inits, ["N", 2, 8, 8], "logits")
    x = pixels((2, 8, 8), hi=1.0)
    (expected,) = run_onnx(data, x)
    np.testing.assert_allclose(_logits_of(data, x), expected, rtol=LOGITS_RTOL, atol=LOGITS_ATOL)


def test_leading_sub_and_div_become_the_normalisation() -> None:
    nodes = [
        node("Sub", ["x", "mean"], ["c"], name="sub"),
        node("Div", ["c", "std"], ["n"], name="div"),
        node("Flatten", ["n"], ["f"], name="flatten"),
        node("Gemm", ["f", "w"], ["logits"], name="fc"),
    ]
    inits = {
        "mean": np.array([0.4, 0.6], np.float32).reshape(1, 2, 1, 1),
        "std": np.array([0.2, 0.25], np.float32).reshape(1, 2, 1, 1),
        "w": weights((2 * 8 * 8, 3)),
    }
    data = graph_model(nodes, inits, ["N", 2, 8, 8], "logits")
    model, meta = build_model(data, "imported")
    assert [layer["type"] for layer in model.architecture] == ["flatten", "dense"]
    assert meta.preprocessing.mean == pytest.approx([0.4, 0.6])
    assert meta.preprocessing.std == pytest.approx([0.2, 0.25])
    x = pixels((2, 8, 8), hi=1.0)
    (expected,) = run_onnx(data, x)
    np.testing.assert_allclose(
        LoadedModel(model, meta).predict_proba(x), softmax(expected), atol=PROBABILITY_ATOL
    )
    with pytest.raises(ImportOptionsError, match="normalises its input itself"):
        build_model(data, "imported", ImportOptions(mean=[0.5, 0.5]))


def test_a_graph_without_metadata_gets_the_options_or_the_defaults() -> None:
    nodes = [node("Flatten", ["x"], ["f"], name="flatten"), node("Gemm", ["f", "w"], ["y"])]
    data = graph_model(nodes, {"w": weights((2 * 8 * 8, 3))}, [1, 2, 8, 8], "y")
    _, meta = build_model(data, "plain")
    assert meta.input.pixel_range == (0.0, 1.0) and meta.input.dtype == "float32"
    assert meta.preprocessing.mean == [0.0, 0.0] and meta.preprocessing.std == [1.0, 1.0]
    assert meta.class_names == ["0", "1", "2"] and meta.input.resize == "stretch"
    options = ImportOptions(
        class_names=["a", "b", "c"], pixel_range=(0, 255), mean=[1, 2], std=[3, 4], resize="crop"
    )
    _, meta = build_model(data, "plain", options)
    assert meta.class_names == ["a", "b", "c"] and meta.input.pixel_range == (0.0, 255.0)
    assert meta.preprocessing.mean == [1, 2] and meta.input.resize == "crop"
    with pytest.raises(ImportOptionsError, match="class_names has 2 names, the model outputs 3"):
        build_model(data, "plain", ImportOptions(class_names=["a", "b"]))


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    ("architecture", "shape"),
    [
        (zoo.lenet5(), (1, 28, 28)),
        (zoo.vgg_small(), (3, 32, 32)),
        (
            json.loads(
                (Path(__file__).resolve().parents[2] / "examples/digits-full.json").read_text()
            )["architecture"],
            (1, 8, 8),
        ),
        (
            [
                {"type": "conv2d", "filters": 8, "kernel_size": 3, "groups": 2, "dilation": 2},
                {"type": "batchnorm2d", "momentum": 0.05},
                {"type": "leaky_relu", "alpha": 0.1},
                {"type": "avgpool2d", "size": 3, "stride": 2, "padding": 1},
                {"type": "global_avgpool2d"},
                {"type": "dense", "units": 4},
            ],
            (2, 15, 15),
        ),
    ],
    ids=["lenet5", "vgg_small", "digits-full", "bn-dilation-groups"],
)
def test_export_then_import_gives_the_same_model(
    architecture: list[dict], shape: tuple[int, int, int]
) -> None:
    loaded = seeded_artifact(architecture, shape, pixel_range=(0.0, 16.0))
    model, meta = build_model(export_bytes(loaded), "copy")
    x = pixels(shape, hi=16.0)
    np.testing.assert_array_equal(
        LoadedModel(model, meta).predict_proba(x), loaded.predict_proba(x)
    )
    assert [layer["type"] for layer in model.architecture] == [
        layer["type"] for layer in loaded.model.architecture
    ]
    assert meta.class_names == loaded.meta.class_names
    assert meta.preprocessing == loaded.meta.preprocessing
    assert meta.input == loaded.meta.input
    bn = [layer for layer in model.architecture if layer["type"] == "batchnorm2d"]
    assert all(layer["momentum"] in (0.1, 0.05) and layer["eps"] == 1e-5 for layer in bn)


def test_an_import_is_published_summarised_and_fine_tunable(tmp_path: Path) -> None:
    loaded = seeded_artifact(
        [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "dilation": 2},
            {"type": "batchnorm2d"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "dense", "units": 3},
        ],
        (1, 12, 12),
    )
    repository = ModelRepository(tmp_path)
    result = import_onnx(repository, "imported", export_bytes(loaded))
    assert result.version == 1 and result.meta.version == 1
    assert repository.versions("imported") == [1]
    again = load_artifact(repository.path("imported", 1))
    rows = summarize(again.model).rows
    # conv 3x3 dilation 2 sees 5 px; the 2x2 pool doubles the step: 5 + 1 * 2 = 7
    assert rows[0].field.size == (5, 5)
    assert rows[3].field.size == (6, 6)
    # batch norm came back as a layer with its parameters: one training step changes them
    model = again.model
    x = again.meta.preprocessing.apply(pixels((1, 12, 12), n=4))
    before = model.layers[1].parameters()["weight"].value.copy()
    model.zero_grad()
    model.forward(x, training=True)
    model.backward(np.ones((4, 3), np.float32))
    for param in model.parameters():
        param.value -= 0.1 * param.grad
    assert not np.array_equal(before, model.layers[1].parameters()["weight"].value)


# ----------------------------------------------------------------------------- refusals


def _body(
    *nodes_: object,
    inits: dict | None = None,
    shape: list | None = None,
    domains: dict[str, int] | None = None,
) -> bytes:
    """A graph of ``nodes_`` from "x" (N, 2, 8, 8) to "t_end", with the Flatten + Gemm head."""
    head, head_inits = _conv_head(2, 8, 8)
    return graph_model(
        [*nodes_, *head],
        {**(inits or {}), **head_inits},
        shape or ["N", 2, 8, 8],
        "logits",
        domains=domains,
    )


def _chain_break() -> bytes:
    nodes = [
        node("Relu", ["x"], ["a"], name="relu"),
        node("Sigmoid", ["a"], ["b"], name="left"),
        node("Tanh", ["a"], ["c"], name="right"),
        node("Add", ["b", "c"], ["t_end"], name="join"),
    ]
    return _body(*nodes)


REFUSALS: dict[str, tuple[Callable[[], bytes], str, str, str]] = {
    # kind: (graph, node name, op, part of the reason)
    "unsupported op": (
        lambda: _body(node("Elu", ["x"], ["t_end"], name="elu")),
        "elu",
        "Elu",
        "unsupported op",
    ),
    "other domain": (
        lambda: _body(
            node("Relu", ["x"], ["t_end"], name="custom", domain="com.example"),
            domains={"com.example": 1},
        ),
        "custom",
        "Relu",
        "domain 'com.example'",
    ),
    "non-constant weights": (
        lambda: _body(
            node("Identity", ["w0"], ["w_dyn"], name="w_copy"),
            node("Conv", ["x", "w_dyn"], ["t_end"], name="conv"),
            inits={"w0": weights((2, 2, 1, 1))},
        ),
        "conv",
        "Conv",
        "is not a constant",
    ),
    "not a single chain": (_chain_break, "left", "Sigmoid", "single chain"),
    "dynamic shape other than batch": (
        lambda: _body(node("Relu", ["x"], ["t_end"], name="relu"), shape=["N", 2, "H", 8]),
        "(graph)",
        "",
        "dimension H is dynamic",
    ),
    "reshape not to 2-D": (
        lambda: _body(
            node("Reshape", ["x", "s"], ["t_end"], name="reshape"),
            inits={"s": np.array([0, 2, 64], np.int64)},
        ),
        "reshape",
        "Reshape",
        "not a reshape to 2-D",
    ),
    "count_include_pad with padding": (
        lambda: _body(
            node(
                "AveragePool",
                ["x"],
                ["t_end"],
                name="avg",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            )
        ),
        "avg",
        "AveragePool",
        "count_include_pad=1",
    ),
    "ceil_mode rounding up": (
        lambda: _body(
            node(
                "MaxPool",
                ["x"],
                ["t_end"],
                name="pool",
                kernel_shape=[3, 3],
                strides=[2, 2],
                ceil_mode=1,
            )
        ),
        "pool",
        "MaxPool",
        "ceil_mode=1",
    ),
    "dilated pooling": (
        lambda: _body(
            node("MaxPool", ["x"], ["t_end"], name="pool", kernel_shape=[2, 2], dilations=[2, 2])
        ),
        "pool",
        "MaxPool",
        "cannot be dilated",
    ),
    "padding the layer cannot take": (
        lambda: _body(
            node("MaxPool", ["x"], ["t_end"], name="pool", kernel_shape=[2, 2], pads=[2, 0, 0, 0])
        ),
        "pool",
        "MaxPool",
        "must be smaller than the window",
    ),
    "softmax before the end": (
        lambda: _body(node("Softmax", ["x"], ["t_end"], name="early", axis=1)),
        "early",
        "Softmax",
        "only as the last node",
    ),
    "add not after matmul": (
        lambda: _body(
            node("Add", ["x", "k"], ["t_end"], name="shift"),
            inits={"k": np.ones((1, 2, 1, 1), np.float32)},
        ),
        "shift",
        "Add",
        "only right after MatMul",
    ),
    "batch norm in training mode": (
        lambda: _body(
            node(
                "BatchNormalization",
                ["x", "g", "b", "m", "v"],
                ["t_end"],
                name="bn",
                training_mode=1,
            ),
            inits={k: np.ones(2, np.float32) for k in "gbmv"},
        ),
        "bn",
        "BatchNormalization",
        "training_mode=1",
    ),
    "dropout in training mode": (
        lambda: _body(
            node("Dropout", ["x", "r", "train"], ["t_end"], name="drop"),
            inits={"r": np.array(0.5, np.float32), "train": np.array(True)},
        ),
        "drop",
        "Dropout",
        "training_mode=true",
    ),
    "flatten to other than (N, features)": (
        lambda: _body(node("Flatten", ["x"], ["t_end"], name="flat2", axis=2)),
        "flat2",
        "Flatten",
        "axis=2",
    ),
    "weights of the wrong shape": (
        lambda: _body(
            node("Conv", ["x", "w"], ["t_end"], name="conv", group=2),
            inits={"w": weights((2, 2, 1, 1))},
        ),
        "conv",
        "Conv",
        "needs (2, 1, 1, 1)",
    ),
    "not an ONNX file": (lambda: b"\x08\x01garbage" * 10, "(graph)", "", "not an ONNX model"),
}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_an_unsupported_graph_is_refused_by_name_and_nothing_is_written(
    kind: str, tmp_path: Path
) -> None:
    make, name, op, reason = REFUSALS[kind]
    repository = ModelRepository(tmp_path / "models")
    with pytest.raises(ImportRefused) as caught:
        import_onnx(repository, "refused", make())
    refusal = next(r for r in caught.value.refusals if r.node == name)
    assert refusal.op == op
    assert reason in refusal.reason
    assert (f"node {name!r} ({op})" if name != "(graph)" else "graph:") in str(caught.value)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))


def test_every_refused_node_is_listed_in_one_pass() -> None:
    data = _body(
        node("Elu", ["x"], ["a"], name="first"),
        node("MaxPool", ["a"], ["t_end"], name="second", kernel_shape=[2, 2], dilations=[2, 2]),
    )
    with pytest.raises(ImportRefused) as caught:
        build_model(data, "x")
    assert [r.node for r in caught.value.refusals] == ["first", "second"]
