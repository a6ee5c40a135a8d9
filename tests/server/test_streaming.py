"""`server.streaming.StreamPipeline` behind a real grpc.aio bidirectional call, with answers the
test holds open: the per-stream bound, completion order, and stopping on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from server.streaming import StreamPipeline
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for_on_loop

Scenario = Callable[[grpc.aio.StreamStreamMultiCallable, "Held"], Awaitable[None]]


class Held:
    """Answers that wait until the test releases them, by request; and the stream's pipeline."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.stop = asyncio.Event()
        self.release: dict[bytes, asyncio.Event] = {}
        self.entered: list[bytes] = []
        self.pipeline: StreamPipeline[bytes, bytes] | None = None
        self.ended: list[str] = []

    def gate(self, request: bytes) -> asyncio.Event:
        return self.release.setdefault(request, asyncio.Event())

    async def answer(self, request: bytes) -> bytes:
        self.entered.append(request)
        await self.gate(request).wait()
        return b"answer:" + request

    async def handler(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        self.pipeline = StreamPipeline(self.answer, self.max_inflight, self.stop)
        async for item in self.pipeline.answers(requests):
            yield item
        self.ended.append("interrupted" if self.pipeline.interrupted else "client done")


def _run(max_inflight: int, scenario: Scenario) -> None:
    async def main() -> None:
        held = Held(max_inflight)
        handler = grpc.method_handlers_generic_handler(
            "test.Stream",
            {
                "Pipe": grpc.stream_stream_rpc_method_handler(
                    held.handler, request_deserializer=bytes, response_serializer=bytes
                )
            },
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(channel.stream_stream("/test.Stream/Pipe"), held)
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_a_stream_reads_no_request_beyond_its_bound_until_one_is_answered() -> None:
    async def scenario(pipe: grpc.aio.StreamStreamMultiCallable, held: Held) -> None:
        call = pipe(timeout=EVENT_LIMIT_S)
        for i in range(4):  # the client sends one more than the bound
            await call.write(b"%d" % i)

        def settled() -> bool:  # the reader waits for a slot, or (a bug) read the 4th
            return held.pipeline is not None and (
                held.pipeline.waiting_for_slot or len(held.entered) > 3
            )

        await wait_for_on_loop(settled, EVENT_LIMIT_S, what="the reader to wait for a slot")
        assert held.entered == [b"0", b"1", b"2"]
        assert held.pipeline is not None and held.pipeline.read == 3
        assert held.pipeline.in_flight == 3
        held.gate(b"1").set()  # answering one lets the reader take the next request
        assert await call.read() == b"answer:1"
        await wait_for_on_loop(lambda: len(held.entered) == 4, EVENT_LIMIT_S)
        assert held.entered[3] == b"3"
        await call.done_writing()
        for request in (b"0", b"2", b"3"):
            held.gate(request).set()
        rest = [await call.read() for _ in range(3)]
        assert sorted(rest) == [b"answer:0", b"answer:2", b"answer:3"]
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        assert held.ended == ["client done"]

    _run(3, scenario)


def test_answers_come_in_completion_order() -> None:
    async def scenario(pipe: grpc.aio.StreamStreamMultiCallable, held: Held) -> None:
        call = pipe(timeout=EVENT_LIMIT_S)
        for request in (b"a", b"b", b"c"):
            await call.write(request)
        await wait_for_on_loop(lambda: len(held.entered) == 3, EVENT_LIMIT_S)
        for request in (b"c", b"a", b"b"):
            held.gate(request).set()
            assert await call.read() == b"answer:" + request
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF

    _run(8, scenario)


def test_stopping_answers_what_was_read_then_ends_the_stream() -> None:
    async def scenario(pipe: grpc.aio.StreamStreamMultiCallable, held: Held) -> None:
        call = pipe(timeout=EVENT_LIMIT_S)
        for request in (b"a", b"b"):
            await call.write(request)
        await wait_for_on_loop(lambda: len(held.entered) == 2, EVENT_LIMIT_S)
        held.stop.set()  # the server drains; the client never half-closes
        await wait_for_on_loop(lambda: held.pipeline and held.pipeline.interrupted, EVENT_LIMIT_S)
        held.gate(b"b").set()
        held.gate(b"a").set()
        assert sorted([await call.read(), await call.read()]) == [b"answer:a", b"answer:b"]
        assert await call.read() == grpc.aio.EOF
        assert held.ended == ["interrupted"]

    _run(8, scenario)


def test_a_cancelled_call_cancels_its_answers_in_flight() -> None:
    async def scenario(pipe: grpc.aio.StreamStreamMultiCallable, held: Held) -> None:
        call = pipe(timeout=EVENT_LIMIT_S)
        await call.write(b"a")
        await wait_for_on_loop(lambda: held.entered == [b"a"], EVENT_LIMIT_S)
        call.cancel()
        await wait_for_on_loop(
            lambda: held.pipeline is not None and held.pipeline.in_flight == 0, EVENT_LIMIT_S
        )
        assert held.ended == []  # the handler did not run to its end

    _run(8, scenario)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_inflight is 0"):
        StreamPipeline(lambda r: asyncio.sleep(0), 0, asyncio.Event())
