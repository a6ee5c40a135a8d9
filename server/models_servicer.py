"""`cnn.v1.Models`: model versions out of and into the repository as ONNX files, and their
lifecycle (version policy, load / unload, delete).

Export and import work on the repository on disk (`CNN_MODELS_DIR`), not on the loaded models:
any published version can be exported, and an import is published like a worker's version,
then hot-loaded by the watcher. Conversions, file I/O and publishing run in the `blocking`
threads, never on the event loop. The lifecycle RPCs translate to `server.lifecycle`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import grpc

from core.artifacts import load_artifact
from core.errors import ArtifactError
from core.lifecycle import LOADED, UNLOADED
from core.onnx_export import OPSET, export_model
from core.onnx_import import (
    ImportOptions,
    ImportOptionsError,
    ImportRefused,
    ImportResult,
    import_onnx,
)
from core.repository import ModelRepository, RepositoryError
from proto.cnn.v1 import classifier_pb2
from proto.cnn.v1 import models_pb2 as pb
from proto.cnn.v1 import models_pb2_grpc as pb_grpc
from server.codec import encode_input_spec, encode_layers
from server.errors import (
    InvalidInput,
    LimitExceeded,
    ModelNotFound,
    PreconditionFailed,
    map_errors,
    map_stream_errors,
)
from server.lifecycle import LifecycleService, model_name
from server.lifecycle_codec import decode_policy, encode_summary

#: Bytes per ExportModel chunk: well under any sensible max message size.
EXPORT_CHUNK_BYTES = 1024 * 1024


def import_options(header: pb.ImportHeader) -> ImportOptions:
    """The header's optional fields -> ImportOptions.

    Raises:
        InvalidInput: naming the field: a pixel range that is not two finite values low < high,
            a std <= 0, non-finite values, an unknown resize mode, an empty class name.
    """
    pixel_range = None
    if header.pixel_range:
        lo_hi = list(header.pixel_range)
        if len(lo_hi) != 2 or not all(map(math.isfinite, lo_hi)) or not lo_hi[0] < lo_hi[1]:
            raise InvalidInput(
                f"header.pixel_range must be two finite values [min, max] with min < max, got "
                f"{lo_hi}"
            )
        pixel_range = (lo_hi[0], lo_hi[1])
    for field in ("mean", "std"):
        values = list(getattr(header, field))
        if not all(map(math.isfinite, values)):
            raise InvalidInput(f"header.{field} must be finite, got {values}")
    if any(v <= 0 for v in header.std):
        raise InvalidInput(f"header.std must be > 0, got {list(header.std)}")
    if header.resize not in ("", "stretch", "crop"):
        raise InvalidInput(f"header.resize must be 'stretch' or 'crop', got {header.resize!r}")
    if any(not n.strip() for n in header.class_names):
        raise InvalidInput("header.class_names: every class name must be non-empty")
    return ImportOptions(
        class_names=list(header.class_names) or None,
        pixel_range=pixel_range,
        mean=list(header.mean) or None,
        std=list(header.std) or None,
        resize=header.resize or None,  # type: ignore[arg-type]  # checked above
    )


def encode_import(result: ImportResult) -> pb.ImportModelResponse:
    """The new version as ImportModel's reply (summary with receptive fields)."""
    summary = result.model.summary()
    return pb.ImportModelResponse(
        name=result.meta.name,
        version=result.version,
        input=encode_input_spec(result.meta.input, result.meta.preprocessing),
        class_names=list(result.meta.class_names),
        layers=encode_layers(summary.to_dict()),
        summary_text=str(summary),
        architecture_json=json.dumps(result.meta.architecture),
    )


