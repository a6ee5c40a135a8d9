"""Data set uploads: an `Upload` stream received to disk, checked, summarised and stored.

The work of `cnn.v1.Datasets.Upload` behind the servicer (`server.datasets_servicer`):

1. The header is checked first (name, format, declared size against `CNN_MAX_UPLOAD_BYTES`,
   sha256 syntax); nothing touches the data volume before it passes.
2. The chunks are written into a `DataStore.staging()` directory as they arrive. Each chunk is
   written and hashed by a thread of the `io` executor before the next message is read, so an
   upload holds one chunk in memory whatever its size (gRPC's flow control holds the client
   meanwhile). The byte count is checked against the limit (and the declared size) at every
   chunk; the declared sha256 at the end.
3. The file is checked (`core.ingest`: `inspect_npz`, or `extract_archive` for archives) in a
   thread of its own: at most `CNN_MAX_CONCURRENT_UPLOADS` uploads are checked at once, later
   ones wait their turn (their bytes have arrived already; refusing them would waste the
   transfer). Then `DataStore.commit` stores it as the next version of the name.

Every refusal, a client that cancels or disconnects, and a server error remove the staging
directories: the data volume holds exactly what it held before. A server killed mid-upload
leaves a hidden ``.staging-*`` directory, which `clean_stale_staging` removes at the next start
once nothing in it changed for `STALE_STAGING_S`.

Stored layout (what `DataStore` calls ``content/``): an npz upload is the file itself,
``content/data.npz``; an archive is the images as `extract_archive` writes them,
``content/train/<class>/<n>.png|.jpg`` and, when the archive had a train/test split,
``content/test/<class>/...``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from core.datastore import (
    DatasetMeta,
    DatasetNotFound,
    DataStore,
    DataStoreError,
    StoredDataset,
    check_dataset_name,
)
from core.ingest import IngestError, IngestLimits, extract_archive, inspect_npz
from core.ingest.members import detect_archive
from proto.cnn.v1 import datasets_pb2 as pb
from server.errors import (
    InvalidInput,
    LimitExceeded,
    NotFound,
    ServerError,
    Unavailable,
)
from server.settings import INGEST_SETTINGS

log = logging.getLogger(__name__)

T = TypeVar("T")

UploadFormat = Literal["npz", "zip", "tar", "tar.gz"]
FORMATS: dict[int, UploadFormat] = {
    pb.DATASET_FORMAT_NPZ: "npz",
    pb.DATASET_FORMAT_ZIP: "zip",
    pb.DATASET_FORMAT_TAR: "tar",
    pb.DATASET_FORMAT_TAR_GZ: "tar.gz",
}
#: The name of the received file inside its staging directory; an npz is stored as it is.
NPZ_FILE = "data.npz"
#: A staging directory in which nothing changed for this long belongs to no live upload (an
#: upload in progress writes a chunk at least every few seconds): removed at server start, s.
STALE_STAGING_S = 3600.0
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_SOURCE_CHARS = 255


class UploadAbandoned(Exception):
    """The client went away while its upload was being checked: nothing is stored."""


@dataclass(frozen=True)
class UploadHeader:
    """A checked `cnn.v1.UploadHeader`."""

    name: str
    format: UploadFormat
    size_bytes: int | None  # None: not declared
    sha256: str | None  # lower-case hex, None: not given
    source: str  # the data set's `source`: the file name, or the format

    @property
    def display_name(self) -> str:
        """How messages name the uploaded file."""
        return self.source if self.source != self.format else f"upload.{self.format}"


def parse_header(header: pb.UploadHeader, max_bytes: int) -> UploadHeader:
    """Check an upload's header.

    Raises:
        InvalidInput: a bad name, format, size or sha256, naming the field.
        LimitExceeded: the declared size is over `max_bytes` (CNN_MAX_UPLOAD_BYTES).
    """
    try:
        name = check_dataset_name(header.name)
    except DataStoreError as exc:
        raise InvalidInput(f"header.name: {exc}") from None
    upload_format = FORMATS.get(header.format)
    if upload_format is None:
        known = ", ".join(pb.DatasetFormat.Name(number) for number in FORMATS)
        raise InvalidInput(
            f"header.format {header.format} is not a known format; use one of {known}"
        )
    if header.size_bytes < 0:
        raise InvalidInput(
            f"header.size_bytes must be >= 0 (0 = not declared), got {header.size_bytes}"
        )
    if header.size_bytes > max_bytes:
        raise LimitExceeded(
            f"header.size_bytes: the upload is {header.size_bytes} bytes, over the limit of "
            f"{max_bytes} (CNN_MAX_UPLOAD_BYTES)"
        )
    if header.sha256 and not _SHA256_RE.fullmatch(header.sha256):
        raise InvalidInput(
            f"header.sha256 must be 64 hex digits (or empty), got {header.sha256[:80]!r}"
        )
    source = _CONTROL_RE.sub("", header.filename.replace("\\", "/").rsplit("/", 1)[-1])
    return UploadHeader(
        name=name,
        format=upload_format,
        size_bytes=header.size_bytes or None,
        sha256=header.sha256.lower() or None,
        source=source[:MAX_SOURCE_CHARS] or upload_format,
    )


def ingest_error(exc: IngestError, upload: Path, display_name: str) -> ServerError:
    """An `IngestError` as the client sees it: the file by the name it was uploaded under (not
    the server's staging path), each limit by its setting; resource limits RESOURCE_EXHAUSTED,
    the rest INVALID_ARGUMENT."""
    message = str(exc).replace(str(upload), display_name)
    for field, setting in INGEST_SETTINGS.items():
        message = re.sub(rf"\b{field}\b", setting, message)
    return LimitExceeded(message) if exc.exhausts_resources else InvalidInput(message)


def store_error(exc: DataStoreError) -> ServerError:
    """A data store error: an unknown reference NOT_FOUND, a malformed one INVALID_ARGUMENT."""
    if isinstance(exc, DatasetNotFound):
        return NotFound(str(exc))
    return InvalidInput(str(exc))


def volume_error(exc: OSError, root: Path) -> ServerError | None:
    """A data volume that is full, read-only or not ours, as the client should see it; None for
    other OS errors (a server fault: INTERNAL, logged)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LimitExceeded(f"the data volume {root} (CNN_DATA_DIR) is full: {exc.strerror}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
        return Unavailable(
            f"the data volume {root} (CNN_DATA_DIR) is not writable by the server: {exc}"
        )
    return None


class _Sink:
    """The received file: written and hashed chunk by chunk (called from `io` threads, one
    call at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("xb")
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)

    def close(self) -> str:
        """Close the file; returns its sha256 (hex)."""
        self._file.close()
        return self._hash.hexdigest()


class UploadService:
    """Receive, check and store uploads into `store`.

    Args:
        store: the data store (root: CNN_DATA_DIR).
        limits: what an upload may cost (`Settings.ingest_limits()`).
        io: executor for file writes and store reads (the server's blocking pool).
        max_concurrent: uploads checked at once (CNN_MAX_CONCURRENT_UPLOADS); others wait.
    """

    def __init__(
        self, store: DataStore, limits: IngestLimits, io: Executor, max_concurrent: int
    ) -> None:
        self.store = store
        self.limits = limits
        self._io = io
        self._checkers = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="ingest")
        self._slots = asyncio.Semaphore(max_concurrent)

    def close(self) -> None:
        self._checkers.shutdown(wait=False, cancel_futures=True)

    async def upload(self, messages: AsyncIterator[pb.UploadDatasetRequest]) -> StoredDataset:
        """Receive one `Upload` stream and store it.

        Raises:
            InvalidInput: a missing, repeated or bad header, a chunk before the header, a size
                or sha256 that does not match, content that is not a usable data set.
            LimitExceeded: over a limit (the message names its setting), or the volume is full.
            Unavailable: the data volume cannot be written.
        """
        first = await anext(messages, None)
        if first is None:
            raise InvalidInput("empty upload: the first message must be the header (name, format)")
        if first.WhichOneof("part") != "header":
            raise InvalidInput(
                "the first message of an upload must be the header (name, format), got "
                f"{first.WhichOneof('part') or 'an empty message'}"
            )
        header = parse_header(first.header, self.limits.max_bytes)
        staging = ExitStack()  # entered in io threads (mkdir), closed in one (rmtree)
        try:
            raw = await self._run(lambda: staging.enter_context(self.store.staging()))
            content = raw
            if header.format != "npz":  # the archive is not content: its images will be
                content = await self._run(lambda: staging.enter_context(self.store.staging()))
            upload = raw / (NPZ_FILE if header.format == "npz" else f"upload.{header.format}")
            await self._receive(messages, header, upload)
            return await self._check_and_store(header, upload, content)
        except OSError as exc:
            raise volume_error(exc, self.store.root) or exc from None
        finally:
            await self._settle(staging.close)

    async def _receive(
        self, messages: AsyncIterator[pb.UploadDatasetRequest], header: UploadHeader, path: Path
    ) -> None:
        limit = self.limits.max_bytes
        declared = header.size_bytes
        sink = await self._run(lambda: _Sink(path))
        received = 0
        try:
            async for message in messages:
                part = message.WhichOneof("part")
                if part == "header":
                    raise InvalidInput(
                        f"{header.display_name}: a second header after {received} bytes; an "
                        "upload has one header, first"
                    )
                if part != "chunk":
                    raise InvalidInput(
                        f"{header.display_name}: an empty message after {received} bytes; "
                        "send chunks"
                    )
                received += len(message.chunk)
                if received > limit:
                    raise LimitExceeded(
                        f"{header.display_name}: more than {limit} bytes received, over the "
                        "upload limit (CNN_MAX_UPLOAD_BYTES)"
                    )
                if declared is not None and received > declared:
                    raise InvalidInput(
                        f"{header.display_name}: more bytes received than header.size_bytes "
                        f"{declared} declared"
                    )
                await self._run(sink.write, message.chunk)
        finally:
            digest = await self._settle(sink.close)
        if received == 0:
            raise InvalidInput(f"{header.display_name}: no bytes received after the header")
        if declared is not None and received != declared:
            raise InvalidInput(
                f"{header.display_name}: {received} bytes received, but header.size_bytes "
                f"declared {declared}"
            )
        if header.sha256 is not None and digest != header.sha256:
            raise InvalidInput(
                f"{header.display_name}: the bytes received have sha256 {digest}, but "
                f"header.sha256 declared {header.sha256}"
            )

    async def _check_and_store(
        self, header: UploadHeader, upload: Path, content: Path
    ) -> StoredDataset:
        abandoned = threading.Event()
        async with self._slots:
            future = asyncio.get_running_loop().run_in_executor(
                self._checkers, self._ingest, header, upload, content, abandoned
            )
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # The thread cannot be stopped: tell it not to commit, and let it end before
                # the staging directories are removed under it.
                abandoned.set()
                await _outcome(future)
                raise

    def _ingest(
        self, header: UploadHeader, upload: Path, content: Path, abandoned: threading.Event
    ) -> StoredDataset:
        """Check the received file and commit it (in a checker thread)."""
        try:
            if header.format == "npz":
                summary = inspect_npz(upload, self.limits)
            else:
                found = detect_archive(upload)
                if found != header.format:
                    raise InvalidInput(
                        f"{header.display_name}: header.format says {header.format}, but the "
                        f"content is a {found} archive"
                    )
                extracted = upload.parent / "extracted"
                summary = extract_archive(upload, extracted, self.limits)
                for child in extracted.iterdir():
                    os.rename(child, content / child.name)
        except IngestError as exc:
            raise ingest_error(exc, upload, header.display_name) from None
        meta = DatasetMeta.from_summary(summary, header.source, _tree_bytes(content))
        if abandoned.is_set():
            raise UploadAbandoned(f"{header.display_name}: the client went away; nothing stored")
        try:
            stored = self.store.commit(content, header.name, meta)
        except DataStoreError as exc:
            raise store_error(exc) from None
        log.info(
            "stored data set %s (%s, %d samples, %d classes) from %s",
            stored.ref,
            stored.digest[:12],
            meta.samples,
            len(meta.classes),
            header.display_name,
        )
        return stored

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def _settle(self, fn: Callable[[], T]) -> T:
        """`fn()` in an `io` thread, carried to its end even if this task is cancelled meanwhile
        (clean-up must finish however the RPC ends)."""
        future = asyncio.get_running_loop().run_in_executor(self._io, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await _outcome(future)
            raise


async def _outcome(future: asyncio.Future[T]) -> None:
    """Wait for ``future`` to end and drop its outcome (the caller was cancelled meanwhile)."""
    await asyncio.wait({future})
    if not future.cancelled():
        future.exception()  # retrieved: asyncio would log it as never retrieved


def _tree_bytes(root: Path) -> int:
    """Bytes of the files under ``root``."""
    return sum(
        (Path(directory) / name).stat().st_size
        for directory, _, names in os.walk(root)
        for name in names
    )
