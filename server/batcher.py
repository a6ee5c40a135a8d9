"""Dynamic batcher: concurrent requests of one model version share one forward pass.

Each `Batcher` owns one thread that runs queued batches; at most one forward pass of a batcher
runs at a time, and every forward pass in the process holds `COMPUTE_LOCK`: Numba's parallel
kernels are then never entered from two threads at once, whatever the number of loaded models
and whichever thread (batcher or idle fast path) runs the pass.

Batching policy (adaptive, so a lone client pays no queueing delay):
- idle fast path: when this batcher's queue is empty, no forward pass of it is running and
  `COMPUTE_LOCK` is free, `submit` runs the forward pass directly in the caller's thread
  (still holding `COMPUTE_LOCK`), saving two thread hand-offs; requests that arrive meanwhile
  queue up and are batched by the thread as soon as the inline pass ends;
- the thread takes the oldest request and, without waiting, every queued request that fits
  into `max_batch_size` images;
- only when there is contention (other requests were already queued, or the previous batch
  had more than one request) does it wait up to `max_queue_delay_s` for more to arrive;
- requests with more images than `max_batch_size` are split into chunks at submission.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from server.errors import DeadlineExceeded, LimitExceeded, Unavailable

log = logging.getLogger(__name__)

# Held around every forward pass (and model warm-up) in the process.
COMPUTE_LOCK = threading.Lock()

BatchObserver = Callable[[int, int, float], None]  # (images, requests, seconds)


class BatcherClosed(Unavailable):
    """The batcher was closed (its model version is being unloaded)."""


@dataclass
class _Item:
    x: np.ndarray
    future: Future[np.ndarray] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


class Pending:
    """The eventual result of one `Batcher.submit` call (one or more chunks, or a value)."""

    __slots__ = ("_items", "_value")

    def __init__(self, items: list[_Item], value: np.ndarray | None = None) -> None:
        self._items = items
        self._value = value

    def result(self, timeout: float | None) -> np.ndarray:
        """Wait for the output rows of all chunks, in order.

        Raises:
            DeadlineExceeded: not done within `timeout` seconds (queued chunks are cancelled).
            Exception: whatever the forward pass raised.
        """
        if self._value is not None:
            return self._value
        deadline = None if timeout is None else time.monotonic() + timeout
        parts = []
        for item in self._items:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                parts.append(item.future.result(remaining))
            except FutureTimeout:
                self.cancel()
                raise DeadlineExceeded(
                    f"inference did not finish within the deadline ({timeout:.3f} s)"
                ) from None
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def cancel(self) -> None:
        for item in self._items:
            item.future.cancel()


class Batcher:
    """Collect submitted (n, ...) arrays into batches and run `run` on them in one thread.

    Args:
        run: the forward function, (B, ...) -> (B, K); never called twice at once, always
            under `COMPUTE_LOCK`, from the batcher thread or (idle fast path) a submitter.
        name: used for the thread name and logs.
        max_batch_size: most rows per call of `run`.
        max_queue_delay_s: longest wait for more requests under contention, seconds.
        max_queue_size: most rows waiting; beyond it `submit` raises LimitExceeded.
        observe: called after each batch with (rows, requests, seconds of `run`).
        inline_when_idle: allow the idle fast path (`run` in the submitting thread); without
            it every pass runs in the batcher thread.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        *,
        name: str,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        observe: BatchObserver | None = None,
        inline_when_idle: bool = True,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._run = run
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self._observe = observe
        self._inline = inline_when_idle
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._busy = False  # a forward pass of this batcher runs (inline or in the thread)
        self._last_requests = 1
        self.batches = 0
        self.rows = 0
        self.batch_stats: dict[int, list[int]] = {}  # rows -> [count, total ns]
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    # --- client side ------------------------------------------------------------------------

    def submit(self, x: np.ndarray) -> Pending:
        """Queue rows `x` (n >= 1, ...) for inference; returns a handle for the result.

        When the batcher is idle (nothing queued, no pass running, `COMPUTE_LOCK` free) and
        `x` fits into one batch, the forward pass runs right here, in the caller's thread, and
        the returned handle already holds the result.

        Raises:
            BatcherClosed: the batcher is closed.
            LimitExceeded: the queue holds max_queue_size rows already.
            Exception: whatever an inline forward pass raised.
        """
        n = int(x.shape[0])
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"model {self.name} is being unloaded")
            inline = (
                self._inline
                and n <= self.max_batch_size
                and not self._busy
                and not self._queue
                and COMPUTE_LOCK.acquire(blocking=False)
            )
            if inline:
                self._busy = True
            else:
                if self._queued_rows + n > self.max_queue_size:
                    raise LimitExceeded(
                        f"inference queue of model {self.name} is full ({self._queued_rows} "
                        f"images queued, limit max_queue_size={self.max_queue_size}); retry later"
                    )
                step = self.max_batch_size
                items = [_Item(x[i : i + step]) for i in range(0, n, step)]
                self._queue.extend(items)
                self._queued_rows += n
                self._cond.notify()
                return Pending(items)
        try:
            out = self._forward(x, 1)
        except BaseException:
            log.exception("forward pass of %s failed (inline, %d rows)", self.name, n)
            raise
        finally:
            with self._cond:
                self._busy = False
                self._last_requests = 1
                if self._queue:
                    self._cond.notify()
        return Pending([], out)

    def close(self, timeout: float | None = 10.0) -> None:
        """Refuse new work, finish what is queued, stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    # --- batcher thread ---------------------------------------------------------------------

    def _take(self) -> list[_Item] | None:
        """Block for the next batch; None once closed and drained."""
        with self._cond:
            while self._busy or not self._queue:
                if self._closed and not self._busy and not self._queue:
                    return None
                self._cond.wait()
            self._busy = True
            batch = [self._queue.popleft()]
            rows = batch[0].size
            contended = bool(self._queue) or self._last_requests > 1
            while self._queue and rows + self._queue[0].size <= self.max_batch_size:
                item = self._queue.popleft()
                batch.append(item)
                rows += item.size
            if contended and self.max_queue_delay_s > 0 and rows < self.max_batch_size:
                deadline = time.perf_counter() + self.max_queue_delay_s
                while rows < self.max_batch_size and not self._closed:
                    if self._queue:
                        if rows + self._queue[0].size > self.max_batch_size:
                            break
                        item = self._queue.popleft()
                        batch.append(item)
                        rows += item.size
                        continue
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            self._queued_rows -= rows
            self._last_requests = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            finally:
                with self._cond:
                    self._busy = False

    def _run_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        x = live[0].x if len(live) == 1 else np.concatenate([i.x for i in live], axis=0)
        COMPUTE_LOCK.acquire()
        try:
            out = self._forward(x, len(live))
        except BaseException as exc:  # delivered to every waiting request
            log.exception("forward pass of %s failed (batch of %d)", self.name, len(x))
            for item in live:
                item.future.set_exception(exc)
            return
        offset = 0
        for item in live:
            item.future.set_result(out[offset : offset + item.size])
            offset += item.size

    def _forward(self, x: np.ndarray, requests: int) -> np.ndarray:
        """`run(x)`; the caller holds `COMPUTE_LOCK` (released here) and the busy flag."""
        started = time.perf_counter()
        try:
            out = self._run(x)
        finally:
            COMPUTE_LOCK.release()
        elapsed = time.perf_counter() - started
        rows = len(x)
        self.batches += 1
        self.rows += rows
        stat = self.batch_stats.get(rows)
        if stat is None:
            stat = self.batch_stats[rows] = [0, 0]
        stat[0] += 1
        stat[1] += int(elapsed * 1e9)
        if self._observe is not None:
            try:
                self._observe(rows, requests, elapsed)
            except Exception:
                log.exception("batch observer failed")
        return out
