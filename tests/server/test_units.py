"""In-process unit tests of the server's pure parts: settings, batcher, images, registry.

Never imports `server.app`, `server.v2_servicer` or `server.codec_v2` (see test_v2_api.py).
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from server.batcher import Batcher, BatcherClosed
from server.errors import DeadlineExceeded, InvalidInput, LimitExceeded, ModelNotFound
from server.images import check_image_shape, check_pixels, decode_image
from server.model import InputSpec, ServedModel
from server.registry import ModelRegistry, parse_version
from server.settings import Settings, SettingsError, settings_table

SPEC = InputSpec(1, 8, 8, "uint8", 0.0, 16.0, (4.9,), (6.0,))


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults_work_locally() -> None:
    settings = Settings.from_env({})
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.auth_token is None and not settings.tls_enabled


def test_settings_read_cnn_variables() -> None:
    settings = Settings.from_env(
        {
            "CNN_MODELS_DIR": "/m",
            "CNN_MAX_BATCH_SIZE": "8",
            "CNN_LOG_LEVEL": "debug",
            "CNN_AUTH_TOKEN": "",
        }
    )
    assert str(settings.models_dir) == "/m" and settings.max_batch_size == 8
    assert settings.log_level == "DEBUG" and settings.auth_token is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CNN_MAX_BATCH_SIZE": "0"}, "CNN_MAX_BATCH_SIZE"),
        ({"CNN_GRPC_ADDRESS": "nohost"}, "CNN_GRPC_ADDRESS"),
        ({"CNN_TLS_CERT": "/c.pem"}, "CNN_TLS_KEY"),
        ({"CNN_POLL_INTERVAL_S": "soon"}, "CNN_POLL_INTERVAL_S"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_settings_table_lists_every_variable() -> None:
    table = settings_table()
    for name in Settings.model_fields:
        assert f"`CNN_{name.upper()}`" in table


# --- batcher -------------------------------------------------------------------------------


def _double(calls: list[int]):  # type: ignore[no-untyped-def]
    def run(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        time.sleep(0.005)
        return x * 2

    return run


def test_lone_request_is_run_without_waiting_for_the_queue_delay() -> None:
    calls: list[int] = []
    batcher = Batcher(
        _double(calls), name="t", max_batch_size=8, max_queue_delay_s=1.0, max_queue_size=100
    )
    try:
        started = time.perf_counter()
        out = batcher.submit(np.ones((1, 2))).result(5)
        assert time.perf_counter() - started < 0.5
        np.testing.assert_array_equal(out, np.full((1, 2), 2.0))
    finally:
        batcher.close()


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows() -> None:
    calls: list[int] = []
    batcher = Batcher(
        _double(calls), name="t", max_batch_size=16, max_queue_delay_s=0.01, max_queue_size=1000
    )
    results: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        results[i] = batcher.submit(np.full((2, 3), float(i))).result(10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    for i in range(40):
        np.testing.assert_array_equal(results[i], np.full((2, 3), 2.0 * i))
    assert sum(calls) == 80 and max(calls) <= 16
    assert len(calls) < 40  # batched


def test_request_larger_than_max_batch_is_split_into_chunks() -> None:
    calls: list[int] = []
    batcher = Batcher(
        _double(calls), name="t", max_batch_size=4, max_queue_delay_s=0, max_queue_size=100
    )
    try:
        x = np.arange(10.0).reshape(10, 1)
        np.testing.assert_array_equal(batcher.submit(x).result(5), x * 2)
        assert max(calls) <= 4
    finally:
        batcher.close()


def test_full_queue_is_resource_exhausted_and_closed_batcher_refuses() -> None:
    gate = threading.Event()

    def slow(x: np.ndarray) -> np.ndarray:
        gate.wait(5)
        return x

    batcher = Batcher(
        slow,
        name="m:1",
        max_batch_size=1,
        max_queue_delay_s=0,
        max_queue_size=2,
        inline_when_idle=False,
    )
    first = batcher.submit(np.zeros((1, 1)))
    time.sleep(0.05)  # the first is running, the queue is empty
    batcher.submit(np.zeros((2, 1)))
    with pytest.raises(LimitExceeded, match="max_queue_size=2"):
        batcher.submit(np.zeros((1, 1)))
    gate.set()
    first.result(5)
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(np.zeros((1, 1)))


def test_result_past_deadline_is_deadline_exceeded() -> None:
    gate = threading.Event()
    batcher = Batcher(
        lambda x: (gate.wait(5), x)[1],
        name="t",
        max_batch_size=1,
        max_queue_delay_s=0,
        max_queue_size=9,
        inline_when_idle=False,
    )
    try:
        with pytest.raises(DeadlineExceeded):
            batcher.submit(np.zeros((1, 1))).result(0.05)
    finally:
        gate.set()
        batcher.close()


def test_idle_batcher_runs_the_pass_in_the_submitting_thread() -> None:
    threads: list[str] = []

    def run(x: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return x + 1

    batcher = Batcher(run, name="t", max_batch_size=4, max_queue_delay_s=1.0, max_queue_size=9)
    try:
        np.testing.assert_array_equal(batcher.submit(np.zeros((2, 1))).result(5), np.ones((2, 1)))
        assert threads == [threading.current_thread().name]
        assert (batcher.batches, batcher.rows, batcher.batch_stats[2][0]) == (1, 2, 1)
    finally:
        batcher.close()


def test_requests_arriving_during_an_inline_pass_are_batched_by_the_thread() -> None:
    gate = threading.Event()
    entered = threading.Event()
    calls: list[tuple[int, str]] = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append((len(x), threading.current_thread().name))
        if len(calls) == 1:
            entered.set()
            gate.wait(5)
        return x * 2

    batcher = Batcher(run, name="t", max_batch_size=16, max_queue_delay_s=0, max_queue_size=99)
    results: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        results[i] = batcher.submit(np.full((1, 1), float(i))).result(5)

    first = threading.Thread(target=client, args=(0,), name="first")
    first.start()
    assert entered.wait(5)
    others = [threading.Thread(target=client, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 5
    while batcher.queued_rows < 5 and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    batcher.close()
    assert calls == [(1, "first"), (5, "batcher-t")]
    for i in range(6):
        np.testing.assert_array_equal(results[i], np.full((1, 1), 2.0 * i))


def test_forward_passes_never_overlap_across_batchers_and_threads() -> None:
    inside = [0]
    overlaps = [0]

    def run(x: np.ndarray) -> np.ndarray:
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        time.sleep(0.0002)
        inside[0] -= 1
        return x

    batchers = [
        Batcher(run, name=f"m{i}", max_batch_size=8, max_queue_delay_s=0.0005, max_queue_size=999)
        for i in range(2)
    ]

    def client(i: int) -> None:
        for _ in range(30):
            batchers[i % 2].submit(np.zeros((1, 1))).result(10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in batchers:
        b.close()
    assert overlaps[0] == 0
    assert sum(b.rows for b in batchers) == 360


def test_forward_error_reaches_every_request_of_the_batch() -> None:
    def boom(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel failed")

    batcher = Batcher(boom, name="t", max_batch_size=4, max_queue_delay_s=0, max_queue_size=9)
    try:
        with pytest.raises(RuntimeError, match="kernel failed"):
            batcher.submit(np.zeros((1, 1))).result(5)
        with pytest.raises(RuntimeError, match="kernel failed"):  # the thread survived
            batcher.submit(np.zeros((1, 1))).result(5)
    finally:
        batcher.close()


def test_served_model_preprocess_is_bit_identical_to_core(digits_artifact) -> None:  # type: ignore[no-untyped-def]
    from core.artifacts import load_artifact, preprocess

    loaded = load_artifact(digits_artifact.path)
    spec = InputSpec.from_meta(loaded.meta)
    model = ServedModel(
        name="digits",
        version=1,
        spec=spec,
        class_names=tuple(loaded.meta.class_names),
        meta=loaded.meta,
        network=loaded.model,
        batcher=None,  # type: ignore[arg-type]
    )
    raw = np.random.default_rng(0).integers(0, 17, size=(5, *spec.shape), dtype=np.uint8)
    got = model.preprocess(check_pixels(raw, spec, "batch"))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, preprocess(loaded.meta, raw))
    with pytest.raises(InvalidInput, match="expects"):
        model.preprocess(np.zeros((1, 2, 8, 8), np.float32))


# --- images --------------------------------------------------------------------------------


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_encoded_image_is_resized_and_rescaled_into_pixel_range(fmt: str) -> None:
    rgb = np.full((32, 16, 3), 255, np.uint8)
    out = decode_image(_encode(rgb, fmt), SPEC, 4096, "images[0].encoded")
    assert out.shape == (1, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, 16.0, atol=0.2)


def test_undecodable_and_oversized_images_are_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"images\[2\].encoded could not be decoded"):
        decode_image(b"GIF89a....", SPEC, 4096, "images[2].encoded")
    with pytest.raises(InvalidInput, match="is empty"):
        decode_image(b"", SPEC, 4096, "images[0].encoded")
    with pytest.raises(LimitExceeded, match="max_image_side=10"):
        decode_image(_encode(np.zeros((11, 4), np.uint8), "PNG"), SPEC, 10, "images[0].encoded")


def test_pixels_must_be_finite_and_in_range() -> None:
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 3, 3] = np.inf
    with pytest.raises(InvalidInput, match="NaN or infinity"):
        check_pixels(x, SPEC, "batch")
    with pytest.raises(InvalidInput, match=r"outside the model's pixel range \[0, 16\]"):
        check_pixels(np.full((1, 1, 8, 8), 17, np.uint8), SPEC, "batch")


def test_image_shapes() -> None:
    check_image_shape((8, 8), SPEC, "t", batched=False)
    check_image_shape((3, 1, 8, 8), SPEC, "t", batched=True)
    with pytest.raises(InvalidInput, match=r"expects \(N, 1, 8, 8\)"):
        check_image_shape((3, 8, 8), SPEC, "batch", batched=True)


# --- registry ------------------------------------------------------------------------------


class _FakeModel:
    def __init__(self, name: str, version: int) -> None:
        self.name, self.version = name, version

    def close(self) -> None:
        pass


def test_registry_default_is_newest_and_versions_can_be_pinned() -> None:
    registry = ModelRegistry()
    for v in (1, 3, 2):
        registry.add(_FakeModel("m", v))  # type: ignore[arg-type]
    assert registry.get("m").version == 3
    assert registry.get("m", 1).version == 1
    with pytest.raises(ModelNotFound, match="loaded versions: 1, 2, 3"):
        registry.get("m", 4)
    with pytest.raises(ModelNotFound, match="loaded models: m"):
        registry.get("x")
    registry.remove("m", 3)
    assert registry.get("m").version == 2


def test_run_retries_on_the_new_default_when_a_version_was_just_unloaded() -> None:
    registry = ModelRegistry()
    registry.add(_FakeModel("m", 1))  # type: ignore[arg-type]
    seen: list[int] = []

    def fn(model):  # type: ignore[no-untyped-def]
        seen.append(model.version)
        if model.version == 1:
            registry.add(_FakeModel("m", 2))  # type: ignore[arg-type]
            registry.remove("m", 1)
            raise BatcherClosed("unloading")
        return model.version

    assert registry.run("m", None, fn) == 2
    assert seen == [1, 2]


@pytest.mark.parametrize("text", ["x", "-1", "0", "1.5", "99999999999999999999"])
def test_version_strings_must_be_positive_integers(text: str) -> None:
    with pytest.raises(InvalidInput, match="model_version"):
        parse_version(text, "model_version")
    assert parse_version("", "v") is None and parse_version(" 7 ", "v") == 7
