"""Server interceptor: bearer-token authentication, a budget of request bytes in flight,
per-RPC metrics, undecodable requests, and (one of several serving processes) the answering
process's pid."""

from __future__ import annotations

import hmac
import inspect
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server import metrics

# Always reachable without a token: orchestrators probe health without credentials.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)

#: Trailing metadata naming the process that answered a unary RPC, sent when several serving
#: processes share the port (a method that sets its own trailing metadata replaces it).
PID_METADATA_KEY = "cnn-server-pid"


def _token_ok(metadata: Any, token: str) -> bool:
    expected = f"Bearer {token}".encode()
    for key, value in metadata or ():
        if key == "authorization":
            given = value.encode() if isinstance(value, str) else bytes(value)
            return hmac.compare_digest(given, expected)
    return False


class _Undecodable:
    """Stands in for a request whose bytes are not the method's message type."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _OverBudget:
    """Stands in for a request refused because too many request bytes are in flight."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


_MARKERS = (_Undecodable, _OverBudget)


class InflightBytes:
    """How many request bytes the server is handling right now, against a limit.

    A request's bytes are reserved when it is deserialized and released when its handler
    returns (grpc.aio calls the handler right after deserializing, with no await between).
    Decoded tensors and images are a multiple of those bytes, so this bounds the memory that
    concurrent requests can pin, whatever their number. Used only from the event loop thread.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._held: dict[int, int] = {}  # id(request) -> bytes reserved for it

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def reserve(self, request: Any, size: int) -> None:
        self.used += size
        self._held[id(request)] = size

    def release(self, request: Any) -> None:
        self.used -= self._held.pop(id(request), 0)


def _tolerant(
    deserialize: Callable[[bytes], Any] | None, budget: InflightBytes
) -> Callable[[bytes], Any] | None:
    """A deserializer that reserves the request's bytes and returns a marker instead of raising.

    grpc.aio reports a raising deserializer as UNKNOWN "Unexpected DecodeError"; this way the
    handler can answer INVALID_ARGUMENT naming the expected message type (`_Undecodable`), or
    RESOURCE_EXHAUSTED when the in-flight budget is spent (`_OverBudget`, nothing parsed).
    """
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        if not budget.fits(len(data)):
            return _OverBudget(len(data))
        try:
            request = deserialize(data)
        except Exception as exc:
            return _Undecodable(f"{type(exc).__name__}: {exc}")
        budget.reserve(request, len(data))
        return request

    return parse


def refusal(request: Any, method: str, budget: InflightBytes) -> tuple[grpc.StatusCode, str] | None:
    """Why a request the interceptor's deserializer produced is refused, or None.

    Streaming handlers call this for each message of their request iterator (a unary RPC's
    request is checked by the interceptor itself): a message that did not parse or did not fit
    the in-flight byte budget arrives as a stand-in, not as a message.
    """
    kind = type(request)
    if kind is _OverBudget:
        return (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"server busy: {budget.used} request bytes in flight, this request's "
            f"{request.size} would pass max_inflight_bytes={budget.limit} "
            "(CNN_MAX_INFLIGHT_BYTES); retry later",
        )
    if kind is _Undecodable:
        return (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request body is not a valid message for {method} ({request.reason})",
        )
    return None


async def _reject_marker(
    request: _Undecodable | _OverBudget,
    context: grpc.aio.ServicerContext,
    method: str,
    budget: InflightBytes,
) -> None:
    refused = refusal(request, method, budget)
    if refused is not None:
        await context.abort(*refused)


def _timed(
    method: str,
    behavior: Callable[..., Any],
    budget: InflightBytes,
    trailer: tuple[tuple[str, str], ...] | None,
) -> Callable[..., Any]:
    latency = metrics.LATENCY.labels(method)
    counters: dict[str, Any] = {}  # status name -> counter child (label lookups cached)

    def record(context: grpc.aio.ServicerContext, started: float) -> None:
        code = context.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        counter = counters.get(name)
        if counter is None:
            counter = counters[name] = metrics.REQUESTS.labels(method, name)
        counter.inc()
        latency.observe(time.perf_counter() - started)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        if trailer is not None:
            context.set_trailing_metadata(trailer)
        try:
            if type(request) in _MARKERS:
                await _reject_marker(request, context, method, budget)
            return await behavior(request, context)
        finally:
            budget.release(request)
            record(context, started)

    return wrapper


def _checked_stream(
    method: str, behavior: Callable[..., Any], budget: InflightBytes
) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            if type(request) in _MARKERS:
                await _reject_marker(request, context, method, budget)
            async for item in behavior(request, context):
                yield item
        finally:
            budget.release(request)

    return wrapper


def _counted_bidi(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    """Counts the stream itself (its messages are counted by the handler, each like a unary
    request; see `metrics.observe_request`)."""

    async def wrapper(
        request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request_iterator, context):
                yield item
        finally:
            code = context.code()
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            metrics.STREAMS.labels(method, name).inc()

    return wrapper


async def _budgeted(
    requests: AsyncIterator[Any],
    context: grpc.aio.ServicerContext,
    method: str,
    budget: InflightBytes,
) -> AsyncGenerator[Any, None]:
    """The messages of a client stream, each held against the budget from its deserialization
    until the handler asks for the next one: a long upload holds one chunk's bytes, not its
    total. A message that does not parse or does not fit ends the RPC."""
    async for request in requests:
        try:
            if type(request) in _MARKERS:
                await _reject_marker(request, context, method, budget)
            yield request
        finally:
            budget.release(request)


def _checked_request_stream(
    method: str,
    behavior: Callable[..., Any],
    budget: InflightBytes,
    trailer: tuple[tuple[str, str], ...] | None,
) -> Callable[..., Any]:
    async def consume(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        messages = _budgeted(requests, context, method, budget)
        try:
            return await behavior(messages, context)
        finally:
            await messages.aclose()  # releases the message the handler stopped at

    return _timed(method, consume, budget, trailer)


def _rejecting(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        metrics.REQUESTS.labels(method, "UNAUTHENTICATED").inc()
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid bearer token: send metadata 'authorization: Bearer <token>'",
        )

    # No request deserializer: a refused caller's bytes are never parsed (grpc hands the
    # handler the raw payload), so an unauthenticated request costs no decoding work.
    kwargs = {
        "request_deserializer": None,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    return grpc.stream_stream_rpc_method_handler(deny, **kwargs)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Reject RPCs without the bearer token (when one is configured); time unary and
    client-streaming RPCs; answer requests that do not parse with INVALID_ARGUMENT and requests
    beyond the in-flight byte budget with RESOURCE_EXHAUSTED (unary, server-streaming and
    client-streaming methods; a client stream is budgeted message by message; bidirectional
    handlers get those requests as stand-ins and answer them per message, see `refusal`).
    `tag_pid`: unary answers carry this process's pid as trailing metadata `cnn-server-pid`.

    Every handler of the server is a coroutine (or async generator) function: this is a
    `grpc.aio` server, and the wrappers are coroutines too.
    """

    def __init__(
        self, auth_token: str | None, max_inflight_bytes: int, *, tag_pid: bool = False
    ) -> None:
        self._token = auth_token
        self.inflight = InflightBytes(max_inflight_bytes)
        self._trailer = ((PID_METADATA_KEY, str(os.getpid())),) if tag_pid else None
        # method -> (handler, wrapped handler): built once per method, not once per RPC
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if (
            self._token
            and not method.startswith(PUBLIC_PREFIXES)
            and not _token_ok(handler_call_details.invocation_metadata, self._token)
        ):
            return _rejecting(handler, method)
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        if handler.unary_unary is not None:
            wrapped = handler._replace(
                unary_unary=_timed(method, handler.unary_unary, self.inflight, self._trailer),
                request_deserializer=_tolerant(handler.request_deserializer, self.inflight),
            )
        elif handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            wrapped = handler._replace(
                unary_stream=_checked_stream(method, handler.unary_stream, self.inflight),
                request_deserializer=_tolerant(handler.request_deserializer, self.inflight),
            )
        elif handler.stream_stream is not None and inspect.isasyncgenfunction(
            handler.stream_stream
        ):
            # Each message reserves its bytes when parsed; the handler releases them when it
            # has answered it (`InflightBytes.release`) and answers stand-ins (`refusal`).
            wrapped = handler._replace(
                stream_stream=_counted_bidi(method, handler.stream_stream),
                request_deserializer=_tolerant(handler.request_deserializer, self.inflight),
            )
        elif handler.stream_unary is not None:
            wrapped = handler._replace(
                stream_unary=_checked_request_stream(
                    method, handler.stream_unary, self.inflight, self._trailer
                ),
                request_deserializer=_tolerant(handler.request_deserializer, self.inflight),
            )
        else:
            wrapped = handler
        self._wrapped[method] = (handler, wrapped)
        return wrapped
