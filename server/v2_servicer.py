"""`inference.GRPCInferenceService` (Open Inference Protocol / KServe V2): a thin servicer.

Imported only by the server process (see `server.codec_v2` on protobuf pool clashes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from core.lifecycle import LOADED, UNLOADED
from proto.inference import grpc_service_pb2 as pb
from proto.inference import grpc_service_pb2_grpc as pb_grpc
from server import codec_v2, metrics
from server.codec import Limits
from server.decoding import PixelWork
from server.errors import (
    InvalidInput,
    ModelNotFound,
    ServerError,
    Unavailable,
    Unimplemented,
    map_errors,
    map_stream_errors,
    status_of,
)
from server.inference import InferenceService
from server.interceptors import InflightBytes, refusal
from server.lifecycle import LifecycleService, model_name
from server.model import ServedModel
from server.registry import READY, ModelRegistry, parse_version
from server.streaming import StreamPipeline

log = logging.getLogger(__name__)

SERVER_NAME = "cnn-service"
EXTENSIONS = ("classification", "model_repository", "statistics", "model_configuration")
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Translate V2 messages to the data plane and back.

    Args:
        inference: the shared data plane.
        limits: request limits.
        ready: returns True when the server is ready (repository scanned, not draining).
        server_version: reported by ServerMetadata.
        max_batch_size, max_queue_delay_us: reported by ModelConfig.
        max_stream_inflight: requests of one ModelStreamInfer stream handled at once.
        stopping: set when the server drains: streams stop reading, answer what they read
            and end.
        inflight: the interceptor's budget of request bytes; a streamed request's bytes are
            released once it is answered (None without the interceptor).
        lifecycle: load / unload of models (RepositoryModelLoad / Unload); None: those RPCs
            answer UNIMPLEMENTED.
    """

    def __init__(
        self,
        inference: InferenceService,
        limits: Limits,
        ready: Callable[[], bool],
        server_version: str,
        max_batch_size: int,
        max_queue_delay_us: int,
        max_stream_inflight: int = 64,
        stopping: asyncio.Event | None = None,
        inflight: InflightBytes | None = None,
        lifecycle: LifecycleService | None = None,
    ) -> None:
        self._inference = inference
        self._registry: ModelRegistry = inference.registry
        self._limits = limits
        self._ready = ready
        self._version = server_version
        self._max_batch_size = max_batch_size
        self._delay_us = max_queue_delay_us
        self._max_stream_inflight = max_stream_inflight
        self._stopping = stopping or asyncio.Event()
        self._inflight = inflight or InflightBytes(0)
        self._lifecycle = lifecycle

    @map_errors
    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext):
        return pb.ServerLiveResponse(live=True)

    @map_errors
    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext):
        return pb.ServerReadyResponse(ready=self._ready())

    @map_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ):
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self._version, extensions=list(EXTENSIONS)
        )

    @map_errors
    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext):
        version = parse_version(request.version, "version")
        try:
            self._registry.get(request.name, version)
        except (ModelNotFound, Unavailable):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self._ready())

    @map_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ):
        model = self._registry.get(request.name, parse_version(request.version, "version"))
        return codec_v2.encode_metadata(model, self._registry.versions(model.name))

    @map_errors
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.name, parse_version(request.version, "version"))
        return codec_v2.encode_config(model, self._max_batch_size, self._delay_us)

    @map_errors
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext):
        return await self._infer(request, context)

    async def _infer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        version = parse_version(request.model_version, "model_version")
        outputs: list[codec_v2.RequestedOutput] = []

        def images_for(model: ServedModel) -> PixelWork:
            outputs[:] = codec_v2.requested_outputs(request, model)
            return codec_v2.prepare_inputs(request, model, self._limits)

        result = await self._inference.predict(request.model_name, version, images_for, context)
        return codec_v2.encode_infer_response(request, result.model, result.probabilities, outputs)

    @map_stream_errors
    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Each request handled like ModelInfer, up to `max_stream_inflight` at once; answers
        in completion order, a failed request answered with `error_message`."""

        async def answer(item: Any) -> pb.ModelStreamInferResponse:
            return await self._stream_answer(item, context)

        pipeline: StreamPipeline[Any, pb.ModelStreamInferResponse] = StreamPipeline(
            answer, self._max_stream_inflight, self._stopping
        )
        async for response in pipeline.answers(request_iterator):
            yield response
        if pipeline.interrupted:
            raise Unavailable(
                f"server is shutting down: the stream's {pipeline.read} requests read were "
                "answered and no more are read; reconnect"
            )

    async def _stream_answer(
        self, item: Any, context: grpc.aio.ServicerContext
    ) -> pb.ModelStreamInferResponse:
        """One streamed request's answer; errors become `error_message` (never raised)."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            refused = refusal(item, STREAM_METHOD, self._inflight)
            if refused is not None:  # not parsed: its id is unknown
                code, message = refused
                return pb.ModelStreamInferResponse(error_message=f"{code.name}: {message}")
            try:
                return pb.ModelStreamInferResponse(infer_response=await self._infer(item, context))
            except Exception as exc:
                if not isinstance(exc, ServerError):
                    log.exception("unhandled error in ModelStreamInfer")
                code, message = status_of(exc)
                return pb.ModelStreamInferResponse(
                    error_message=f"{code.name}: {message}",
                    infer_response=pb.ModelInferResponse(
                        model_name=item.model_name, model_version=item.model_version, id=item.id
                    ),
                )
        except asyncio.CancelledError:  # the stream was cancelled
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._inflight.release(item)
            metrics.observe_request(STREAM_METHOD, code.name, time.perf_counter() - started)

    @map_errors
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ):
        version = parse_version(request.version, "version")
        if request.name:
            versions = [version] if version else self._registry.versions(request.name)
            if not versions:
                self._registry.get(request.name)  # raises ModelNotFound naming the models
            models = [self._registry.get(request.name, v) for v in versions]
        else:
            models = self._registry.loaded()
        response = pb.ModelStatisticsResponse()
        for model in models:
            stats, batcher = model.stats, model.batcher
            entry = response.model_stats.add(
                name=model.name,
                version=str(model.version),
                last_inference=stats.last_inference_ms,
                inference_count=batcher.rows,
                execution_count=batcher.batches,
            )
            entry.inference_stats.success.count = stats.success_count
            entry.inference_stats.success.ns = stats.success_ns
            entry.inference_stats.fail.count = stats.fail_count
            entry.inference_stats.fail.ns = stats.fail_ns
            for size, (count, ns) in sorted(dict(batcher.batch_stats).items()):
                batch = entry.batch_stats.add(batch_size=size)
                batch.compute_infer.count = count
                batch.compute_infer.ns = ns
        return response

    @map_errors
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ):
        response = pb.RepositoryIndexResponse()
        for item in self._registry.index():
            if request.ready and item.state != READY:
                continue
            response.models.add(
                name=item.name, version=str(item.version), state=item.state, reason=item.reason
            )
        return response

    @map_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ):
        lifecycle = self._lifecycle_service()
        name = model_name(request.model_name, "model_name")
        for key in request.parameters:
            raise InvalidInput(
                f"parameters[{key!r}]: this server loads models from its repository only (no "
                "config or file override); publish a version instead"
            )
        await lifecycle.set_state(name, LOADED, context.time_remaining())
        return pb.RepositoryModelLoadResponse()

    @map_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ):
        lifecycle = self._lifecycle_service()
        name = model_name(request.model_name, "model_name")
        for key in request.parameters:
            if key != "unload_dependents":
                raise InvalidInput(
                    f"parameters[{key!r}]: unknown parameter (only unload_dependents is taken)"
                )
        await lifecycle.set_state(name, UNLOADED, context.time_remaining())
        return pb.RepositoryModelUnloadResponse()

    def _lifecycle_service(self) -> LifecycleService:
        if self._lifecycle is None:
            raise Unimplemented("this server does not load or unload models on request")
        return self._lifecycle
