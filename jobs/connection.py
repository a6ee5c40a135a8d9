"""Redis connections that ride out a Redis restart (reconnect with bounded exponential backoff)."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

#: Attempts per command before a ConnectionError reaches the caller: with a 0.1 s base doubling up
#: to 2 s per attempt this covers an outage of roughly 30 s.
WORKER_RETRIES = 18
#: Queue operations (`jobs.queue.JobQueue`: the server, the CLI) give up sooner: a caller
#: wants to hear that Redis is down, and followers ride out outages themselves (`jobs.follow`).
QUEUE_RETRIES = 1


def connect(
    url: str,
    *,
    retries: int = WORKER_RETRIES,
    connect_timeout: float = 5.0,
    socket_timeout: float | None = None,
) -> redis.Redis:
    """A client for `url` that retries connection errors and timeouts with backoff.

    The client holds a connection pool and is thread-safe: share one per process.
    No connection is made until the first command.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        retries: attempts after the first failure of a command.
        connect_timeout: seconds to establish a connection.
        socket_timeout: seconds to wait for a reply (None: no limit, what a worker blocked in
            a dequeue needs).
    """
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
