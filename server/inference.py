"""The data plane shared by both APIs: resolve a model version, batch, wait, time it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np

from server import metrics
from server.batcher import BatcherClosed, Pending
from server.model import ServedModel
from server.registry import ModelRegistry

# Decodes the request's images for the resolved model: ServedModel -> (N, C, H, W) float32.
ImagesFor = Callable[[ServedModel], np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """Probabilities (N, K) float32 and the model version that computed them."""

    model: ServedModel
    probabilities: np.ndarray


class InferenceService:
    """Runs pixel-range images through the model's batcher within the request's deadline."""

    def __init__(self, registry: ModelRegistry, request_timeout_s: float) -> None:
        self.registry = registry
        self._timeout = request_timeout_s

    def timeout_for(self, context: grpc.aio.ServicerContext | None) -> float:
        """Seconds the request may wait: its deadline, capped by the server's timeout."""
        remaining = context.time_remaining() if context is not None else None
        if remaining is None:
            return self._timeout
        return max(0.0, min(float(remaining), self._timeout))

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

        def submit(model: ServedModel) -> tuple[ServedModel, Pending]:
            try:
                return model, model.submit(images_for(model))
            except BatcherClosed:
                raise
            except Exception:
                model.stats.record(False, time.perf_counter() - started)
                raise

        model, pending = self.registry.run(name, version, submit)
        try:
            probabilities = await pending.result(self.timeout_for(context))
        except BaseException:
            model.stats.record(False, time.perf_counter() - started)
            raise
        seconds = time.perf_counter() - started
        model.stats.record(True, seconds)
        metrics.observe_inference(model.name, len(probabilities), seconds)
        return Prediction(model, probabilities)
