"""Domain errors carrying their gRPC status, and the one decorator that maps them.

Servicer methods (coroutines of the `grpc.aio` server) raise these, or let codec/registry code
raise them; `map_errors` turns them into `await context.abort(code, message)`. Anything else
is a bug: it is logged with its traceback and reported to the client as INTERNAL without
internals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class ServerError(Exception):
    """Base of errors that reach the client with `code` and the message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidInput(ServerError, ValueError):
    """Malformed request: wrong shape, datatype, byte count, value range, undecodable image."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class WrongTask(ServerError):
    """The model exists but does another task than the RPC serves (a regression model asked
    to classify): the message names the RPC to use."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ModelNotFound(ServerError, LookupError):
    """Unknown model name or version."""

    code = grpc.StatusCode.NOT_FOUND


class NotFound(ServerError, LookupError):
    """Unknown stored object (a data set name, version or id)."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServerError):
    """The request is valid but the system is not in a state to do it (e.g. deleting a data
    set version a queued job trains on)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class LimitExceeded(ServerError):
    """A configured limit (images per request, image side, queue size) was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServerError):
    """The server cannot serve now (draining, model unloading, no models loaded yet)."""

    code = grpc.StatusCode.UNAVAILABLE


class PreconditionFailed(ServerError):
    """The server is not in a state to do it (e.g. it cannot write its model repository)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(ServerError):
    """The server does not offer this operation."""

    code = grpc.StatusCode.UNIMPLEMENTED


class DeadlineExceeded(ServerError):
    """The request's deadline (or the server's request timeout) passed while it waited."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(ServerError):
    """Missing or wrong bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The (code, message) a client sees for `exc`."""
    if isinstance(exc, ServerError):
        return exc.code, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see server log"


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, where: str) -> None:
    """End the RPC with `exc`'s status (context.abort raises); log what is not a domain error."""
    if not isinstance(exc, ServerError):
        log.exception("unhandled error in %s", where)
    await context.abort(*status_of(exc))


def map_errors(method: F) -> F:
    """Decorate an async unary servicer method `(self, request, context)`: domain errors ->
    abort with their status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method.__qualname__)

    return wrapper  # type: ignore[return-value]


def map_stream_errors(method: F) -> F:
    """Like `map_errors` for server-streaming methods (async generators)."""

    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method.__qualname__)

    return wrapper  # type: ignore[return-value]
