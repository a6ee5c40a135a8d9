"""A hostile caller's view of the server: what it can make the server do before it is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.server.models import TrainedArtifact, publish_copy

TOKEN = "s3cret-token"


@pytest.fixture()
def token_server(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> Iterator[str]:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    yield server_factory(root, {"CNN_AUTH_TOKEN": TOKEN}).address


@pytest.mark.parametrize(
    "method",
    [
        "/cnn.v1.Classifier/Classify",
        "/inference.GRPCInferenceService/ModelInfer",
        "/cnn.v1.Training/Submit",
    ],
)
def test_an_unauthenticated_request_is_refused_without_being_parsed(
    token_server: str, method: str
) -> None:
    # Bytes that are no valid protobuf message: a server that parsed them before checking the
    # token would answer INVALID_ARGUMENT (or UNKNOWN), not UNAUTHENTICATED.
    garbage = b"\xff\xff\xff\xff\x0f" * 1000
    with grpc.insecure_channel(token_server) as channel:
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            call(garbage, timeout=60)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    assert "bearer token" in (info.value.details() or "")


def test_requests_beyond_the_in_flight_byte_budget_are_refused_until_bytes_are_released() -> None:
    """A real grpc.aio server with the service interceptor and a handler the test holds open."""
    import asyncio

    from server.interceptors import ServiceInterceptor

    async def scenario() -> None:
        release = asyncio.Event()
        entered = asyncio.Condition()
        holding = 0

        async def hold(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            nonlocal holding
            async with entered:
                holding += 1
                entered.notify_all()
            await release.wait()
            return b"ok"

        async def handlers_holding(count: int) -> None:
            async with entered:
                await entered.wait_for(lambda: holding == count)

        handler = grpc.method_handlers_generic_handler(
            "test.Budget",
            {
                "Hold": grpc.unary_unary_rpc_method_handler(
                    hold, request_deserializer=bytes, response_serializer=bytes
                )
            },
        )
        interceptor = ServiceInterceptor(None, max_inflight_bytes=100_000)
        server = grpc.aio.server(interceptors=[interceptor])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary("/test.Budget/Hold")
                first = asyncio.ensure_future(call(b"x" * 60_000, timeout=300))
                await handlers_holding(1)
                assert interceptor.inflight.used == 60_000
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(b"y" * 60_000, timeout=300)
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "max_inflight_bytes=100000" in (info.value.details() or "")
                assert "CNN_MAX_INFLIGHT_BYTES" in (info.value.details() or "")
                small = asyncio.ensure_future(call(b"z" * 30_000, timeout=300))
                await handlers_holding(2)  # what still fits the budget is admitted
                assert interceptor.inflight.used == 90_000
                release.set()
                assert await first == b"ok" and await small == b"ok"
                assert interceptor.inflight.used == 0  # nothing leaked
                assert await call(b"y" * 60_000, timeout=300) == b"ok"
        finally:
            await server.stop(None)

    asyncio.run(scenario())
