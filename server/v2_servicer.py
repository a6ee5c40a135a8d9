"""`inference.GRPCInferenceService` (Open Inference Protocol / KServe V2): a thin servicer.

Imported only by the server process (see `server.codec_v2` on protobuf pool clashes).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from proto.inference import grpc_service_pb2 as pb
from proto.inference import grpc_service_pb2_grpc as pb_grpc
from server import codec_v2
from server.codec import Limits
from server.decoding import PixelWork
from server.errors import ModelNotFound, Unavailable, map_errors
from server.inference import InferenceService
from server.model import ServedModel
from server.registry import READY, ModelRegistry, parse_version

SERVER_NAME = "cnn-service"
EXTENSIONS = ("classification", "model_repository", "statistics", "model_configuration")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Translate V2 messages to the data plane and back.

    Args:
        inference: the shared data plane.
        limits: request limits.
        ready: returns True when the server is ready (repository scanned, not draining).
        server_version: reported by ServerMetadata.
        max_batch_size, max_queue_delay_us: reported by ModelConfig.
    """

    def __init__(
        self,
        inference: InferenceService,
        limits: Limits,
        ready: Callable[[], bool],
        server_version: str,
        max_batch_size: int,
        max_queue_delay_us: int,
    ) -> None:
        self._inference = inference
        self._registry: ModelRegistry = inference.registry
        self._limits = limits
        self._ready = ready
        self._version = server_version
        self._max_batch_size = max_batch_size
        self._delay_us = max_queue_delay_us

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
        version = parse_version(request.model_version, "model_version")
        outputs: list[codec_v2.RequestedOutput] = []

        def images_for(model: ServedModel) -> PixelWork:
            outputs[:] = codec_v2.requested_outputs(request, model)
            return codec_v2.prepare_inputs(request, model, self._limits)

        result = await self._inference.predict(request.model_name, version, images_for, context)
        return codec_v2.encode_infer_response(request, result.model, result.probabilities, outputs)

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
