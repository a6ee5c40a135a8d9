"""Encoded images (PNG/JPEG of any size, grey or RGB) through V2 ModelInfer's "image" input,
held to Classify and to `core` locally, with unmodified tritonclient against a real server.

Two models: "rgb" (3x12x10, resize "crop") and "grey" (1x9x11, resize "stretch", pixel range
0..16); every image has another size than both, and grey images go into the RGB model and RGB
ones into the grey model. Never imports `proto.inference` (see test_v2_api.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from core.artifacts import image_input, load_artifact
from core.datasets import Normalisation
from core.images import open_image
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import publish_copy, save_image_model
from tests.server.serverproc import ServerProcess, start_server
from tests.support.images import encode_image

MAX_IMAGE_SIDE = 256
MAX_DECODED_PIXELS = 100_000  # fewer than two 250x250 images
MAX_IMAGES = 8
MODELS = ("rgb", "grey")


def _pixels(seed: int, height: int, width: int, rgb: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3) if rgb else (height, width), dtype=np.uint8)


# Other sizes and aspect ratios than both models', PNG and JPEG, grey and RGB.
IMAGES = [
    encode_image(_pixels(1, 37, 23, rgb=True), "PNG"),
    encode_image(_pixels(2, 16, 40, rgb=False), "JPEG"),
    encode_image(_pixels(3, 5, 5, rgb=False), "PNG"),
    encode_image(_pixels(4, 64, 48, rgb=True), "JPEG"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image-artifacts")
    return {
        "rgb": save_image_model(
            root / "rgb",
            name="rgb",
            shape=(3, 12, 10),
            resize="crop",
            pixel_range=(0.0, 255.0),
            normalisation=Normalisation(mean=[120.0, 110.0, 100.0], std=[60.0, 50.0, 70.0]),
        ),
        "grey": save_image_model(
            root / "grey",
            name="grey",
            shape=(1, 9, 11),
            resize="stretch",
            pixel_range=(0.0, 16.0),
            normalisation=Normalisation(mean=[8.0], std=[4.0]),
            seed=1,
        ),
    }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("image-models")
    for name, path in artifacts.items():
        publish_copy(root, name, path)
    env = {
        "CNN_MAX_IMAGE_SIDE": str(MAX_IMAGE_SIDE),
        "CNN_MAX_DECODED_PIXELS": str(MAX_DECODED_PIXELS),
        "CNN_MAX_IMAGES_PER_REQUEST": str(MAX_IMAGES),
    }
    process = start_server(tmp_path_factory.mktemp("image-server"), root, env)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[tc.InferenceServerClient]:
    with tc.InferenceServerClient(server.address) as c:
        yield c


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as ch:
        yield ch


def _image_input(images: list[bytes], shape: list[int] | None = None) -> tc.InferInput:
    data = np.array(images, dtype=np.object_).reshape(shape or [len(images)])
    inp = tc.InferInput("image", list(data.shape), "BYTES")
    inp.set_data_from_numpy(data)
    return inp


def _classify(channel: grpc.Channel, model: str, images: list[bytes]) -> np.ndarray:
    """Classify's probabilities for encoded `images`, back in class order (N, K)."""
    response = pb_grpc.ClassifierStub(channel).Classify(
        pb.ClassifyRequest(model=model, images=[pb.Image(encoded=b) for b in images], top_k=99),
        timeout=10,
    )
    out = np.empty((len(images), len(response.results[0].class_indices)), np.float32)
    for row, result in zip(out, response.results, strict=True):
        row[list(result.class_indices)] = result.probabilities
    return out


def _local(artifact: Path, images: list[bytes]) -> np.ndarray:
    """What `core` computes for the same files, preprocessed locally."""
    loaded = load_artifact(artifact)
    x = np.stack([image_input(open_image(b), loaded.meta.input) for b in images])
    return loaded.predict_proba(x)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("shape", ["[N]", "[N, 1]"])
