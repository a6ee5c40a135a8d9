"""Polling with a deadline, for conditions that other processes, threads or tasks make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any], timeout: float, *, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate()` until truthy and return its value; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


async def wait_for_on_loop(
    predicate: Callable[[], Any], timeout: float, *, interval: float = 0.001, what: str = ""
) -> Any:
    """`wait_for` inside a coroutine: the event loop keeps running other tasks between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(interval)
