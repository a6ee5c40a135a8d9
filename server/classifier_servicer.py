"""`cnn.v1.Classifier`: a thin servicer over the data plane."""

from __future__ import annotations

import time

import grpc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from server import codec, explain_codec, explainer, lifecycle_codec, metrics, rate_limit
from server.decoding import PixelWork
from server.errors import InvalidInput, LimitExceeded, WrongTask, map_errors
from server.explainer import ExplainLimits
from server.inference import InferenceService
from server.model import ServedModel
from server.rate_limit import RateLimiter
from server.registry import ModelRegistry


def _version(value: int, field: str = "version") -> int | None:
    if value < 0:
        raise InvalidInput(f"{field} is {value}; use 0 for the newest version or a version >= 1")
    return value or None


class ClassifierServicer(pb_grpc.ClassifierServicer):
    """Translate `cnn.v1` messages to the data plane and back."""

    def __init__(
        self,
        inference: InferenceService,
        limits: codec.Limits,
        explain_limits: ExplainLimits | None = None,
        explain_limiter: RateLimiter | None = None,
    ) -> None:
        self._inference = inference
        self._registry: ModelRegistry = inference.registry
        self._limits = limits
        self._explain_limits = explain_limits or ExplainLimits.of(16, 8 << 20, 16 << 20)
        self._explains = explain_limiter or RateLimiter(0, 1)

    @map_errors
    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext):
        version = _version(request.version)

        def images_for(model: ServedModel) -> PixelWork:
            if model.is_regression:  # checked before any image is decoded
                raise WrongTask(
                    f"model {model.name!r} is a regression model; use ModelInfer (KServe V2)"
                )
            return codec.prepare_images(request, model, self._limits)

        result = await self._inference.predict(request.model, version, images_for, context)
        return codec.encode_classify(result.model, result.probabilities, request.top_k)

    @map_errors
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext):
        response = pb.ListModelsResponse()
        for name in self._registry.models():
            response.models.append(lifecycle_codec.encode_summary(self._registry, name))
        return response

    @map_errors
    async def GetModel(self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model, _version(request.version))
        response = codec.encode_model(model, self._registry.versions(model.name))
        response.policy.CopyFrom(lifecycle_codec.encode_policy(self._registry.policy(model.name)))
        response.version_states.extend(
            lifecycle_codec.encode_version_states(self._registry, model.name)
        )
        return response

    @map_errors
    async def Explain(self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        # Checked first: a refused call costs no model lookup, decode or backward pass.
        refused = rate_limit.refusal(
            self._explains,
            context.peer(),
            "Explain calls",
            "CNN_EXPLAIN_BURST, CNN_EXPLAIN_RATE_PER_MIN",
        )
        if refused:
            raise LimitExceeded(refused)
        model = self._registry.get(request.model, _version(request.version))
        limits = self._explain_limits
        ask, work = explain_codec.decode_explain(request, model, self._limits, limits)
        timeout = self._inference.timeout_for(context)
        pixels = await self._inference.decode(work, timeout)
        left = max(0.0, timeout - (time.perf_counter() - started))
        result = await explainer.explain(model, pixels, ask, left)
        response = explain_codec.encode_explain(result, request.top_k, limits)
        metrics.observe_explain(model.name, time.perf_counter() - started)
        return response