def test_images_of_any_size_and_colour_match_classify_and_core(
    client: tc.InferenceServerClient,
    channel: grpc.Channel,
    artifacts: dict[str, Path],
    model: str,
    shape: str,
) -> None:
    dims = [len(IMAGES)] if shape == "[N]" else [len(IMAGES), 1]
    result = client.infer(model, [_image_input(IMAGES, dims)])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(IMAGES), 3)
    # Same pixels (one decode path, `core.artifacts.image_input`), same batch of 4 through the
    # same forward pass: Classify's float32 probabilities are identical, bit for bit.
    np.testing.assert_array_equal(probabilities, _classify(channel, model, IMAGES))
    # Locally the same pixels are normalised with the same float32 arithmetic; the forward
    # pass runs in another process, where BLAS may pick other kernels: a float32 rounding.
    local = _local(artifacts[model], IMAGES)
    np.testing.assert_allclose(probabilities, local, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label")[:, 0], local.argmax(axis=1))
    assert len({row.tobytes() for row in probabilities}) == len(IMAGES)  # the images differ


def test_bytes_contents_carry_images_like_raw_contents(
    client: tc.InferenceServerClient, channel: grpc.Channel
) -> None:
    request = service_pb2.ModelInferRequest(model_name="rgb", id="typed-images")
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=[len(IMAGES)])
    tensor.contents.bytes_contents.extend(IMAGES)
    response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert response.id == "typed-images"
    names = [o.name for o in response.outputs]
    typed = np.frombuffer(response.raw_output_contents[names.index("probabilities")], "<f4")
    raw = client.infer("rgb", [_image_input(IMAGES)]).as_numpy("probabilities")
    np.testing.assert_array_equal(typed.reshape(raw.shape), raw)


def _infer_error(client: tc.InferenceServerClient, inputs: list[tc.InferInput]) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        client.infer("rgb", inputs)
    return str(info.value.status()), info.value.message()


def _classify_status(channel: grpc.Channel, images: list[bytes]) -> str:
    with pytest.raises(grpc.RpcError) as info:
        _classify(channel, "rgb", images)
    return str(info.value.code())


def test_both_inputs_in_one_request_are_refused(client: tc.InferenceServerClient) -> None:
    raw = tc.InferInput("input", [1, 3, 12, 10], "UINT8")
    raw.set_data_from_numpy(np.zeros((1, 3, 12, 10), np.uint8))
    status, message = _infer_error(client, [raw, _image_input(IMAGES[:1])])
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "inputs has 2 tensors; send exactly one: 'input' (a raw tensor) or 'image'" in message


def test_image_input_needs_shape_n_or_n_by_1(client: tc.InferenceServerClient) -> None:
    status, message = _infer_error(client, [_image_input(IMAGES, [2, 2])])
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "inputs[0] ('image').shape is [2, 2]; expected [N] or [N, 1]" in message


def test_image_input_must_be_bytes(channel: grpc.Channel) -> None:
    request = service_pb2.ModelInferRequest(model_name="rgb")
    request.inputs.add(name="image", datatype="UINT8", shape=[1])
    request.raw_input_contents.append(b"\x01")
    with pytest.raises(grpc.RpcError) as info:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs[0] ('image').datatype is 'UINT8'; expected 'BYTES'" in info.value.details()


def _big(width: int, height: int) -> bytes:
    return encode_image(np.zeros((height, width), np.uint8), "PNG")


