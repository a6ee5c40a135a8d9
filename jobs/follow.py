"""Following a job until it ends: one mechanism for every caller and transport.

`Follower` is the decision part, a state machine without I/O or clocks of its own: given each
polled `JobView` it says what to emit, and given each failed poll how long to wait or that it is
time to give up. Two thin drivers poll with it: `follow` (blocking: the CLI over Redis, the
client over gRPC) and `afollow` (asyncio: the server's Watch, which must not hold a thread while
it waits between polls).

What is emitted:

- each finished epoch not emitted yet, oldest first, as the job looked at that epoch's end
  (running, that epoch's figures as progress in phase "evaluating", no result yet), so a
  follower that polls less often than epochs end, or joins late, still sees every epoch;
- then the current state, unless it equals the last view emitted (only changes are emitted);
- the stream ends after a view with a terminal status.

Outages: a poll that fails with a transient error (`QueueUnavailable` by default; a gRPC
client adds its own) is retried with exponential backoff, from the poll interval up to
`max_backoff_s`; once failures have lasted `outage_limit_s` the last error is raised. A job that
disappears after it was seen (Redis restarted without persistence; the worker writes it back)
is ridden out the same way; an id never seen is reported at once (`JobNotFound`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from jobs.errors import JobNotFound, QueueUnavailable
from jobs.meta import Stage
from jobs.status import JobStatus
from jobs.views import JobView

DEFAULT_POLL_INTERVAL_S = 0.5
DEFAULT_OUTAGE_LIMIT_S = 30.0
DEFAULT_MAX_BACKOFF_S = 5.0


class Follower:
    """Decides what a follower of one job emits, and how it rides out failed polls.

    Args:
        poll_interval_s: pause between polls while the job is in progress.
        outage_limit_s: how long polls may keep failing before the error is raised.
        max_backoff_s: longest pause between polls during an outage.
    """

    def __init__(
        self,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        if outage_limit_s < 0:
            raise ValueError(f"outage_limit_s must be >= 0, got {outage_limit_s}")
        self.poll_interval_s = poll_interval_s
        self.outage_limit_s = outage_limit_s
        self.max_backoff_s = max(max_backoff_s, poll_interval_s)
        self.done = False
        self._last: JobView | None = None
        self._last_epoch = 0
        self._seen = False
        self._failing_since: float | None = None
        self._failures = 0

    def observe(self, view: JobView) -> list[JobView]:
        """A poll returned `view`: the views to emit, oldest first (possibly none)."""
        self._seen = True
        self._failing_since = None
        self._failures = 0
        emitted: list[JobView] = []
        for index, snapshot in enumerate(view.epochs):
            if snapshot.epoch <= self._last_epoch:
                continue
            self._last_epoch = snapshot.epoch
            at_epoch_end = dataclasses.replace(
                view,
                status=JobStatus.RUNNING,
                stage=Stage.TRAINING.value,
                progress=snapshot.as_progress(),
                epochs=view.epochs[: index + 1],
                error=None,
                model_version=None,
                metrics={},
                ended_at=None,
            )
            emitted.extend(self._changed(at_epoch_end))
        emitted.extend(self._changed(view))
        if view.terminal:
            self.done = True
        return emitted

    def _changed(self, view: JobView) -> list[JobView]:
        # Epoch lists grow with every replayed epoch: compare what the view says besides them.
        if self._last is not None and _without_epochs(self._last) == _without_epochs(view):
            return []
        self._last = view
        return [view]

    def failed(self, error: BaseException, now: float) -> float:
        """A poll failed with `error` at `now` (monotonic s): the pause before the next poll.

        Raises:
            error: the outage has lasted `outage_limit_s`, or the job was never seen.
        """
        if isinstance(error, JobNotFound) and not self._seen:
            raise error
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.outage_limit_s:
            raise error
        delay = min(self.poll_interval_s * 2**self._failures, self.max_backoff_s)
        self._failures += 1
        return delay


def _without_epochs(view: JobView) -> JobView:
    return dataclasses.replace(view, epochs=())


def follow(
    get: Callable[[], JobView],
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
    transient: tuple[type[BaseException], ...] = (QueueUnavailable,),
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[JobView]:
    """Poll `get()` until the job ends, yielding what `Follower` emits.

    Args:
        get: one poll (raises `JobNotFound`, or one of `transient` while unreachable).
        transient: the errors that mean "try again" (an outage).

    Raises:
        JobNotFound: the job is unknown, or stayed gone for `outage_limit_s`.
        the transient error: polls kept failing for `outage_limit_s`.
    """
    follower = Follower(poll_interval_s, outage_limit_s)
    retry: tuple[type[BaseException], ...] = (*transient, JobNotFound)
    while True:
        try:
            view = get()
        except retry as exc:
            sleep(follower.failed(exc, clock()))
            continue
        yield from follower.observe(view)
        if follower.done:
            return
        sleep(follower.poll_interval_s)


async def afollow(
    get: Callable[[], Awaitable[JobView]],
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
    transient: tuple[type[BaseException], ...] = (QueueUnavailable,),
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[JobView]:
    """`follow` for asyncio: awaits `get()` and `asyncio.sleep` (no thread held between polls).

    `get` may run the blocking Redis call in an executor, e.g.
    ``lambda: loop.run_in_executor(pool, queue.get, job_id)``.
    """
    follower = Follower(poll_interval_s, outage_limit_s)
    retry: tuple[type[BaseException], ...] = (*transient, JobNotFound)
    while True:
        try:
            view = await get()
        except retry as exc:
            await asyncio.sleep(follower.failed(exc, clock()))
            continue
        for emitted in follower.observe(view):
            yield emitted
        if follower.done:
            return
        await asyncio.sleep(follower.poll_interval_s)
