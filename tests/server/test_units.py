"""In-process unit tests of the server's pure parts: settings, batcher, images, registry.

Never imports `server.app`, `server.v2_servicer` or `server.codec_v2` (see test_v2_api.py).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from core.artifacts import InputSpec
from server.batcher import COMPUTE_LOCK, Batcher, BatcherClosed, Pending
from server.errors import DeadlineExceeded, InvalidInput, LimitExceeded, ModelNotFound
from server.images import check_image_shape, check_pixels, decode_image
from server.model import ServedModel
from server.registry import ModelRegistry, parse_version
from server.tensors import array_from_bytes, check_tensor_shape
from tests.support.images import encode_image
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for_on_loop

SPEC = InputSpec(1, 8, 8, "uint8", (0.0, 16.0))


# --- batcher ---------------------------------------------------------------------------------
# The batcher lives on the server's event loop: each test runs one loop with asyncio.run.
# Its waits under load read a ManualClock that only the test moves, so "not yet" and "now"
# are decided by the test, never by how fast this machine is. Forward functions that must
# stay busy wait on a threading.Event the test sets; LIMIT_S only guards against hangs.

LIMIT_S = EVENT_LIMIT_S


class ManualClock:
    """A clock for `Batcher(clock=...)` that stands still until `advance` moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _batcher(run, **kwargs) -> Batcher:  # type: ignore[no-untyped-def]
    options = {"max_batch_size": 8, "max_queue_delay_s": 0.0, "max_queue_size": 100}
    options.update(kwargs)
    return Batcher(run, loop=asyncio.get_running_loop(), name="m:1", **options)


def _recording(calls: list[tuple[int, str]]):  # type: ignore[no-untyped-def]
    def run(x: np.ndarray) -> np.ndarray:
        calls.append((len(x), threading.current_thread().name))
        return x * 2

    return run