@pytest.mark.parametrize(
    ("case", "images", "status", "needle"),
    [
        (
            "not an image",
            [IMAGES[0], IMAGES[1], IMAGES[2], b"GIF89a not ours"],
            "INVALID_ARGUMENT",
            "inputs[0] ('image')[3] could not be decoded as PNG or JPEG",
        ),
        (
            "corrupt pixel data",  # the header parses; decoding fails, off the header check
            [IMAGES[1], IMAGES[0][: len(IMAGES[0]) // 2]],
            "INVALID_ARGUMENT",
            "inputs[0] ('image')[1] could not be decoded as PNG or JPEG",
        ),
        (
            "a side over the limit",
            [IMAGES[0], _big(MAX_IMAGE_SIDE + 1, 2)],
            "RESOURCE_EXHAUSTED",
            f"inputs[0] ('image')[1] is {MAX_IMAGE_SIDE + 1}x2 pixels; each side must be <= "
            f"max_image_side={MAX_IMAGE_SIDE} (CNN_MAX_IMAGE_SIDE)",
        ),
        (
            "decoded pixels over the limit",
            [_big(250, 250), _big(250, 250)],
            "RESOURCE_EXHAUSTED",
            "the 2 encoded images decode to 125000 pixels in all; max_decoded_pixels is "
            f"{MAX_DECODED_PIXELS} (CNN_MAX_DECODED_PIXELS)",
        ),
        (
            "too many images",
            IMAGES[:1] * (MAX_IMAGES + 1),
            "RESOURCE_EXHAUSTED",
            f"inputs[0] ('image') has {MAX_IMAGES + 1} images; max_images_per_request is "
            f"{MAX_IMAGES} (CNN_MAX_IMAGES_PER_REQUEST)",
        ),
    ],
)
def test_bad_images_get_classify_s_status_and_name_the_element(
    client: tc.InferenceServerClient,
    channel: grpc.Channel,
    case: str,
    images: list[bytes],
    status: str,
    needle: str,
) -> None:
    got_status, message = _infer_error(client, [_image_input(images)])
    assert got_status == f"StatusCode.{status}", message
    assert needle in message
    assert _classify_status(channel, images) == got_status
    assert client.infer("rgb", [_image_input(IMAGES[:1])]).as_numpy("label").shape == (1, 1)


def test_metadata_lists_both_inputs(client: tc.InferenceServerClient) -> None:
    meta = client.get_model_metadata("rgb")  # the protobuf form parses as well as the JSON
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input", "UINT8", [-1, 3, 12, 10]),
        ("image", "BYTES", [-1]),
    ]
    assert client.get_model_metadata("grey", as_json=True)["inputs"] == [
        {"name": "input", "datatype": "UINT8", "shape": ["-1", "1", "9", "11"]},
        {"name": "image", "datatype": "BYTES", "shape": ["-1"]},
    ]


@pytest.mark.parametrize(
    ("model", "preprocessing"),
    [
        (
            "rgb",
            {"channels": "3", "height": "12", "width": "10", "resize": "crop"},
        ),
        (
            "grey",
            {"channels": "1", "height": "9", "width": "11", "resize": "stretch"},
        ),
    ],
)
def test_config_marks_both_inputs_optional_and_describes_the_preprocessing(
    client: tc.InferenceServerClient, model: str, preprocessing: dict[str, str]
) -> None:
    config = client.get_model_config(model).config
    raw, image = config.input
    size = [int(preprocessing[key]) for key in ("channels", "height", "width")]
    assert (raw.name, raw.optional, list(raw.dims)) == ("input", True, size)
    assert (image.name, image.optional, list(image.dims)) == ("image", True, [1])
    assert image.data_type == model_config_pb2.TYPE_STRING
    assert image.HasField("reshape") and list(image.reshape.shape) == []
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert {k: params[k] for k in preprocessing} == preprocessing
    loaded = client.get_model_config(model, as_json=True)["config"]["parameters"]
    mean = json.loads(loaded["mean"]["string_value"])
    assert mean == ([120.0, 110.0, 100.0] if model == "rgb" else [8.0])
    assert json.loads(loaded["pixel_range"]["string_value"]) == (
        [0.0, 255.0] if model == "rgb" else [0.0, 16.0]
    )


@pytest.mark.parametrize(("model", "resize"), [("rgb", "crop"), ("grey", "stretch")])
def test_get_model_tells_the_resize_mode(channel: grpc.Channel, model: str, resize: str) -> None:
    reply = pb_grpc.ClassifierStub(channel).GetModel(pb.GetModelRequest(model=model), timeout=10)
    assert reply.input.resize == resize
