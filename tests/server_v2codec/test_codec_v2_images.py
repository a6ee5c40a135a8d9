"""`server.codec_v2`'s "image" input (encoded PNG/JPEG files as BYTES): the pixels it decodes
are exactly those `core` computes locally, its wire layouts, its errors and limits, and the
metadata and config that describe both inputs. Never imports tritonclient."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from core.artifacts import InputSpec, image_input
from core.datasets import Normalisation
from core.images import open_image
from proto.inference import grpc_service_pb2 as pb
from proto.inference import model_config_pb2 as config_pb
from server import codec_v2
from server.codec import Limits
from server.decoding import estimate_seconds
from server.errors import InvalidInput, LimitExceeded
from server.model import ServedModel
from tests.support.images import encode_image

LIMITS = Limits(max_images_per_request=8, max_image_side=300, max_decoded_pixels=100_000)
FIELD = "inputs[0] ('image')"


def _model(spec: InputSpec, mean: list[float], std: list[float]) -> ServedModel:
    return ServedModel(
        name="m",
        version=3,
        spec=spec,
        normalisation=Normalisation(mean=mean, std=std),
        class_names=("a", "b", "c"),
        meta={},
        network=None,
        batcher=None,  # type: ignore[arg-type]
    )


RGB_CROP = _model(InputSpec(3, 12, 10, "uint8", (0.0, 255.0), "crop"), [1, 2, 3], [4, 5, 6])
GREY_STRETCH = _model(InputSpec(1, 9, 11, "float32", (-1.0, 1.0), "stretch"), [0.5], [2.0])


def _pixels(seed: int, height: int, width: int, rgb: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3) if rgb else (height, width), dtype=np.uint8)


IMAGES = [
    encode_image(_pixels(1, 37, 23, rgb=True), "PNG"),
    encode_image(_pixels(2, 16, 40, rgb=False), "JPEG"),
    encode_image(_pixels(3, 5, 5, rgb=False), "PNG"),
    encode_image(_pixels(4, 64, 48, rgb=True), "JPEG"),
]


def _triton_bytes(elements: list[bytes]) -> bytes:
    """Triton's raw BYTES layout, written out plainly: length (uint32 LE), then the bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def _request(
    files: list[bytes], shape: list[int] | None = None, *, typed: bool = False
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=shape or [len(files)])
    if typed:
        tensor.contents.bytes_contents.extend(files)
    else:
        request.raw_input_contents.append(_triton_bytes(files))
    return request


def _error(request: pb.ModelInferRequest, model: ServedModel = RGB_CROP) -> str:
    with pytest.raises(InvalidInput) as info:
        codec_v2.decode_inputs(request, model, LIMITS)
    return str(info.value)


@pytest.mark.parametrize("model", [RGB_CROP, GREY_STRETCH], ids=["rgb-crop", "grey-stretch"])
@pytest.mark.parametrize(
    ("shape", "typed"), [("[N]", False), ("[N, 1]", False), ("[N]", True)], ids=str
)
def test_image_pixels_are_exactly_core_s_for_the_same_files(
    model: ServedModel, shape: str, typed: bool
) -> None:
    dims = [len(IMAGES)] if shape == "[N]" else [len(IMAGES), 1]
    got = codec_v2.decode_inputs(_request(IMAGES, dims, typed=typed), model, LIMITS)
    want = np.stack([image_input(open_image(b), model.spec) for b in IMAGES])
    assert got.dtype == np.float32 and got.shape == (len(IMAGES), *model.spec.shape)
    np.testing.assert_array_equal(got, want)


def test_the_work_is_estimated_from_the_headers() -> None:
    work = codec_v2.prepare_inputs(_request(IMAGES), RGB_CROP, LIMITS)
    pixels = 37 * 23 + 16 * 40 + 5 * 5 + 64 * 48
    assert work.seconds == estimate_seconds(images=len(IMAGES), pixels=pixels)


@pytest.mark.parametrize("elements", [[b"a"], [b"", b"xyz", b"\x00" * 300], []])
def test_split_bytes_tensor_reads_triton_s_layout(elements: list[bytes]) -> None:
    assert codec_v2.split_bytes_tensor(_triton_bytes(elements), len(elements), "f") == elements