async def _let_the_loop_run() -> None:
    """A few event-loop iterations: time for flushes and checks that are due to run. With a
    ManualClock standing still, a batcher that is waiting keeps waiting however many run."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_lone_fast_request_runs_inline_without_waiting_for_the_queue_delay() -> None:
    calls: list[tuple[int, str]] = []

    async def scenario() -> None:
        # The clock never moves: had the request waited for the queue delay, it would never
        # be answered (and fail with DeadlineExceeded after LIMIT_S).
        batcher = _batcher(_recording(calls), max_queue_delay_s=1.0, clock=ManualClock())
        out = await batcher.submit(np.ones((1, 2))).result(LIMIT_S)
        np.testing.assert_array_equal(out, np.full((1, 2), 2.0))
        assert (batcher.batches, batcher.rows, batcher.batch_stats[1][0]) == (1, 1, 1)

    asyncio.run(scenario())
    assert calls == [(1, threading.current_thread().name)]  # the loop's own thread


def test_requests_of_one_loop_iteration_share_passes_and_get_their_own_rows() -> None:
    calls: list[tuple[int, str]] = []

    async def scenario() -> None:
        batcher = _batcher(_recording(calls), max_batch_size=16)
        pending = [batcher.submit(np.full((2, 3), float(i))) for i in range(40)]
        results = await asyncio.gather(*(p.result(LIMIT_S) for p in pending))
        for i, out in enumerate(results):
            np.testing.assert_array_equal(out, np.full((2, 3), 2.0 * i))

    asyncio.run(scenario())
    sizes = [n for n, _ in calls]
    assert sum(sizes) == 80 and max(sizes) <= 16 and len(sizes) == 5


def test_request_larger_than_max_batch_is_split_into_chunks() -> None:
    calls: list[tuple[int, str]] = []

    async def scenario() -> None:
        batcher = _batcher(_recording(calls), max_batch_size=4)
        x = np.arange(10.0).reshape(10, 1)
        np.testing.assert_array_equal(await batcher.submit(x).result(LIMIT_S), x * 2)

    asyncio.run(scenario())
    assert [n for n, _ in calls] == [4, 4, 2]


def test_slow_pass_runs_in_the_compute_thread_and_arrivals_form_the_next_batch() -> None:
    gate = threading.Event()
    calls: list[tuple[int, str]] = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append((len(x), threading.current_thread().name))
        if len(calls) == 1:
            gate.wait(LIMIT_S)
        return x + 1

    async def scenario() -> None:
        batcher = _batcher(run, max_batch_size=16, inline_max_s=0.0)
        first = asyncio.ensure_future(batcher.submit(np.zeros((1, 1))).result(LIMIT_S))
        await wait_for_on_loop(lambda: calls, LIMIT_S, what="the first pass to start")
        others = [batcher.submit(np.full((1, 1), float(i))) for i in range(1, 6)]
        assert batcher.queued_rows == 5
        gate.set()
        outs = await asyncio.gather(first, *(p.result(LIMIT_S) for p in others))
        for i, out in enumerate(outs):
            np.testing.assert_array_equal(out, np.full((1, 1), i + 1.0))

    try:
        asyncio.run(scenario())
    finally:
        gate.set()  # never leave the process-wide compute thread blocked
    assert [n for n, _ in calls] == [1, 5]
    assert all(name.startswith("compute") for _, name in calls)


def test_under_load_a_flush_waits_until_arrivals_pause() -> None:
    calls: list[tuple[int, str]] = []
    clock = ManualClock()
    # max_queue_delay_s = 1: a wait ends at the latest 1 s after it began, or as soon as no
    # request arrived for a fifth of it (0.2 s).

    async def scenario() -> None:
        batcher = _batcher(_recording(calls), max_batch_size=8, max_queue_delay_s=1.0, clock=clock)

        def submit(n: int) -> list[Pending]:
            return [batcher.submit(np.zeros((1, 1))) for _ in range(n)]

        async def answered(pending: list[Pending]) -> None:
            await asyncio.gather(*(p.result(LIMIT_S) for p in pending))

        await answered(submit(1))  # a lone client never waits (the clock did not move)

        several = submit(3)  # several queued: wait for a pause in arrivals
        await _let_the_loop_run()
        assert len(calls) == 1
        clock.advance(0.25)
        await answered(several)

        early = submit(2)
        await _let_the_loop_run()
        clock.advance(0.125)
        late = submit(2)  # still arriving within the pause: these join the batch
        await _let_the_loop_run()
        clock.advance(0.125)  # 0.25 s since the wait began, but only 0.125 s since an arrival
        await _let_the_loop_run()
        assert len(calls) == 2
        clock.advance(0.125)  # a pause of 0.25 s
        await answered(early + late)

        await answered(submit(8))  # a full batch never waits

        after_load = submit(1)  # after load: one wait for a pause...
        await _let_the_loop_run()
        assert len(calls) == 4
        clock.advance(0.25)
        await answered(after_load)
        await answered(submit(1))  # ...then none

    asyncio.run(scenario())
    assert [n for n, _ in calls] == [1, 3, 4, 8, 1, 1]


def test_under_load_a_flush_waits_at_most_the_queue_delay() -> None:
    calls: list[tuple[int, str]] = []
    clock = ManualClock()

    async def scenario() -> None:
        batcher = _batcher(_recording(calls), max_batch_size=16, max_queue_delay_s=1.0, clock=clock)
        pending = [batcher.submit(np.zeros((1, 1))) for _ in range(2)]
        for _ in range(7):  # one arrival every 0.125 s: never a pause of 0.2 s
            await _let_the_loop_run()
            clock.advance(0.125)
            pending.append(batcher.submit(np.zeros((1, 1))))
        await _let_the_loop_run()
        assert calls == []  # 0.875 s into the wait
        clock.advance(0.125)  # the full second
        await asyncio.gather(*(p.result(LIMIT_S) for p in pending))

    asyncio.run(scenario())
    assert [n for n, _ in calls] == [9]


def test_full_queue_is_resource_exhausted_and_closed_batcher_refuses_but_finishes() -> None:
    started, gate = threading.Event(), threading.Event()

    def slow(x: np.ndarray) -> np.ndarray:
        started.set()
        gate.wait(LIMIT_S)
        return x

    async def scenario() -> None:
        batcher = _batcher(slow, max_batch_size=1, max_queue_size=2, inline_max_s=0.0)
        first = batcher.submit(np.zeros((1, 1)))
        # The first is running: the queue is empty.
        await wait_for_on_loop(started.is_set, LIMIT_S, what="the first pass to start")
        queued = batcher.submit(np.zeros((2, 1)))
        with pytest.raises(LimitExceeded, match="max_queue_size=2"):
            batcher.submit(np.zeros((1, 1)))
        batcher.close()  # from any thread; takes effect on the loop...
        await asyncio.sleep(0)  # ...in its next iteration
        with pytest.raises(BatcherClosed):
            batcher.submit(np.zeros((1, 1)))
        gate.set()
        assert (await first.result(LIMIT_S)).shape == (1, 1)
        assert (await queued.result(LIMIT_S)).shape == (2, 1)  # queued work still ran

    try:
        asyncio.run(scenario())
    finally:
        gate.set()


def test_result_past_deadline_is_deadline_exceeded_and_is_dropped_from_the_queue() -> None:
    gate = threading.Event()
    calls: list[tuple[int, str]] = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append((len(x), threading.current_thread().name))
        gate.wait(LIMIT_S)
        return x

    async def scenario() -> None:
        batcher = _batcher(run, max_batch_size=1, inline_max_s=0.0)
        running = batcher.submit(np.zeros((1, 1)))
        await wait_for_on_loop(lambda: calls, LIMIT_S, what="the first pass to start")
        # The pass holds the compute thread until the gate opens: this request cannot be
        # answered before its deadline.
        with pytest.raises(DeadlineExceeded, match="deadline"):
            await batcher.submit(np.zeros((1, 1))).result(0.05)
        gate.set()
        await running.result(LIMIT_S)
        await wait_for_on_loop(
            lambda: batcher.queued_rows == 0, LIMIT_S, what="the expired request to be dropped"
        )

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
    assert len(calls) == 1  # the expired request was never computed


def test_forward_passes_never_overlap_across_batchers_and_threads() -> None:
    inside = [0]
    overlaps = [0]

    def run(x: np.ndarray) -> np.ndarray:
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        time.sleep(0.0002)  # not synchronisation: a pass that lasts, so overlaps would show
        inside[0] -= 1
        return x

    stop = threading.Event()

    def warm_ups() -> None:  # the watcher warms new versions under the same lock
        while not stop.is_set():
            with COMPUTE_LOCK:
                run(np.zeros((1, 1)))

    async def scenario() -> None:
        batchers = [
            _batcher(run, max_queue_delay_s=0.0005, inline_max_s=limit) for limit in (1.0, 0.0)
        ]

        async def client(i: int) -> None:
            for _ in range(30):
                await batchers[i % 2].submit(np.zeros((1, 1))).result(LIMIT_S)

        await asyncio.gather(*(client(i) for i in range(12)))
        assert sum(b.rows for b in batchers) == 360

    thread = threading.Thread(target=warm_ups)
    thread.start()
    try:
        asyncio.run(scenario())
    finally:
        stop.set()
        thread.join()
    assert overlaps[0] == 0


@pytest.mark.parametrize("inline_max_s", [1.0, 0.0])
def test_forward_error_reaches_every_request_of_the_batch(inline_max_s: float) -> None:
    def boom(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel failed")

    async def scenario() -> None:
        batcher = _batcher(boom, inline_max_s=inline_max_s)
        pending = [batcher.submit(np.zeros((1, 1))) for _ in range(3)]
        for p in pending:
            with pytest.raises(RuntimeError, match="kernel failed"):
                await p.result(LIMIT_S)
        with pytest.raises(RuntimeError, match="kernel failed"):  # still serving
            await batcher.submit(np.zeros((1, 1))).result(LIMIT_S)

    asyncio.run(scenario())


def test_served_model_preprocess_is_bit_identical_to_core(digits_artifact) -> None:  # type: ignore[no-untyped-def]
    from core.artifacts import load_artifact, preprocess

    loaded = load_artifact(digits_artifact.path)
    spec = loaded.meta.input
    model = ServedModel(
        name="digits",
        version=1,
        spec=spec,
        normalisation=loaded.meta.preprocessing,
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


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_encoded_image_is_resized_and_rescaled_into_pixel_range(fmt: str) -> None:
    rgb = np.full((32, 16, 3), 255, np.uint8)
    out = decode_image(encode_image(rgb, fmt), SPEC, 4096, "images[0].encoded")
    assert out.shape == (1, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, 16.0, atol=0.2)


def test_undecodable_and_oversized_images_are_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"images\[2\].encoded could not be decoded"):
        decode_image(b"GIF89a....", SPEC, 4096, "images[2].encoded")
    with pytest.raises(InvalidInput, match="is empty"):
        decode_image(b"", SPEC, 4096, "images[0].encoded")
    with pytest.raises(LimitExceeded, match="max_image_side=10"):
        decode_image(
            encode_image(np.zeros((11, 4), np.uint8), "PNG"), SPEC, 10, "images[0].encoded"
        )


def test_encoded_images_need_a_one_or_three_channel_model() -> None:
    spec = InputSpec(2, 8, 8, "uint8", (0.0, 16.0))
    with pytest.raises(
        InvalidInput, match=r"images\[0\].encoded: .* has 2 channels \(send a raw tensor instead\)"
    ):
        decode_image(
            encode_image(np.zeros((8, 8), np.uint8), "PNG"), spec, 4096, "images[0].encoded"
        )


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


def test_tensor_shapes_are_checked_before_the_data() -> None:
    assert check_tensor_shape((2, 1, 8, 8), SPEC, "batch", max_images=2) == 128
    assert check_tensor_shape((8, 8), SPEC, "images[0].tensor", max_images=None) == 64
    with pytest.raises(InvalidInput, match=r"^batch\.shape is \(0, 1, 8, 8\); every dimension"):
        check_tensor_shape((0, 1, 8, 8), SPEC, "batch", max_images=2)
    with pytest.raises(
        InvalidInput, match=r"^images\[0\]\.tensor has shape \(1000000000, 8\), the model expects"
    ):
        check_tensor_shape((10**9, 8), SPEC, "images[0].tensor", max_images=None)
    with pytest.raises(LimitExceeded, match=r"^batch has 3 images; max_images_per_request is 2"):
        check_tensor_shape((3, 1, 8, 8), SPEC, "batch", max_images=2)


def test_tensor_bytes_must_fill_the_shape_exactly() -> None:
    u8 = np.dtype(np.uint8)
    x = array_from_bytes(bytes(range(64)), u8, (1, 8, 8), 64, "t.data")
    assert x.shape == (1, 8, 8) and x[0, 7, 7] == 63
    with pytest.raises(InvalidInput, match=r"^t\.data has 63 bytes; shape \(8, 8\) of uint8 "):
        array_from_bytes(bytes(63), u8, (8, 8), 64, "t.data")
    with pytest.raises(InvalidInput, match=r"shape \(8, 8\) of UINT8 needs 64 bytes$"):
        array_from_bytes(bytes(63), u8, (8, 8), 64, "raw_input_contents[0]", "UINT8")


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
