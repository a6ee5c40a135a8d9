"""Bring your own data, end to end: upload a data set through the server, train on it with a
worker that reads the shared data volume, classify images of other sizes through both APIs.

The caller is this test process, talking to the stack only through public interfaces: the
Datasets gRPC service (generated stubs), `cnn train submit|watch` over Redis, Classify and
ModelInfer (tritonclient). Runs against local processes or the compose stack (conftest).
The local answer comes from the published artifact, read where the stack keeps its models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from core.artifacts import LoadedModel, image_input, load_artifact
from core.images import open_image
from proto.cnn.v1 import classifier_pb2, classifier_pb2_grpc, datasets_pb2, datasets_pb2_grpc
from tests.integration import clients
from tests.integration.conftest import unique
from tests.integration.stack import Stack
from tests.support.shapes import CLASSES, ShapeImage, shape_images, write_archive, write_npz

pytestmark = pytest.mark.integration

CHUNK = 256 * 1024
#: The model's input: colour, 32 x 32, aspect ratio kept (the shapes sit in the centre).
INPUT = {"channels": 3, "height": 32, "width": 32, "resize": "crop"}
ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 64},
    {"type": "relu"},
    {"type": "dense", "units": len(CLASSES)},
]
#: Held-out images: sides the training images never had (they were 24..72 pixels).
HELD_OUT_SIDES = (80, 128)


def _upload(address: str, path: Path, name: str, fmt: int) -> datasets_pb2.Dataset:
    data = path.read_bytes()
    header = datasets_pb2.UploadHeader(
        name=name,
        format=fmt,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=path.name,
    )

    def requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
        yield datasets_pb2.UploadDatasetRequest(header=header)
        for start in range(0, len(data), CHUNK):
            yield datasets_pb2.UploadDatasetRequest(chunk=data[start : start + CHUNK])

    with grpc.insecure_channel(address) as channel:
        reply: datasets_pb2.Dataset = datasets_pb2_grpc.DatasetsStub(channel).Upload(
            requests(), timeout=300
        )
        return reply


def _train(stack: Stack, tmp_path: Path, dataset: datasets_pb2.Dataset) -> tuple[str, int]:
    spec = {
        "name": unique("it-shapes"),
        "description": "integration suite: an uploaded data set",
        "dataset": {"name": dataset.name, "version": dataset.version},
        "input": INPUT,
        "architecture": ARCHITECTURE,
        "epochs": 12,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.003},
        "seed": 0,
        "validation_split": 0.1,
        "timeout_s": 1200,
    }
    # Over gRPC, as a service would: the server pins the data set in its data volume (a
    # submit over Redis pins it in the submitter's CNN_DATA_DIR, which this caller lacks).
    job_id = clients.submit(spec, tmp_path, address=stack.grpc_address)
    watch = clients.cnn("train", "watch", job_id, "--timeout", "1200", address=stack.grpc_address)
    status = clients.job_status(job_id, stack.redis_url)
    assert status["status"] == "finished", (watch, status)
    return spec["name"], int(status["model_version"])


def _classify(address: str, name: str, images: list[ShapeImage]) -> np.ndarray:
    """Probabilities (N, K) from Classify with the images as encoded files."""
    request = classifier_pb2.ClassifyRequest(
        model=name,
        images=[classifier_pb2.Image(encoded=image.encoded) for image in images],
        top_k=len(CLASSES),
    )
    with grpc.insecure_channel(address) as channel:
        reply = classifier_pb2_grpc.ClassifierStub(channel).Classify(request, timeout=60)
    probabilities = np.zeros((len(images), len(CLASSES)))
    for row, result in zip(probabilities, reply.results, strict=True):
        row[list(result.class_indices)] = result.probabilities
    return probabilities


def _model_infer(address: str, name: str, images: list[ShapeImage]) -> np.ndarray:
    """Probabilities (N, K) from V2 ModelInfer with the images as a BYTES tensor."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(url=address)
    try:
        tensor = triton.InferInput("image", [len(images)], "BYTES")
        tensor.set_data_from_numpy(np.array([image.encoded for image in images], dtype=np.object_))
        result = client.infer(
            name,
            [tensor],
            outputs=[triton.InferRequestedOutput("probabilities")],
            client_timeout=60,
        )
        return np.asarray(result.as_numpy("probabilities"))
    finally:
        client.close()


def _local(model: LoadedModel, images: list[ShapeImage]) -> np.ndarray:
    """What `core` answers for the same files, preprocessed here."""
    pixels = np.stack(
        [image_input(open_image(image.encoded), model.meta.input) for image in images]
    )
    return model.predict_proba(pixels)


def _check_served_model(stack: Stack, name: str, version: int) -> None:
    held_out = list(shape_images(60, seed=99, sides=HELD_OUT_SIDES, grey_every=5))
    labels = np.array([image.label for image in held_out])
    with clients.OwnApi(stack.grpc_address) as api:
        api.wait_for_model(name, version)
    own = _classify(stack.grpc_address, name, held_out)
    v2 = _model_infer(stack.grpc_address, name, held_out)
    for api_name, probabilities in (("Classify", own), ("ModelInfer", v2)):
        accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
        assert accuracy >= 0.9, f"{api_name}: accuracy {accuracy:.3f} on {len(labels)} images"
    # Classify sends float32 probabilities through the proto's float fields: compare at that
    # precision. The forward pass is the same code in the server and here.
    np.testing.assert_allclose(own, v2, atol=1e-6)
    if stack.models_dir is not None:
        local = _local(load_artifact(stack.models_dir / name / str(version)), held_out)
        np.testing.assert_allclose(v2, local, atol=1e-6)
        np.testing.assert_array_equal(v2.argmax(axis=1), local.argmax(axis=1))


def test_an_uploaded_image_archive_trains_a_colour_model_that_serves_any_size(
    stack: Stack, tmp_path: Path
) -> None:
    train = list(shape_images(360, seed=1, grey_every=7))
    test = list(shape_images(90, seed=2))
    archive = write_archive(tmp_path / "shapes.tar.gz", {"train": train, "test": test}, "tar.gz")
    dataset = _upload(
        stack.grpc_address, archive, unique("shapes"), datasets_pb2.DATASET_FORMAT_TAR_GZ
    )
    assert dataset.samples == 450 and dataset.channels == 3
    assert [c.name for c in dataset.classes] == sorted(CLASSES)
    assert dataset.min_height < dataset.max_height
    assert (dataset.train_samples, dataset.test_samples) == (360, 90)
    name, version = _train(stack, tmp_path, dataset)
    _check_served_model(stack, name, version)


def test_an_uploaded_npz_trains_a_model_that_serves_any_size(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "shapes.npz"
    write_npz(path, 450, seed=3, side=40)
    dataset = _upload(
        stack.grpc_address, path, unique("shapes-npz"), datasets_pb2.DATASET_FORMAT_NPZ
    )
    assert dataset.samples == 450 and dataset.channels == 3
    assert (dataset.min_height, dataset.max_width) == (40, 40)
    assert [c.name for c in dataset.classes] == list(CLASSES)
    name, version = _train(stack, tmp_path, dataset)
    _check_served_model(stack, name, version)