class ModelsServicer(pb_grpc.ModelsServicer):
    """Export and import model versions; the repository is written only by a whole import."""

    def __init__(
        self,
        models_dir: Path,
        blocking: ThreadPoolExecutor,
        max_import_bytes: int,
        lifecycle: LifecycleService,
    ) -> None:
        self._repository = ModelRepository(models_dir)
        self._blocking = blocking
        self._max_import_bytes = max_import_bytes
        self._lifecycle = lifecycle

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._blocking, fn, *args)

    # -- export

    @map_stream_errors
    async def ExportModel(
        self, request: pb.ExportModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportModelResponse]:
        name = model_name(request.model, "model")
        if request.version < 0:
            raise InvalidInput(
                f"version is {request.version}; use 0 for the newest version or a version >= 1"
            )
        version, data, metadata = await self._run(self._export, name, request.version)
        yield pb.ExportModelResponse(
            header=pb.ExportHeader(
                name=name,
                version=version,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                opset=OPSET,
                metadata=metadata,
            )
        )
        for start in range(0, len(data), EXPORT_CHUNK_BYTES):
            yield pb.ExportModelResponse(chunk=data[start : start + EXPORT_CHUNK_BYTES])

    def _export(self, name: str, version: int) -> tuple[int, bytes, dict[str, str]]:
        published = self._repository.versions(name)
        if not published:
            raise ModelNotFound(f"model {name!r} has no published version")
        version = version or published[-1]
        if version not in published:
            raise ModelNotFound(
                f"model {name!r} has no version {version} (published: "
                f"{', '.join(map(str, published))})"
            )
        try:
            loaded = load_artifact(self._repository.path(name, version))
        except ArtifactError as exc:
            raise PreconditionFailed(f"model {name!r} version {version} is damaged: {exc}") from exc
        proto = export_model(loaded, version)
        return version, proto.SerializeToString(), {p.key: p.value for p in proto.metadata_props}

    # -- lifecycle

    def _summary(self, name: str) -> classifier_pb2.ModelSummary:
        return encode_summary(self._lifecycle.registry, name)

    @map_errors
    async def SetVersionPolicy(
        self, request: pb.SetVersionPolicyRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelSummary:
        name = model_name(request.model, "model")
        policy = decode_policy(request, self._lifecycle.max_served_versions)
        await self._lifecycle.set_policy(name, policy, context.time_remaining())
        return self._summary(name)

    @map_errors
    async def GetVersionPolicy(
        self, request: pb.GetVersionPolicyRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelSummary:
        name = model_name(request.model, "model")
        if name not in self._lifecycle.registry.models():
            raise ModelNotFound(f"model {name!r} is not in the repository")
        return self._summary(name)

    @map_errors
    async def LoadModel(
        self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelSummary:
        name = model_name(request.model, "model")
        await self._lifecycle.set_state(name, LOADED, context.time_remaining())
        return self._summary(name)

    @map_errors
    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelSummary:
        name = model_name(request.model, "model")
        await self._lifecycle.set_state(name, UNLOADED, context.time_remaining())
        return self._summary(name)

    @map_errors
    async def DeleteVersion(
        self, request: pb.DeleteVersionRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelSummary:
        name = model_name(request.model, "model")
        if request.version < 1:
            raise InvalidInput(f"version must be a published version >= 1, got {request.version}")
        await self._lifecycle.delete(name, request.version, request.force, context.time_remaining())
        return self._summary(name)

    # -- import

    @map_errors
    async def ImportModel(
        self,
        request_iterator: AsyncIterator[pb.ImportModelRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.ImportModelResponse:
        stream = aiter(request_iterator)
        first = await anext(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidInput("the first ImportModel message must carry the header")
        header = first.header
        name = model_name(header.name, "header.name")
        options = import_options(header)
        limit = self._max_import_bytes
        if header.size_bytes < 0:
            raise InvalidInput(f"header.size_bytes must be >= 0, got {header.size_bytes}")
        if header.size_bytes > limit:
            raise LimitExceeded(
                f"header.size_bytes {header.size_bytes:,} is over the import limit "
                f"CNN_MAX_IMPORT_BYTES={limit:,}"
            )
        with tempfile.TemporaryFile(prefix="cnn-import-") as spool:
            received, digest = await self._receive(stream, spool, limit)
            if header.size_bytes and received != header.size_bytes:
                raise InvalidInput(
                    f"received {received:,} bytes, header.size_bytes declared {header.size_bytes:,}"
                )
            if header.sha256 and header.sha256.lower() != digest:
                raise InvalidInput(
                    f"the file's sha256 is {digest}, header.sha256 says {header.sha256}"
                )
            if received == 0:
                raise InvalidInput("the ImportModel stream carried no file bytes after the header")
            result = await self._run(self._import, spool, name, options)
        return encode_import(result)

    async def _receive(
        self, stream: AsyncIterator[pb.ImportModelRequest], spool: IO[bytes], limit: int
    ) -> tuple[int, str]:
        """Chunks -> ``spool``; returns (bytes received, their sha256)."""
        received, sha = 0, hashlib.sha256()
        index = 1
        async for message in stream:
            if message.WhichOneof("part") != "chunk":
                raise InvalidInput(f"message {index}: only the first message carries a header")
            received += len(message.chunk)
            if received > limit:
                raise LimitExceeded(
                    f"the ONNX file is over the import limit CNN_MAX_IMPORT_BYTES={limit:,} bytes"
                )
            sha.update(message.chunk)
            await self._run(spool.write, message.chunk)
            index += 1
        return received, sha.hexdigest()

    def _import(self, spool: IO[bytes], name: str, options: ImportOptions) -> ImportResult:
        spool.seek(0)
        data = spool.read()
        try:
            return import_onnx(self._repository, name, data, options)
        except (ImportRefused, ImportOptionsError, RepositoryError) as exc:
            raise InvalidInput(str(exc)) from exc
        except OSError as exc:
            raise PreconditionFailed(
                f"cannot write the model repository {self._repository.root}: {exc.strerror or exc}"
            ) from exc
