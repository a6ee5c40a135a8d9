"""Pipelining for bidirectional streams: several requests of one stream handled at once.

Knows nothing of any message type: `StreamPipeline` reads requests from a stream's request
iterator, runs an answer coroutine for each, at most `max_inflight` at a time, and yields the
answers as they complete (completion order, not request order: a small request is not held up
behind a large one; clients match answers to requests by an id the answers carry).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class _ReadingEnded:
    """Queued by the reader when it stops reading: `error` is what ended it, if anything."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class StreamPipeline(Generic[Request, Answer]):
    """Answers the requests of one stream, up to `max_inflight` of them concurrently.

    The reader takes a slot *before* it reads the next request: with `max_inflight` requests
    unanswered it reads nothing more, so HTTP/2 flow control holds the client back and one
    stream cannot take the whole server. When `stop` is set (the server drains) the reader
    stops reading; the requests already read are still answered, then `answers` ends and
    `interrupted` is True.

    Args:
        answer: produces the answer of one request; it must not raise for a bad request (turn
            it into an error answer): an exception it raises ends the stream with it.
        max_inflight: requests read and not yet answered, at most.
        stop: set when the stream must stop reading (server shutdown).
    """

    def __init__(
        self,
        answer: Callable[[Request], Awaitable[Answer]],
        max_inflight: int,
        stop: asyncio.Event,
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight is {max_inflight}; it must be >= 1")
        self._answer = answer
        self._slots = asyncio.Semaphore(max_inflight)
        self._stop = stop
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: asyncio.Queue[Answer | _ReadingEnded | BaseException] = asyncio.Queue()
        self.max_inflight = max_inflight
        self.read = 0  # requests read so far
        self.in_flight = 0  # requests read and not yet answered
        self.waiting_for_slot = False  # the reader waits for an answer before reading more
        self.interrupted = False  # reading was ended by `stop`, not by the client

    async def answers(self, requests: AsyncIterator[Request]) -> AsyncIterator[Answer]:
        """Read `requests` and yield one answer per request, in completion order.

        Ends when reading ended (client half-close or `stop`) and every request read was
        answered. Leaving the iteration early (the call is cancelled) cancels what is in flight.

        Raises:
            Whatever reading the requests raised, after the requests read before were answered,
            or what `answer` raised.
        """
        reader = asyncio.create_task(self._read(requests), name="stream-reader")
        stopper = asyncio.create_task(self._stop_reader_on_stop(reader), name="stream-stop")
        answered = 0
        ended: _ReadingEnded | None = None
        try:
            # `self.read` is final once reading ended: every request read gets its answer out
            while ended is None or answered < self.read:
                item = await self._out.get()
                if type(item) is _ReadingEnded:
                    ended = item
                    continue
                answered += 1
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
            if ended.error is not None:
                raise ended.error
        finally:
            stopper.cancel()
            reader.cancel()
            for task in self._tasks:
                task.cancel()

    async def _stop_reader_on_stop(self, reader: asyncio.Task[None]) -> None:
        await self._stop.wait()
        if not reader.done():
            self.interrupted = True
            reader.cancel()  # it waits for a request or a slot: nothing is lost

    async def _read(self, requests: AsyncIterator[Request]) -> None:
        error: BaseException | None = None
        try:
            iterator = aiter(requests)
            while True:
                if self._slots.locked():
                    self.waiting_for_slot = True
                await self._slots.acquire()
                self.waiting_for_slot = False
                try:
                    request = await anext(iterator)
                except StopAsyncIteration:
                    self._slots.release()
                    break
                self.read += 1
                self.in_flight += 1
                task = asyncio.create_task(self._answer_one(request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except asyncio.CancelledError:
            if not self.interrupted:
                raise  # the whole call is being cancelled: nobody waits for the end marker
        except Exception as exc:  # the stream broke (the client reset it, a transport error)
            error = exc
        self._out.put_nowait(_ReadingEnded(error))

    async def _answer_one(self, request: Request) -> None:
        try:
            answer = await self._answer(request)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._out.put_nowait(exc)
            return
        finally:
            self.in_flight -= 1
            self._slots.release()
        self._out.put_nowait(answer)
