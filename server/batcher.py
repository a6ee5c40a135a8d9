"""Dynamic batcher: concurrent requests of one model version share one forward pass.

Each `Batcher` owns one thread, the only thread that calls its `run` function, and every
forward pass in the process additionally holds `COMPUTE_LOCK`: Numba's parallel kernels are
then never entered from two threads at once (the workqueue threading layer is not
thread-safe), whatever the number of loaded models.

Batching policy (adaptive, so a lone client pays no queueing delay):
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
    """The eventual result of one `Batcher.submit` call (one or more chunks)."""

    def __init__(self, items: list[_Item]) -> None:
        self._items = items

    def result(self, timeout: float | None) -> np.ndarray:
        """Wait for the output rows of all chunks, in order.

        Raises:
            DeadlineExceeded: not done within `timeout` seconds (queued chunks are cancelled).
            Exception: whatever the forward pass raised.
        """
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
        run: the forward function, (B, ...) -> (B, K); called only from this batcher's thread.
        name: used for the thread name and logs.
        max_batch_size: most rows per call of `run`.
        max_queue_delay_s: longest wait for more requests under contention, seconds.
        max_queue_size: most rows waiting; beyond it `submit` raises LimitExceeded.
        observe: called after each batch with (rows, requests, seconds of `run`).
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
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._run = run
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self._observe = observe
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._last_requests = 1
        self.batches = 0
        self.rows = 0
        self.batch_stats: dict[int, list[int]] = {}  # rows -> [count, total ns]
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    # --- client side ------------------------------------------------------------------------

    def submit(self, x: np.ndarray) -> Pending:
        """Queue rows `x` (n >= 1, ...) for inference; returns a handle for the result.

        Raises:
            BatcherClosed: the batcher is closed.
            LimitExceeded: the queue holds max_queue_size rows already.
        """
        n = int(x.shape[0])
        items = [_Item(x[i : i + self.max_batch_size]) for i in range(0, n, self.max_batch_size)]
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"model {self.name} is being unloaded")
            if self._queued_rows + n > self.max_queue_size:
                raise LimitExceeded(
                    f"inference queue of model {self.name} is full ({self._queued_rows} images "
                    f"queued, limit max_queue_size={self.max_queue_size}); retry later"
                )
            self._queue.extend(items)
            self._queued_rows += n
            self._cond.notify()
        return Pending(items)

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
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
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
            live = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if not live:
                continue
            x = live[0].x if len(live) == 1 else np.concatenate([i.x for i in live], axis=0)
            started = time.perf_counter()
            try:
                with COMPUTE_LOCK:
                    out = self._run(x)
            except BaseException as exc:  # delivered to every waiting request
                log.exception("forward pass of %s failed (batch of %d)", self.name, len(x))
                for item in live:
                    item.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - started
            self.batches += 1
            self.rows += len(x)
            stat = self.batch_stats.setdefault(len(x), [0, 0])
            stat[0] += 1
            stat[1] += int(elapsed * 1e9)
            offset = 0
            for item in live:
                item.future.set_result(out[offset : offset + item.size])
                offset += item.size
            if self._observe is not None:
                try:
                    self._observe(len(x), len(live), elapsed)
                except Exception:
                    log.exception("batch observer failed")
