"""A request's pixel work (image decoding, large tensor checks) kept off the event loop.

Every RPC of the `grpc.aio` server runs on one event loop, so CPU work done in a handler
stalls every other RPC, health checks included: a 4096x4096 PNG of 16 KB takes about 0.1 s to
decode. The codecs therefore split a request in two:
- on the loop, everything cheap: the message's structure, tensor shapes and byte counts, the
  encoded images' headers, and the limits those allow to check before any work is done;
- a `PixelWork`: the pixels themselves (decode, convert, resize, value checks), with an
  estimate of its CPU time from the headers and byte counts.

`PixelWorkers.run` does a `PixelWork` inline when the estimate is below `INLINE_MAX_S` (a lone
client's small request pays no thread hand-off) and otherwise in one of a few decode threads:
Pillow and numpy release the GIL while they work, so the loop keeps serving meanwhile. At most
`threads` requests are decoded at once, each one image at a time, so the memory held by decoded
pixels stays bounded however many requests wait; a waiting request gives up at its deadline,
and work already started stops between two images once the deadline passed or the request
was cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from server.errors import DeadlineExceeded

#: Called between two units of work (images); raises DeadlineExceeded when the request's time
#: is up or the request was cancelled.
Check = Callable[[], None]

# Work expected to take up to this long runs on the event loop: a thread hand-off costs
# about 0.05 ms, and the loop may be held this long without other RPCs noticing.
INLINE_MAX_S = 0.0005
# Measured with Pillow 13 (one core): decoding, converting and resizing a PNG/JPEG costs
# about 50 us per image plus 5-20 ns per pixel, whatever the model's input size.
_DECODE_S_PER_IMAGE = 50e-6
_DECODE_S_PER_PIXEL = 10e-9
# Value checks and the float32 cast of raw tensors: 0.03 (float32) to 0.12 (uint8) ns per byte.
_CHECK_S_PER_BYTE = 0.15e-9


def estimate_seconds(*, images: int = 0, pixels: int = 0, tensor_bytes: int = 0) -> float:
    """Expected CPU seconds to decode `images` encoded images of `pixels` pixels in all (as
    their headers say) and to check `tensor_bytes` bytes of raw tensors."""
    return (
        images * _DECODE_S_PER_IMAGE
        + pixels * _DECODE_S_PER_PIXEL
        + tensor_bytes * _CHECK_S_PER_BYTE
    )


def no_check() -> None:
    """A `Check` for work done inline: it cannot be interrupted anyway."""


@dataclass(frozen=True, slots=True)
class PixelWork:
    """The CPU work that turns a validated request into (N, C, H, W) float32 pixels.

    Attributes:
        seconds: its expected duration (`estimate_seconds`).
        produce: does it; calls its `Check` argument between images; raises InvalidInput
            (undecodable image, out-of-range values) naming the field.
    """

    seconds: float
    produce: Callable[[Check], np.ndarray]


class PixelWorkers:
    """Runs `PixelWork` inline when it is short, else in one of `threads` decode threads.

    Args:
        threads: decode threads, and requests decoded at once (each one image at a time).
        inline_max_s: work expected to take at most this long runs on the event loop.
    """

    def __init__(self, threads: int, inline_max_s: float = INLINE_MAX_S) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.inline_max_s = inline_max_s
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        # Created lazily: it belongs to the loop that first awaits it (the server's).
        self._slots: asyncio.Semaphore | None = None

    async def run(self, work: PixelWork, timeout: float) -> np.ndarray:
        """`work.produce`'s result; off the loop unless `work` is short.

        Raises:
            DeadlineExceeded: `timeout` seconds passed before the work was done.
            InvalidInput: whatever `work.produce` raised.
        """
        if work.seconds <= self.inline_max_s:
            return work.produce(no_check)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.threads)
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise DeadlineExceeded(
                f"no image decoder became free within the deadline ({timeout:.3f} s; "
                f"{self.threads} decode threads, CNN_DECODE_THREADS)"
            ) from None
        cancelled = threading.Event()

        def check() -> None:
            if cancelled.is_set():
                raise DeadlineExceeded("the request was cancelled while its images were decoded")
            if time.monotonic() > deadline:
                raise DeadlineExceeded(
                    f"decoding the images did not finish within the deadline ({timeout:.3f} s)"
                )

        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, work.produce, check)
        finally:
            cancelled.set()  # a cancelled request's thread stops at its next image
            self._slots.release()

    def close(self) -> None:
        """Stop the threads once the work they have is done; queued work is dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
