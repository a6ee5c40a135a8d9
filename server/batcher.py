"""Dynamic batcher on the server's event loop: concurrent requests of one model version share
one forward pass.

The server is a `grpc.aio` server: every RPC handler runs on one asyncio event loop, so the
batcher needs no locks of its own. `submit` (loop thread only) queues the request's rows and
returns a `Pending`; a flush, scheduled with `call_soon` so that requests submitted in the same
loop iteration join, takes the oldest request plus every queued request that fits into
`max_batch_size` rows and runs the forward pass:
- inline on the loop thread when the pass is expected to be short (measured seconds per row x
  rows <= `inline_max_s`): no thread hand-off, which is what a lone client's latency needs;
- otherwise in the process-wide compute thread, so the loop keeps accepting requests; those
  queue up meanwhile and form the next batch as soon as the pass ends;
- under load (several requests queued, or the previous batch held several) a flush waits
  for more requests: until a full batch is queued, no request arrived for a fifth of
  `max_queue_delay_s`, or `max_queue_delay_s` passed (the loop keeps serving meanwhile);
  a lone client never waits;
- requests with more rows than `max_batch_size` are split into chunks at submission.

Every forward pass in the process holds `COMPUTE_LOCK`: Numba's parallel kernels are never
entered from two threads at once, whichever thread (loop, compute thread, the repository
watcher warming a new version) runs the pass.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from server.errors import DeadlineExceeded, LimitExceeded, Unavailable

log = logging.getLogger(__name__)

# Held around every forward pass (and model warm-up) in the process.
COMPUTE_LOCK = threading.Lock()
# Forward passes too long for the event loop run here, one at a time.
_COMPUTE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compute")

BatchObserver = Callable[[int, int, float], None]  # (images, requests, seconds)

# Under load a flush waits for more requests until no new one came for this share of the
# queue delay (or the delay is over): closed-loop clients that just got their answers send
# again within a round trip, then arrivals pause.
_PAUSE = 0.2

# Weight of the newest pass in the running estimate of forward seconds per row.
_COST_SMOOTHING = 0.2


class BatcherClosed(Unavailable):
    """The batcher was closed (its model version is being unloaded)."""


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future[np.ndarray]

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


class Pending:
    """The eventual result of one `Batcher.submit` call (one or more chunks)."""

    __slots__ = ("_items", "_loop")

    def __init__(self, items: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        self._items = items
        self._loop = loop

    async def result(self, timeout: float | None) -> np.ndarray:
        """The output rows of all chunks, in order.

        Raises:
            DeadlineExceeded: not done within `timeout` seconds (queued chunks are dropped).
            Exception: whatever the forward pass raised.
        """
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(max(0.0, timeout), self._expire, timeout)
        try:
            parts = [await item.future for item in self._items]
        except BaseException:
            self.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def _expire(self, timeout: float) -> None:
        error = DeadlineExceeded(f"inference did not finish within the deadline ({timeout:.3f} s)")
        for item in self._items:
            if not item.future.done():
                item.future.set_exception(error)

    def cancel(self) -> None:
        """Drop the chunks not yet run (and retrieve errors of the others: nothing is logged
        as "never retrieved")."""
        for item in self._items:
            future = item.future
            if not future.cancel() and not future.cancelled():
                future.exception()


class Batcher:
    """Collect submitted (n, ...) arrays into batches and run `run` on them.

    Args:
        run: the forward function, (B, ...) -> (B, K); never called twice at once in the
            process (always under `COMPUTE_LOCK`).
        loop: the server's event loop; `submit` must be called on it.
        name: used in logs and messages.
        max_batch_size: most rows per call of `run`.
        max_queue_delay_s: longest wait for more requests under load, seconds.
        max_queue_size: most rows waiting; beyond it `submit` raises LimitExceeded.
        observe: called after each batch with (rows, requests, seconds of `run`).
        inline_max_s: passes expected to take less than this run on the loop thread (0: never).
        seconds_per_row: initial estimate of the forward cost (refined after every pass).
        clock: seconds for the waits under load (`max_queue_delay_s` and its pause); tests
            pass a clock they move by hand.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        *,
        loop: asyncio.AbstractEventLoop,
        name: str,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        observe: BatchObserver | None = None,
        inline_max_s: float = 0.001,
        seconds_per_row: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._run = run
        self._loop = loop
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.inline_max_s = inline_max_s
        self._observe = observe
        self._row_s = seconds_per_row
        self._clock = clock
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._closed = False
        self._busy = False  # a forward pass of this batcher runs
        self._flush_scheduled = False
        self._hold_until: float | None = None  # waiting for more requests until then
        self._last_arrival = 0.0  # clock() of the newest submission during a wait
        self._pause_s = max_queue_delay_s * _PAUSE
        self._last_requests = 1
        self.batches = 0
        self.rows = 0
        self.batch_stats: dict[int, list[int]] = {}  # rows -> [count, total ns]

    # --- client side (event loop) -------------------------------------------------------

    def submit(self, x: np.ndarray) -> Pending:
        """Queue rows `x` (n >= 1, ...) for inference; returns a handle for the result.

        Raises:
            BatcherClosed: the batcher is closed.
            LimitExceeded: the queue holds max_queue_size rows already.
        """
        if self._closed:
            raise BatcherClosed(f"model {self.name} is being unloaded")
        n = int(x.shape[0])
        if self._queued_rows + n > self.max_queue_size:
            raise LimitExceeded(
                f"inference queue of model {self.name} is full ({self._queued_rows} images "
                f"queued, limit max_queue_size={self.max_queue_size}); retry later"
            )
        step = self.max_batch_size
        create = self._loop.create_future
        if n <= step:
            items = [_Item(x, create())]
        else:
            items = [_Item(x[i : i + step], create()) for i in range(0, n, step)]
        self._queue.extend(items)
        self._queued_rows += n
        if self._hold_until is None:
            self._schedule_flush()
        elif self._queued_rows >= step:
            self._hold_until = None  # a full batch is waiting: go
            self._schedule_flush()
        else:
            self._last_arrival = self._clock()
        return Pending(items, self._loop)

    def close(self) -> None:
        """Refuse new work; queued work still runs. Callable from any thread."""
        try:
            self._loop.call_soon_threadsafe(self._close)
        except RuntimeError:  # the loop is closed: nothing can submit any more
            self._closed = True

    def _close(self) -> None:
        self._closed = True

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    # --- flushing (event loop) ----------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self._busy:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._busy:
            return
        self._drop_done()
        if not self._queue:
            self._hold_until = None
            return
        now = self._clock()
        if self._hold_until is not None:
            if now < self._hold_until and self._queued_rows < self.max_batch_size:
                return  # still waiting: _check_hold flushes later
            self._hold_until = None
        elif (
            self.max_queue_delay_s > 0
            and self._queued_rows < self.max_batch_size
            and (len(self._queue) > 1 or self._last_requests > 1)
        ):
            self._hold_until = now + self.max_queue_delay_s
            self._last_arrival = now
            self._loop.call_soon(self._check_hold)
            return
        batch = self._take()
        x = batch[0].x if len(batch) == 1 else np.concatenate([i.x for i in batch], axis=0)
        self._busy = True
        if self._row_s * len(x) < self.inline_max_s and COMPUTE_LOCK.acquire(blocking=False):
            try:
                out, seconds = self._forward(x)
            except BaseException as exc:
                self._failed(batch, exc)
            else:
                self._deliver(batch, out, seconds)
            return
        task = self._loop.run_in_executor(_COMPUTE, self._forward_locked, x)
        task.add_done_callback(lambda done: self._finished(batch, done))

    def _check_hold(self) -> None:
        """End the wait when its time is up or requests stopped arriving for a pause.

        Checked once per loop iteration (`call_soon`), not with `call_later`: the event loop's
        epoll timeouts have millisecond resolution, longer than the pauses that matter here.
        While waiting, the loop keeps serving RPCs; it only polls instead of sleeping.
        """
        if self._hold_until is None:
            return
        now = self._clock()
        if now < self._hold_until and now - self._last_arrival < self._pause_s:
            self._loop.call_soon(self._check_hold)
            return
        self._hold_until = 0.0  # the next flush runs what is queued
        self._schedule_flush()

    def _drop_done(self) -> None:
        """Forget queued items whose request is gone (cancelled or past its deadline)."""
        while self._queue and self._queue[0].future.done():
            self._queued_rows -= self._queue.popleft().size

    def _take(self) -> list[_Item]:
        batch = [self._queue.popleft()]
        rows = batch[0].size
        while self._queue and rows + self._queue[0].size <= self.max_batch_size:
            item = self._queue.popleft()
            if item.future.done():
                self._queued_rows -= item.size
                continue
            batch.append(item)
            rows += item.size
        self._queued_rows -= rows
        self._last_requests = len(batch)
        return batch

    def _finished(self, batch: list[_Item], done: asyncio.Future[tuple[np.ndarray, float]]) -> None:
        try:
            out, seconds = done.result()
        except BaseException as exc:
            self._failed(batch, exc)
        else:
            self._deliver(batch, out, seconds)

    def _deliver(self, batch: list[_Item], out: np.ndarray, seconds: float) -> None:
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(out[offset : offset + item.size])
            offset += item.size
        self._record(len(out), len(batch), seconds)
        self._next()

    def _failed(self, batch: list[_Item], exc: BaseException) -> None:
        log.error(
            "forward pass of %s failed (batch of %d requests)", self.name, len(batch), exc_info=exc
        )
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)
        self._next()

    def _next(self) -> None:
        self._busy = False
        if self._queue:
            self._schedule_flush()

    # --- the forward pass ---------------------------------------------------------------

    def _forward_locked(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """`run(x)` in the compute thread, waiting for `COMPUTE_LOCK`."""
        COMPUTE_LOCK.acquire()
        return self._forward(x)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """`run(x)` and its duration; the caller holds `COMPUTE_LOCK` (released here)."""
        # The two debug lines let a test see that a pass is running (tests/server/).
        log.debug("forward pass of %s started: %d rows", self.name, len(x))
        started = time.perf_counter()
        try:
            out = self._run(x)
        finally:
            COMPUTE_LOCK.release()
        seconds = time.perf_counter() - started
        log.debug("forward pass of %s done: %d rows in %.3f s", self.name, len(x), seconds)
        return out, seconds

    def _record(self, rows: int, requests: int, seconds: float) -> None:
        per_row = seconds / max(rows, 1)
        self._row_s += _COST_SMOOTHING * (per_row - self._row_s) if self._row_s else per_row
        self.batches += 1
        self.rows += rows
        stat = self.batch_stats.get(rows)
        if stat is None:
            stat = self.batch_stats[rows] = [0, 0]
        stat[0] += 1
        stat[1] += int(seconds * 1e9)
        if self._observe is not None:
            try:
                self._observe(rows, requests, seconds)
            except Exception:
                log.exception("batch observer failed")
