"""`cnn.v1.Datasets`: upload, list, show and delete data sets.

A thin servicer: `server.uploads` receives and stores uploads, `core.datastore.DataStore`
reads and deletes, `server.datasets_codec` translates messages. Store reads run in the
`blocking` threads. A Delete first asks the job queue (`jobs.queue.JobQueue`, no `rq`) whether
a queued or running job trains on that version; when Redis cannot answer, nothing is deleted
(UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from core.datastore import DIGEST_PREFIX, DataStore, DataStoreError
from jobs.errors import QueueUnavailable
from jobs.queue import JobQueue
from jobs.status import JobStatus
from jobs.views import JobView
from proto.cnn.v1 import datasets_pb2 as pb
from proto.cnn.v1 import datasets_pb2_grpc as pb_grpc
from server import datasets_codec as codec
from server.errors import FailedPrecondition, Unavailable, map_errors
from server.uploads import UploadService, store_error

T = TypeVar("T")

#: Jobs a Delete reads to find the ones training on a version (the queue holds at most
#: CNN_MAX_QUEUED_JOBS waiting; running ones are bounded by the workers).
MAX_JOBS_SCANNED = 100_000
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def trains_on(spec: Mapping[str, Any] | None, name: str, version: int, digest: str) -> bool:
    """Whether a job's spec trains on ``name:version``.

    A submitted spec names its data set as resolved at submit time, ``{"name": ..., "version":
    ..., "id": "sha256:<hex>"}``: versions sharing content are told apart by name and version.
    A spec holding only the id counts for every version with that content.
    """
    dataset = spec.get("dataset") if spec is not None else None
    if not isinstance(dataset, Mapping):
        return False
    if "name" in dataset and "version" in dataset:
        return bool(dataset["name"] == name and dataset["version"] == version)
    return dataset.get("id") == DIGEST_PREFIX + digest


def jobs_training_on(views: list[JobView], name: str, version: int, digest: str) -> list[str]:
    """Ids of the queued or running jobs among ``views`` that train on ``name:version``."""
    return [
        view.id
        for view in views
        if view.status in ACTIVE and trains_on(view.spec, name, version, digest)
    ]


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
        try:
            views = await self._run(lambda: self._queue.list(limit=MAX_JOBS_SCANNED))
        except QueueUnavailable as exc:
            raise Unavailable(
                f"cannot tell whether a queued or running job trains on {name}:{version}, so "
                f"nothing was deleted: {exc}"
            ) from None
        users = jobs_training_on(views, name, version, stored.digest)
        if users:
            shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
            raise FailedPrecondition(
                f"data set {name}:{version} is in use by {len(users)} queued or running "
                f"job(s): {shown}; cancel them (`cnn train cancel JOB`) or wait until they end"
            )
        await self._run(self._store.delete, name, version)
        return pb.DeleteDatasetResponse()
