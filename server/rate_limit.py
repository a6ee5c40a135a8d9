"""Per-caller rate limits: a token bucket per caller, a bounded number of callers remembered.

Used for `Training.Submit` (every job costs a worker minutes, so one caller must not be able to
fill the queue in a burst) and `Classifier.Explain` (a backward pass and pictures per call). A
caller is the host part of the gRPC peer address (behind a load balancer every caller is the
balancer: then set the rate for all of them together, or limit at the balancer). Runs on the
event loop only (no locking).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`per_minute` requests per caller on average, up to `burst` at once.

    Args:
        per_minute: the refill rate, requests per minute (0 = no limit).
        burst: the bucket size: how many requests a caller may make at once.
        max_callers: callers remembered; the least recently seen is forgotten first (a
            forgotten caller starts again with a full bucket, which only errs on the kind side).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 0 or burst < 1 or max_callers < 1:
            raise ValueError(
                f"need per_minute >= 0, burst >= 1 and max_callers >= 1, got {per_minute}, "
                f"{burst}, {max_callers}"
            )
        self.per_minute = per_minute
        self.burst = burst
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, caller: str) -> float:
        """Take one token for `caller`: 0.0 when granted, else seconds until one is free."""
        if self.per_minute == 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.pop(caller, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            refill = (now - bucket.updated) * self.per_minute / 60.0
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.updated = now
        self._buckets[caller] = bucket  # most recently seen last
        while len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) * 60.0 / self.per_minute


def caller_of(peer: str) -> str:
    """The host of a gRPC peer string (``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``)."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = address.rpartition(":")[0]
        return f"{kind}:{host or address}"
    return peer  # unix sockets and the like: the whole string


def refusal(limiter: RateLimiter, peer: str, calls: str, settings: str) -> str | None:
    """Take a token for the caller at `peer`: None when granted, else the message of the
    RESOURCE_EXHAUSTED answer (`calls`: what is limited, `settings`: the variables that set it)."""
    wait_s = limiter.acquire(caller_of(peer))
    if wait_s <= 0:
        return None
    return (
        f"too many {calls} from this client: at most {limiter.burst} at once and "
        f"{limiter.per_minute:g} per minute ({settings}); retry in {wait_s:.1f} s"
    )
