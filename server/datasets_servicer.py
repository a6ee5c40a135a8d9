"""`cnn.v1.Datasets`: upload, list, show and delete data sets.

A thin servicer: `server.uploads` receives and stores uploads, `core.datastore.DataStore`
reads and deletes, `server.datasets_codec` translates messages. Store reads run in the
`blocking` threads. A Delete first asks the job queue (`jobs.queue.JobQueue`, no `rq`) whether
a queued or running job trains on that version (`server.in_use`); when Redis cannot answer,
nothing is deleted (UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from core.datastore import DataStore, DataStoreError
from jobs.datasets import trains_on
from jobs.queue import JobQueue
from proto.cnn.v1 import datasets_pb2 as pb
from proto.cnn.v1 import datasets_pb2_grpc as pb_grpc
from server import datasets_codec as codec
from server.errors import map_errors
from server.in_use import refuse_if_in_use
from server.uploads import UploadService, store_error

T = TypeVar("T")


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except DataStoreError as exc:
        raise store_error(exc) from None


class DatasetsServicer(pb_grpc.DatasetsServicer):
    """Translate `cnn.v1.Datasets` messages to upload, store and queue calls.

    Args:
        uploads: receives and stores uploads (owns the `DataStore`).
        queue: the job queue, asked before a delete.
        blocking: the executor for store reads and queue calls.
    """

    def __init__(self, uploads: UploadService, queue: JobQueue, *, blocking: Executor) -> None:
        self._uploads = uploads
        self._store: DataStore = uploads.store
        self._queue = queue
        self._blocking = blocking

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with _store_errors():
            return await asyncio.get_running_loop().run_in_executor(self._blocking, fn, *args)

    @map_errors
    async def Upload(
        self,
        request_iterator: AsyncIterator[pb.UploadDatasetRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.Dataset:
        return codec.dataset_message(await self._uploads.upload(request_iterator))

    @map_errors
    async def List(
        self, request: pb.ListDatasetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDatasetsResponse:
        name = codec.list_name(request)
        stored = await self._run(self._store.list)
        return pb.ListDatasetsResponse(
            datasets=[codec.dataset_message(s) for s in stored if name is None or s.name == name]
        )

    @map_errors
    async def Get(
        self, request: pb.GetDatasetRequest, context: grpc.aio.ServicerContext
    ) -> pb.Dataset:
        stored = await self._run(self._store.resolve, codec.get_reference(request))
        return codec.dataset_message(stored)

    @map_errors
    async def Delete(
        self, request: pb.DeleteDatasetRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteDatasetResponse:
        name, version = codec.delete_target(request)
        stored = await self._run(self._store.resolve, (name, version))
        await self._run(
            refuse_if_in_use,
            self._queue,
            f"data set {name}:{version}",
            "as their data set",
            lambda spec: trains_on(spec, name, version, stored.digest),
            "",
        )
        await self._run(self._store.delete, name, version)
        return pb.DeleteDatasetResponse()
