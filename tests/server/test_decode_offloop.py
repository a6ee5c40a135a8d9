"""Image decoding runs off the event loop, within limits checked from the image headers.

Against a real server process. Ordering, not time: health and small requests must be answered
while requests carrying maximal images are still being decoded.
This module must never import `proto.inference` (see test_v2_api.py).
"""

from __future__ import annotations

import functools
import io
import struct
import threading
import zlib
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from tritonclient.grpc import service_pb2, service_pb2_grpc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess, start_server

MAX_SIDE = 4096  # the default CNN_MAX_IMAGE_SIDE
BIG_CALLS = 16
IMAGES_PER_CALL = 8  # 0.1 s of decoding each, about
MAX_DECODED_PIXELS = IMAGES_PER_CALL * MAX_SIDE * MAX_SIDE
DECODE_THREADS = 2


@functools.cache
def maximal_png() -> bytes:
    """A black 4096 x 4096 one-bit PNG: 2 KB that decode to 16.8 million pixels. (Small
    requests reach the server whole at once, whatever HTTP/2 flow control allows.)"""
    buf = io.BytesIO()
    Image.new("1", (MAX_SIDE, MAX_SIDE)).save(buf, format="PNG")
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (8-bit grey) and whose data is empty."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    publish_copy(root, "digits", digits_artifact.path)
    env = {
        "CNN_MAX_DECODED_PIXELS": str(MAX_DECODED_PIXELS),
        "CNN_DECODE_THREADS": str(DECODE_THREADS),
    }
    process = start_server(tmp_path_factory.mktemp("server"), root, env)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as ch:
        yield ch


def _classify(images: list[bytes]) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(model="digits", images=[pb.Image(encoded=d) for d in images])


def _small_infer() -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="UINT8", shape=[1, 1, 8, 8])
    request.raw_input_contents.append(bytes(64))
    return request


def test_health_and_small_infer_are_answered_while_maximal_pngs_are_decoded(
    channel: grpc.Channel,
) -> None:
    classifier = pb_grpc.ClassifierStub(channel)
    big = [
        classifier.Classify.future(_classify([maximal_png()] * IMAGES_PER_CALL), timeout=300)
        for _ in range(BIG_CALLS)
    ]
    # Once one big call is answered the server has every other one (sent before it on this
    # connection) and is decoding them: all are in flight.
    one_done = threading.Event()
    for call in big:
        call.add_done_callback(lambda _: one_done.set())
    assert one_done.wait(timeout=300)

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=60)
    small = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
        _small_infer(), timeout=60
    )
    still_decoding = sum(not call.done() for call in big)

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert small.model_name == "digits" and len(small.outputs) == 2
    # Each decode thread takes one big call at a time, so the big calls finish two by two,
    # each pair after 8 images' decoding: health and ModelInfer were answered before the
    # next pair. (Decoding on the event loop answered them only after several more pairs.)
    assert still_decoding >= BIG_CALLS - DECODE_THREADS, f"{still_decoding} big calls pending"
    for call in big:
        response = call.result()
        assert len(response.results) == IMAGES_PER_CALL


def test_images_decoding_to_more_than_the_pixel_cap_are_refused_before_decoding(
    channel: grpc.Channel,
) -> None:
    images = IMAGES_PER_CALL + 1
    with pytest.raises(grpc.RpcError) as info:
        pb_grpc.ClassifierStub(channel).Classify(_classify([maximal_png()] * images), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = info.value.details() or ""
    assert f"decode to {images * MAX_SIDE * MAX_SIDE} pixels" in details
    assert f"max_decoded_pixels is {MAX_DECODED_PIXELS}" in details
    assert "CNN_MAX_DECODED_PIXELS" in details


def test_header_claiming_sides_over_the_limit_is_resource_exhausted_naming_it(
    channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        pb_grpc.ClassifierStub(channel).Classify(
            _classify([png_header(100_000, 100_000)]), timeout=60
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == (
        "images[0].encoded is 100000x100000 pixels; each side must be <= "
        f"max_image_side={MAX_SIDE} (CNN_MAX_IMAGE_SIDE)"
    )
