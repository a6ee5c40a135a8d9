"""Classifier.Explain against a real server process: saliency that follows the drawn stroke,
tensors equal to `core.explain` run locally, PNGs of the stated sizes, no interference with
concurrent Classify calls, errors with their codes and messages, the client and the CLI."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from cnn_client import Classification, CnnClient, CnnClientError
from core.artifacts import load_artifact, make_meta, preprocess, save_artifact
from core.datasets import Normalisation
from core.explain import feature_maps, saliency
from core.model import Sequential
from core.regression import TargetScaling
from core.repository import ModelRepository
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess, start_server
from tests.support.images import encode_image
from tests.support.limits import EVENT_LIMIT_S
from tests.support.metrics import metric_value, requests_handled
from tests.support.polling import wait_for
from tests.support.published import SOURCE_ARCHITECTURE

#: Digits pixels are 0..16: a pixel above this is part of the drawn stroke, 0 is background.
STROKE_THRESHOLD = 8


def _publish_regression(root: Path) -> None:
    """An untrained (seeded) 3-output regression model "discs8" of 1x8x8 input."""
    architecture = [*SOURCE_ARCHITECTURE[:-1], {"type": "dense", "units": 3}]
    model = Sequential.from_spec(architecture, (1, 8, 8), seed=0)
    meta = make_meta(
        model,
        name="discs8",
        class_names=[],
        normalisation=Normalisation(mean=[5.0], std=[6.0]),
        pixel_range=(0.0, 16.0),
        target_names=["cx", "cy", "r"],
        target_scaling=TargetScaling(mean=[4.0, 4.0, 2.0], std=[2.0, 2.0, 1.0]),
    )
    ModelRepository(root).publish("discs8", lambda d: save_artifact(d, model, meta))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    publish_copy(root, "digits", digits_artifact.path)
    _publish_regression(root)
    # these tests are not about the per-caller rate (one has its own server for it)
    running = start_server(
        tmp_path_factory.mktemp("server"), root, {"CNN_EXPLAIN_RATE_PER_MIN": "0"}
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[CnnClient]:
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as c:
        yield c


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.ClassifierStub]:
    with server.channel() as channel:
        yield pb_grpc.ClassifierStub(channel)


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG" and image.mode == "RGB"
        return image.size


def _expect(code: grpc.StatusCode, call, pattern: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == code, raised.value.details()
    assert re.search(pattern, raised.value.details() or ""), raised.value.details()


def test_saliency_is_higher_on_the_drawn_stroke_than_on_the_background(
    client: CnnClient, digits_artifact: TrainedArtifact
) -> None:
    images = digits_artifact.data.x_test[:20]  # (20, 1, 8, 8) uint8, 0..16
    stroke_means, background_means = [], []
    for image in images:
        result = client.explain(image, model="digits", want_png=False, feature_maps=False)
        pixels = image[0]
        stroke, background = pixels > STROKE_THRESHOLD, pixels == 0
        assert stroke.any() and background.any()
        stroke_means.append(float(result.saliency[stroke].mean()))
        background_means.append(float(result.saliency[background].mean()))
    assert np.mean(stroke_means) > np.mean(background_means), (stroke_means, background_means)


def test_tensors_equal_core_explain_on_the_same_preprocessed_input(
    client: CnnClient, digits_artifact: TrainedArtifact
) -> None:
    image = digits_artifact.data.x_test[3]
    result = client.explain(image, model="digits", layer_types=["conv2d", "maxpool2d"])
    local = load_artifact(digits_artifact.path)
    x = preprocess(local.meta, image[None])
    probabilities = local.predict_proba(image[None])[0]
    assert result.target == int(np.argmax(probabilities)) == result.class_indices[0]
    np.testing.assert_allclose(result.outputs, probabilities, atol=1e-5)
    expected = saliency(local.model, x, [result.target])[0]
    assert result.saliency.shape == (8, 8) and result.saliency.dtype == np.float32
    np.testing.assert_allclose(result.saliency, expected, atol=1e-5)
    assert [layer.index for layer in result.layers] == [0, 2]
    maps = feature_maps(local.model, x, [0, 2])
    for layer in result.layers:
        np.testing.assert_allclose(layer.maps, maps[layer.index][0], atol=1e-5)
    other = (result.target + 1) % 10  # another target gives that target's gradient
    again = client.explain(image, model="digits", target=other, feature_maps=False)
    assert again.target == other and again.target_name == str(other)
    np.testing.assert_allclose(again.saliency, saliency(local.model, x, [other])[0], atol=1e-5)


def test_layers_carry_their_receptive_field_and_pngs_have_the_stated_sizes(
    stub: pb_grpc.ClassifierStub, digits_artifact: TrainedArtifact
) -> None:
    image = digits_artifact.data.x_test[0]
    png = encode_image((image[0].astype(np.float32) * 255 / 16).round().astype(np.uint8))
    response = stub.Explain(
        pb.ExplainRequest(model="digits", image=pb.Image(encoded=png), want_png=True, top_k=3),
        timeout=EVENT_LIMIT_S,
    )
    assert response.task == "classification" and response.version == 1
    assert len(response.prediction.class_indices) == 3 and len(response.outputs) == 10
    # 8x8 input: scale ceil(128 / 8) = 16 -> 128 x 128 heat map
    assert response.saliency_scale == 16
    assert (response.saliency_png.width, response.saliency_png.height) == (128, 128)
    assert _png_size(response.saliency_png.data) == (128, 128)
    assert list(response.saliency.shape) == [8, 8]
    assert response.saliency_max == pytest.approx(
        np.frombuffer(response.saliency.data, "<f4").max()
    )
    (conv,) = response.layers  # default: every conv2d layer (the digits model has one)
    assert (conv.index, conv.type, list(conv.maps.shape)) == (0, "conv2d", [8, 8, 8])
    # 3x3 conv, stride 1, 'same' padding: each unit sees 3x3 input pixels centred on itself
    assert list(conv.receptive_field) == [3, 3] and list(conv.jump) == [1, 1]
    assert list(conv.start) == [0.0, 0.0] and not conv.global_receptive_field
    # 8 maps of 8x8: 3 columns, 3 rows; tiles 8 * 4 = 32 px, 2 px gaps -> 100 x 100
    assert (conv.columns, conv.tile_scale) == (3, 4)
    assert (conv.png.width, conv.png.height) == (100, 100)
    assert _png_size(conv.png.data) == (100, 100)
    maps = np.frombuffer(conv.maps.data, "<f4")
    assert (conv.min, conv.max) == (pytest.approx(maps.min()), pytest.approx(maps.max()))


def test_pooling_layer_maps_report_the_grown_receptive_field(client: CnnClient) -> None:
    image = np.zeros((8, 8), np.uint8)
    (pool,) = client.explain(image, model="digits", layers=[2]).layers
    # conv 3x3 (size 3, jump 1) then 2x2 pool stride 2: size 3 + 1 = 4, jump 2, start 0.5
    assert pool.maps.shape == (8, 4, 4)
    assert pool.receptive_field == (4, 4) and pool.jump == (2, 2) and pool.start == (0.5, 0.5)
    assert _png_size(pool.png) == (3 * 4 * 8 + 2 * 2, 3 * 4 * 8 + 2 * 2)


def test_a_regression_model_is_explained_for_an_output_index(
    client: CnnClient, server: ServerProcess
) -> None:
    image = np.full((1, 8, 8), 7, np.uint8)
    result = client.explain(image, model="discs8", target=2, feature_maps=False)
    assert result.task == "regression" and result.class_indices == []
    assert (result.target, result.target_name) == (2, "r")
    local = load_artifact(ModelRepository(server.models_dir).path("discs8", 1))
    x = preprocess(local.meta, image[None])
    np.testing.assert_allclose(result.outputs, local.regress(image[None])[0], atol=1e-5)
    np.testing.assert_allclose(result.saliency, saliency(local.model, x, [2])[0], atol=1e-5)
    assert client.explain(image, model="discs8", feature_maps=False).target == 0  # the default


def _by_class(result: Classification) -> np.ndarray:
    """All K probabilities in class order (the ranking of near-equal ones may differ)."""
    out = np.zeros(len(result.class_indices))
    out[result.class_indices] = result.probabilities
    return out


def test_concurrent_explain_and_classify_all_succeed_with_unchanged_results(
    server: ServerProcess, digits_artifact: TrainedArtifact
) -> None:
    images = digits_artifact.data.x_test[:16]
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as c:
        baseline = c.classify_batch(images, model="digits", top_k=10).results
    errors: list[BaseException] = []
    mismatches: list[int] = []
    explained: list[int] = []

    def classify_loop() -> None:
        try:
            with CnnClient(server.address, timeout=EVENT_LIMIT_S) as c:
                for _ in range(15):
                    results = c.classify_batch(images, model="digits", top_k=10).results
                    for i, (got, want) in enumerate(zip(results, baseline, strict=True)):
                        if not np.allclose(_by_class(got), _by_class(want), atol=1e-6):
                            mismatches.append(i)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def explain_loop(offset: int) -> None:
        try:
            with CnnClient(server.address, timeout=EVENT_LIMIT_S) as c:
                for i in range(8):
                    image = images[(offset + i) % len(images)]
                    result = c.explain(image, model="digits", layer_types=["relu"])
                    assert result.saliency.shape == (8, 8) and len(result.layers) == 1
                    explained.append(result.target)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=classify_loop) for _ in range(3)]
    threads += [threading.Thread(target=explain_loop, args=(k * 5,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(EVENT_LIMIT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [] and mismatches == []
    assert len(explained) == 24


def test_unknown_model_and_version_are_not_found(stub: pb_grpc.ClassifierStub) -> None:
    image = pb.Image(tensor=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=bytes(64)))
    _expect(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.Explain(pb.ExplainRequest(model="nope", image=image), timeout=EVENT_LIMIT_S),
        r"model 'nope' is not loaded",
    )
    _expect(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.Explain(
            pb.ExplainRequest(model="digits", version=9, image=image), timeout=EVENT_LIMIT_S
        ),
        r"no loaded version 9",
    )


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"target": 10}, r"target is 10; class indices .* are in \[0, 10\)"),
        ({"target": -1}, r"target is -1; .*\[0, 10\)"),
        ({"layers": [0, 7]}, r"layers\[1\] is 7; layer indices are in \[0, 5\)"),
        ({"layers": [4]}, r"layers\[0\]: layer 4 \(dense\) outputs \(10,\), not \(C, H, W\)"),
        ({"layer_types": ["conv3d"]}, r"layer_types\[0\] is 'conv3d'; .*conv2d"),
        ({"image": None}, r"image is required"),
        ({"image": pb.Image()}, r"image is empty"),
        ({"image": pb.Image(encoded=b"not a png")}, r"image\.encoded"),
        (
            {
                "image": pb.Image(
                    tensor=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=b"\x11" * 64)
                )
            },
            r"image\.tensor has values in \[17, 17\], outside the model's pixel range \[0, 16\]",
        ),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_field(
    stub: pb_grpc.ClassifierStub, fields: dict, pattern: str
) -> None:
    request = pb.ExplainRequest(model="digits")
    image = fields.pop(
        "image", pb.Image(tensor=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=bytes(64)))
    )
    if image is not None:
        request.image.CopyFrom(image)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(request, key).extend(value)
        else:
            setattr(request, key, value)
    _expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.Explain(request, timeout=EVENT_LIMIT_S),
        pattern,
    )


def test_limits_auth_and_metrics_apply_to_explain(
    tmp_path: Path, digits_artifact: TrainedArtifact
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    env = {
        "CNN_MAX_EXPLAIN_LAYERS": "1",
        "CNN_MAX_EXPLAIN_BYTES": "1024",
        "CNN_MAX_IMAGE_SIDE": "16",
        "CNN_AUTH_TOKEN": "s3cret",
        "CNN_METRICS_PORT": "0",
    }
    running = start_server(tmp_path / "server", root, env)
    try:
        port = running.process.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        url = f"http://127.0.0.1:{port.group(1)}/metrics"
        token = [("authorization", "Bearer s3cret")]
        with running.channel() as channel:
            stub = pb_grpc.ClassifierStub(channel)
            zeros = pb.Image(
                tensor=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=bytes(64))
            )

            def call(metadata=token, **fields):  # type: ignore[no-untyped-def]
                request = pb.ExplainRequest(model="digits", **fields)
                return lambda: stub.Explain(request, metadata=metadata, timeout=EVENT_LIMIT_S)

            exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
            _expect(
                exhausted, call(image=zeros, layers=[0, 1]), r"2 layers.*CNN_MAX_EXPLAIN_LAYERS"
            )
            # conv maps 8 x 8 x 8 float32 = 2048 bytes + saliency 8 x 8 x 4 = 256 > 1024
            _expect(
                exhausted, call(image=zeros, layers=[0]), r"2304 bytes.*1024.*CNN_MAX_EXPLAIN_BYTES"
            )
            big = pb.Image(encoded=encode_image(np.zeros((32, 32), np.uint8)))
            _expect(exhausted, call(image=big, skip_feature_maps=True), r"CNN_MAX_IMAGE_SIDE")
            _expect(
                grpc.StatusCode.UNAUTHENTICATED,
                call(metadata=[], image=zeros, skip_feature_maps=True),
                r"bearer token",
            )
            answer = call(image=zeros, skip_feature_maps=True)()
            assert len(answer.layers) == 0 and not answer.saliency_png.data

        def counted() -> bool:
            method = "/cnn.v1.Classifier/Explain"
            return (
                requests_handled(url, method, "RESOURCE_EXHAUSTED") == 3
                and requests_handled(url, method, "UNAUTHENTICATED") == 1
                and requests_handled(url, method, "OK") == 1
                and metric_value(url, "cnn_explain_duration_seconds_count", model="digits") == 1
            )

        wait_for(counted, EVENT_LIMIT_S, what="Explain requests in the metrics")
    finally:
        running.stop()


def test_explain_calls_beyond_the_per_caller_burst_are_refused_and_classify_is_not(
    tmp_path: Path, digits_artifact: TrainedArtifact
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    # a refill of one call per 1000 minutes: no token comes back while the test runs
    env = {"CNN_EXPLAIN_BURST": "2", "CNN_EXPLAIN_RATE_PER_MIN": "0.001"}
    running = start_server(tmp_path / "server", root, env)
    try:
        with running.channel() as channel:
            stub = pb_grpc.ClassifierStub(channel)
            zeros = pb.Image(
                tensor=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=bytes(64))
            )
            request = pb.ExplainRequest(model="digits", image=zeros, skip_feature_maps=True)
            for _ in range(2):
                stub.Explain(request, timeout=EVENT_LIMIT_S)
            _expect(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                lambda: stub.Explain(request, timeout=EVENT_LIMIT_S),
                r"at most 2 at once.*CNN_EXPLAIN_BURST, CNN_EXPLAIN_RATE_PER_MIN.*retry in",
            )
            # only Explain is limited: Classify from the same caller still answers
            answer = stub.Classify(
                pb.ClassifyRequest(model="digits", images=[zeros]), timeout=EVENT_LIMIT_S
            )
            assert len(answer.results) == 1
    finally:
        running.stop()


def test_cli_writes_the_saliency_and_feature_map_pictures(
    server: ServerProcess,
    digits_artifact: TrainedArtifact,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cnn_cli.main import main

    image = digits_artifact.data.x_test[1][0]
    path = tmp_path / "digit.png"
    path.write_bytes(encode_image((image.astype(np.float32) * 255 / 16).round().astype(np.uint8)))
    out = tmp_path / "out"
    code = main(
        ["explain", "digits:1", str(path), "--out", str(out), "--layer", "2",
         "--layer-type", "conv2d", "--address", server.address]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "digits version 1" in printed and "prediction:" in printed
    assert _png_size((out / "saliency.png").read_bytes()) == (128, 128)
    assert _png_size((out / "layer-0-conv2d.png").read_bytes()) == (100, 100)
    assert _png_size((out / "layer-2-maxpool2d.png").read_bytes()) == (100, 100)
    with np.load(out / "explain.npz", allow_pickle=False) as arrays:
        assert arrays["saliency"].shape == (8, 8) and arrays["layer_2"].shape == (8, 4, 4)


def test_client_raises_a_typed_error(client: CnnClient) -> None:
    with pytest.raises(CnnClientError) as raised:
        client.explain(np.zeros((8, 8), np.uint8), model="digits", target=99)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
