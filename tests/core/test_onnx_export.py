"""Export to ONNX: ONNX Runtime, given the same raw pixels, answers what the library answers.

Tolerances (tests/support/onnx_graphs.py): probabilities within 1e-5 absolute, logits within
1e-4 relative + 1e-4 absolute; both sides compute in float32 and differ only in summation order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from core import zoo
from core.onnx_export import (
    INPUT_NAME,
    LOGITS_NAME,
    META_CLASS_NAMES,
    META_INPUT,
    META_MODEL,
    META_PREPROCESSING,
    OPSET,
    PROBABILITIES_NAME,
    export_bytes,
    export_model,
)
from tests.support.onnx_graphs import (
    LOGITS_ATOL,
    LOGITS_RTOL,
    PROBABILITY_ATOL,
    pixels,
    run_onnx,
    seeded_artifact,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Per-sample input of the bundled data sets the examples train on.
DATASET_SHAPES = {"digits": (1, 8, 8), "mnist-5k": (1, 28, 28), "fashion-mnist": (1, 28, 28)}


def _example_shape(spec: dict[str, Any]) -> tuple[int, int, int]:
    if spec.get("input"):
        return spec["input"]["channels"], spec["input"]["height"], spec["input"]["width"]
    if spec["dataset"]["name"] in DATASET_SHAPES:
        return DATASET_SHAPES[spec["dataset"]["name"]]
    # A file data set is not here; a fine-tuning example takes its source's input, and every
    # source among the examples (e.g. digits-small) is an example itself.
    source = json.loads((EXAMPLES / f"{spec['init_from']['model']}.json").read_text())
    return _example_shape(source)


ARCHITECTURES: dict[str, tuple[list[dict[str, Any]], tuple[int, int, int]]] = {
    "zoo.lenet5": (zoo.lenet5(), (1, 28, 28)),
    "zoo.vgg_small": (zoo.vgg_small(), (3, 32, 32)),
    "zoo.digits_cnn": (zoo.digits_cnn(), (1, 8, 8)),
    **{
        f"examples/{path.name}": (
            json.loads(path.read_text())["architecture"],
            _example_shape(json.loads(path.read_text())),
        )
        for path in sorted(EXAMPLES.glob("*.json"))
    },
    "batchnorm": (
        [
            {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": 1},
            {"type": "batchnorm2d", "momentum": 0.2, "eps": 1e-3},
            {"type": "relu"},
            {"type": "global_avgpool2d"},
            {"type": "dense", "units": 4},
        ],
        (2, 9, 9),
    ),
    "dilation": (
        [
            {"type": "conv2d", "filters": 5, "kernel_size": 3, "dilation": 2, "padding": "same"},
            {"type": "tanh"},
            {"type": "conv2d", "filters": 4, "kernel_size": [3, 2], "dilation": [1, 3]},
            {"type": "sigmoid"},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
        (1, 12, 11),
    ),
    "groups": (
        [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "groups": 4, "stride": 2},
            {"type": "leaky_relu", "alpha": 0.2},
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "groups": 8, "padding": "same"},
            {"type": "batchnorm2d"},
            {"type": "relu"},
            {"type": "dense", "units": 3},
        ],
        (4, 13, 13),
    ),
    "asymmetric-pads-and-pools": (
        [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": [0, 2, 1, 0]},
            {"type": "avgpool2d", "size": 3, "stride": 2, "padding": 1},
            {"type": "maxpool2d", "size": 2, "stride": 1, "padding": [0, 1, 1, 0]},
            {"type": "dropout", "rate": 0.3},
            {"type": "flatten"},
            {"type": "dense", "units": 5, "use_bias": False},
        ],
        (3, 10, 9),
    ),
}


def test_the_examples_are_all_covered() -> None:
    names = {p.name for p in EXAMPLES.glob("*.json")}
    assert names and all(f"examples/{n}" in ARCHITECTURES for n in names)


@pytest.mark.parametrize("key", sorted(ARCHITECTURES))
def test_onnx_runtime_gives_the_library_s_outputs_from_raw_pixels(key: str) -> None:
    architecture, shape = ARCHITECTURES[key]
    loaded = seeded_artifact(architecture, shape)
    x = pixels(shape, n=5)
    logits, probabilities = run_onnx(export_bytes(loaded), x)
    ours = loaded.predict_proba(x)  # the server's path: normalisation, then the plan's softmax
    np.testing.assert_allclose(probabilities, ours, rtol=0, atol=PROBABILITY_ATOL)
    np.testing.assert_allclose(
        logits,
        loaded.model.logits(loaded.meta.preprocessing.apply(x)),
        rtol=LOGITS_RTOL,
        atol=LOGITS_ATOL,
    )
    assert probabilities.dtype == np.float32 and logits.shape == ours.shape


def test_the_batch_dimension_is_dynamic() -> None:
    loaded = seeded_artifact(zoo.digits_cnn(), (1, 8, 8))
    data = export_bytes(loaded)
    for n in (1, 3, 17):
        (_, probabilities) = run_onnx(data, pixels((1, 8, 8), n=n))
        assert probabilities.shape == (n, 10)


def test_the_graph_is_checked_and_names_its_input_and_outputs() -> None:
    loaded = seeded_artifact(zoo.digits_cnn(), (1, 8, 8))
    proto = export_model(loaded, version=3)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [LOGITS_NAME, PROBABILITIES_NAME]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    assert {o.version for o in proto.opset_import if o.domain == ""} == {OPSET}
    # the normalisation comes first, so the graph takes the pixels the server takes
    assert [n.op_type for n in proto.graph.node[:2]] == ["Sub", "Mul"]


def test_preprocessing_and_class_names_are_in_the_metadata() -> None:
    loaded = seeded_artifact(zoo.digits_cnn(), (1, 8, 8), name="digits")
    props = {p.key: p.value for p in export_model(loaded, version=4).metadata_props}
    assert json.loads(props[META_CLASS_NAMES]) == [f"class-{i}" for i in range(10)]
    assert json.loads(props[META_PREPROCESSING]) == {"mean": [40.0], "std": [50.0]}
    spec = json.loads(props[META_INPUT])
    assert spec["pixel_range"] == [0.0, 255.0] and spec["resize"] == "stretch"
    assert (spec["channels"], spec["height"], spec["width"]) == (1, 8, 8)
    assert spec["normalised_in_graph"] is True
    assert json.loads(props[META_MODEL])["name"] == "digits"
    assert json.loads(props[META_MODEL])["version"] == 4


def test_a_saved_artifact_exports_the_same_as_the_loaded_one(tmp_path: Path) -> None:
    from core.artifacts import load_artifact, save_artifact

    loaded = seeded_artifact(zoo.digits_cnn(), (1, 8, 8))
    save_artifact(tmp_path, loaded.model, loaded.meta)
    x = pixels((1, 8, 8))
    (_, from_disk) = run_onnx(export_bytes(load_artifact(tmp_path)), x)
    np.testing.assert_allclose(from_disk, loaded.predict_proba(x), atol=PROBABILITY_ATOL)