@pytest.mark.parametrize(
    ("data", "count", "message"),
    [
        (b"\x03\x00", 1, "f ends inside the 4-byte length of element 0 (2 bytes left)"),
        (_triton_bytes([b"ab"])[:-1], 1, "f: element 0 says 2 bytes, 1 bytes are left"),
        (_triton_bytes([b"a", b"b"]), 1, "f has 5 bytes after its 1 elements; BYTES elements"),
        (_triton_bytes([b"a"]), 2, "f has 1 elements; the shape needs 2"),
    ],
)
def test_split_bytes_tensor_names_what_is_wrong(data: bytes, count: int, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        codec_v2.split_bytes_tensor(data, count, "f")
    assert str(info.value).startswith(message)


def test_exactly_one_input_named_input_or_image() -> None:
    both = _request(IMAGES[:1])
    both.inputs.add(name="input", datatype="UINT8", shape=[1, 3, 12, 10])
    expected = "send exactly one: 'input' (a raw tensor) or 'image' (encoded PNG/JPEG files)"
    assert _error(both) == f"inputs has 2 tensors; {expected}"
    assert _error(pb.ModelInferRequest()) == f"inputs has 0 tensors; {expected}"
    other = _request(IMAGES[:1])
    other.inputs[0].name = "images"
    assert _error(other) == (
        "inputs[0].name is 'images'; expected 'input' (a raw tensor) or 'image' "
        "(encoded PNG/JPEG files)"
    )


@pytest.mark.parametrize("shape", [[], [0], [2, 2], [2, 1, 1], [-1]])
def test_image_shape_is_n_or_n_by_1(shape: list[int]) -> None:
    request = _request(IMAGES[:2])
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend(shape)
    assert _error(request) == (
        f"{FIELD}.shape is {shape}; expected [N] or [N, 1] with N >= 1 "
        "(one PNG/JPEG file per element)"
    )


def test_image_datatype_is_bytes() -> None:
    request = _request(IMAGES[:1])
    request.inputs[0].datatype = "UINT8"
    assert _error(request).startswith(f"{FIELD}.datatype is 'UINT8'; expected 'BYTES'")


def test_image_data_comes_from_one_place_with_one_element_per_file() -> None:
    both = _request(IMAGES[:1])
    both.inputs[0].contents.bytes_contents.append(IMAGES[0])
    assert _error(both) == (
        f"{FIELD}.contents is set together with raw_input_contents; use one of them"
    )
    none = _request(IMAGES[:1])
    del none.raw_input_contents[:]
    assert _error(none) == (
        f"{FIELD} has no data: set contents.bytes_contents or raw_input_contents"
    )
    two_raw = _request(IMAGES[:1])
    two_raw.raw_input_contents.append(b"")
    assert _error(two_raw) == "raw_input_contents has 2 entries; expected 1 (one per input)"
    wrong_field = _request(IMAGES[:1], typed=True)
    wrong_field.inputs[0].contents.uint_contents.append(1)
    assert _error(wrong_field) == (
        f"{FIELD}.contents.uint_contents is set; datatype BYTES uses contents.bytes_contents"
    )
    short = _request(IMAGES[:2], [3], typed=True)
    assert _error(short) == f"{FIELD}.contents.bytes_contents has 2 elements; the shape needs 3"
    assert _error(_request(IMAGES[:2], [3])) == (
        "raw_input_contents[0] has 2 elements; the shape needs 3"
    )


def test_an_undecodable_file_is_named_by_its_index() -> None:
    files = [IMAGES[0], IMAGES[1], b"GIF89a", IMAGES[2]]
    assert _error(_request(files)) == (
        f"{FIELD}[2] could not be decoded as PNG or JPEG (unknown format)"
    )
    truncated = [IMAGES[1], IMAGES[0][: len(IMAGES[0]) // 2]]
    work = codec_v2.prepare_inputs(_request(truncated), RGB_CROP, LIMITS)  # headers are fine
    with pytest.raises(InvalidInput, match=r"^inputs\[0\] \('image'\)\[1\] could not be decoded"):
        work.produce(lambda: None)


def test_encoded_images_need_a_1_or_3_channel_model() -> None:
    two = _model(InputSpec(2, 4, 4), [0, 0], [1, 1])
    assert _error(_request(IMAGES[:1]), two).startswith(
        f"{FIELD}[0]: encoded images need a 1- or 3-channel model; this model has 2 channels"
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            [IMAGES[0], encode_image(np.zeros((2, 301), np.uint8))],
            f"{FIELD}[1] is 301x2 pixels; each side must be <= max_image_side=300 "
            "(CNN_MAX_IMAGE_SIDE)",
        ),
        (
            [encode_image(np.zeros((250, 250), np.uint8))] * 2,
            "the 2 encoded images decode to 125000 pixels in all; max_decoded_pixels is 100000 "
            "(CNN_MAX_DECODED_PIXELS)",
        ),
        (
            IMAGES[:1] * 9,
            f"{FIELD} has 9 images; max_images_per_request is 8 (CNN_MAX_IMAGES_PER_REQUEST)",
        ),
    ],
    ids=["side", "decoded-pixels", "images"],
)
def test_limits_are_checked_before_any_pixel_is_decoded(files: list[bytes], message: str) -> None:
    with pytest.raises(LimitExceeded) as info:
        codec_v2.prepare_inputs(_request(files), RGB_CROP, LIMITS)  # raises before any work
    assert str(info.value) == message


def test_metadata_lists_the_raw_and_the_encoded_input() -> None:
    meta = codec_v2.encode_metadata(RGB_CROP, [1, 3])
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input", "UINT8", [-1, 3, 12, 10]),
        ("image", "BYTES", [-1]),
    ]


def test_config_marks_both_inputs_optional_and_carries_the_preprocessing() -> None:
    config = codec_v2.encode_config(GREY_STRETCH, max_batch_size=64, delay_us=1000).config
    raw, image = config.input
    assert (raw.name, raw.data_type, list(raw.dims), raw.optional) == (
        "input",
        config_pb.TYPE_FP32,
        [1, 9, 11],
        True,
    )
    assert (image.name, image.data_type, list(image.dims), image.optional) == (
        "image",
        config_pb.TYPE_STRING,
        [1],
        True,
    )
    assert image.format == config_pb.ModelInput.FORMAT_NONE
    assert image.HasField("reshape") and list(image.reshape.shape) == []
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert params == {
        "version": "3",
        "task": "classification",
        "class_names": json.dumps(["a", "b", "c"]),
        "channels": "1",
        "height": "9",
        "width": "11",
        "resize": "stretch",
        "pixel_range": "[-1.0, 1.0]",
        "mean": "[0.5]",
        "std": "[2.0]",
    }
