"""Server interceptor: bearer-token authentication and per-RPC metrics."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import grpc

from server import metrics

# Always reachable without a token: orchestrators probe health without credentials.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)


def _token_ok(metadata: Any, token: str) -> bool:
    expected = f"Bearer {token}".encode()
    for key, value in metadata or ():
        if key == "authorization":
            given = value.encode() if isinstance(value, str) else bytes(value)
            return hmac.compare_digest(given, expected)
    return False


def _timed(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    latency = metrics.LATENCY.labels(method)
    counters: dict[str, Any] = {}  # status name -> counter child (label lookups cached)

    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            return behavior(request, context)
        finally:
            code = context.code() if hasattr(context, "code") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            counter = counters.get(name)
            if counter is None:
                counter = counters[name] = metrics.REQUESTS.labels(method, name)
            counter.inc()
            latency.observe(time.perf_counter() - started)

    return wrapper


def _rejecting(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        metrics.REQUESTS.labels(method, "UNAUTHENTICATED").inc()
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid bearer token: send metadata 'authorization: Bearer <token>'",
        )

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    return grpc.stream_stream_rpc_method_handler(deny, **kwargs)


class ServiceInterceptor(grpc.ServerInterceptor):
    """Reject RPCs without the bearer token (when one is configured); time unary RPCs."""

    def __init__(self, auth_token: str | None) -> None:
        self._token = auth_token
        # method -> (handler, timed handler): built once per method, not once per RPC
        self._timed: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if (
            self._token
            and not method.startswith(PUBLIC_PREFIXES)
            and not _token_ok(handler_call_details.invocation_metadata, self._token)
        ):
            return _rejecting(handler, method)
        if handler.unary_unary is None:
            return handler
        cached = self._timed.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        timed = handler._replace(unary_unary=_timed(method, handler.unary_unary))
        self._timed[method] = (handler, timed)
        return timed
