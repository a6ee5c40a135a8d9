"""The data plane shared by both APIs: resolve a model version, batch, wait, time it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np

from server import metrics
from server.batcher import BatcherClosed
from server.decoding import PixelWork, PixelWorkers
from server.model import ServedModel
from server.registry import ModelRegistry

# Checks the request for the resolved model and returns the pixel work still to do, which
# produces (N, C, H, W) float32 (see `server.decoding`).
ImagesFor = Callable[[ServedModel], PixelWork]

# Attempts to resolve a version: a hot swap can unload the resolved one before submission.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Prediction:
    """Probabilities (N, K) float32 (a regression model: predictions (N, K) in target units)
    and the model version that computed them."""

    model: ServedModel
    probabilities: np.ndarray


class InferenceService:
    """Runs pixel-range images through the model's batcher within the request's deadline.

    Args:
        registry: the loaded model versions.
        request_timeout_s: wait limit of requests without a deadline.
        workers: where pixel work too long for the event loop runs (image decoding).
    """

    def __init__(
        self, registry: ModelRegistry, request_timeout_s: float, workers: PixelWorkers
    ) -> None:
        self.registry = registry
        self._timeout = request_timeout_s
        self._workers = workers

    def timeout_for(self, context: grpc.aio.ServicerContext | None) -> float:
        """Seconds the request may wait: its deadline, capped by the server's timeout."""
        remaining = context.time_remaining() if context is not None else None
        if remaining is None:
            return self._timeout
        return max(0.0, min(float(remaining), self._timeout))

    async def decode(self, work: PixelWork, timeout: float) -> np.ndarray:
        """Do a request's pixel work (inline or in a decode thread, see `server.decoding`).

        Raises:
            InvalidInput, DeadlineExceeded: from the work or the wait.
        """
        return await self._workers.run(work, timeout)

    async def predict(
        self,
        name: str,
        version: int | None,
        images_for: ImagesFor,
        context: grpc.aio.ServicerContext | None,
    ) -> Prediction:
        """Resolve `name`/`version`, decode images with `images_for(model)`, predict.

        A version unloaded between resolution and submission is retried on the new default
        (unless the client pinned a version), so hot swaps never fail requests.

        Raises:
            InvalidInput, ModelNotFound, Unavailable, LimitExceeded, DeadlineExceeded.
        """
        started = time.perf_counter()
        timeout = self.timeout_for(context)
        for attempt in range(_ATTEMPTS):
            model = self.registry.get(name, version)
            try:
                work = images_for(model)
                left = timeout - (time.perf_counter() - started)
                pending = model.submit(await self._workers.run(work, left))
            except BatcherClosed:
                if version or attempt == _ATTEMPTS - 1:
                    raise
                continue
            except Exception:
                model.stats.record(False, time.perf_counter() - started)
                raise
            break
        try:
            left = timeout - (time.perf_counter() - started)
            probabilities = await pending.result(max(0.0, left))
        except BaseException:
            model.stats.record(False, time.perf_counter() - started)
            raise
        seconds = time.perf_counter() - started
        model.stats.record(True, seconds)
        metrics.observe_inference(model.name, len(probabilities), seconds)
        return Prediction(model, probabilities)
