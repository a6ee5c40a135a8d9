"""cnn.v1.Datasets against a real server process: uploads of every format are checked,
summarised and stored; List/Get/Delete; every bad upload gets its status and a message naming
the entry or the limit (and its setting), and leaves the data volume exactly as it was."""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from cnn_cli.redis_server import RedisServer
from cnn_client import CnnClient, CnnClientError, DatasetInfo
from jobs import rq_layout
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from jobs.spec import TRAIN_FUNCTION
from proto.cnn.v1 import datasets_pb2 as pb
from proto.cnn.v1 import datasets_pb2_grpc as pb_grpc
from tests.server.serverproc import ServerProcess, start_server
from tests.support.archives import (
    png_header_only,
    save_npz,
    solid,
    special,
    write_tar,
    write_zip,
)
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.ports import free_port

MiB = 1024 * 1024
#: Small limits, so that each can be passed with a small file.
LIMITS = {
    "CNN_MAX_UPLOAD_BYTES": str(8 * MiB),
    "CNN_MAX_UPLOAD_FILES": "20",
    "CNN_MAX_UPLOAD_PIXELS": "50000",
    "CNN_MAX_UPLOAD_IMAGE_SIDE": "128",
}
TWO_CLASSES = {"cats/a.png": solid(10), "cats/b.png": solid(20), "dogs/c.png": solid(30)}


@dataclass
class Stack:
    redis: RedisServer
    server: ServerProcess
    data_dir: Path

    def stub(self) -> pb_grpc.DatasetsStub:
        return pb_grpc.DatasetsStub(self.server.channel())

    def client(self) -> CnnClient:
        return CnnClient(self.server.address, timeout=EVENT_LIMIT_S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """redis-server and a server with a data volume and small upload limits (no worker: a
    queued job stays queued)."""
    root = tmp_path_factory.mktemp("datasets-api")
    (root / "models").mkdir()
    data_dir = root / "data"
    data_dir.mkdir()
    redis_server = RedisServer(root / "redis").start()
    env = {"CNN_REDIS_URL": redis_server.url, "CNN_DATA_DIR": str(data_dir), **LIMITS}
    try:
        server = start_server(root / "server", root / "models", env)
        try:
            yield Stack(redis_server, server, data_dir)
        finally:
            server.stop()
    finally:
        redis_server.stop()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (hidden ones too) with its bytes (None for a directory)."""
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): (None if path.is_dir() else path.read_bytes())
        for path in sorted(root.rglob("*"))
    }


def settled_tree(root: Path) -> dict[str, bytes | None] | None:
    """`tree`, or None while something under ``root`` is being removed."""
    try:
        return tree(root)
    except FileNotFoundError:
        return None


def file_messages(
    path: Path,
    fmt: pb.DatasetFormat,
    *,
    name: str = "bad",
    chunk: int = 64 * 1024,
    **header: object,
) -> list[pb.UploadDatasetRequest]:
    data = path.read_bytes()
    fields = {"name": name, "format": fmt, "size_bytes": len(data), "filename": path.name}
    first = pb.UploadDatasetRequest(header=pb.UploadHeader(**{**fields, **header}))  # type: ignore[arg-type]
    return [first] + [
        pb.UploadDatasetRequest(chunk=data[i : i + chunk]) for i in range(0, len(data), chunk)
    ]


def refused(stack: Stack, messages: list[pb.UploadDatasetRequest]) -> tuple[grpc.StatusCode, str]:
    """Upload ``messages``; the status and message of the refusal, once the data volume is
    checked to be exactly as it was."""
    before = tree(stack.data_dir)
    with pytest.raises(grpc.RpcError) as caught:
        stack.stub().Upload(iter(messages), timeout=EVENT_LIMIT_S)
    assert tree(stack.data_dir) == before
    return caught.value.code(), caught.value.details()


def upload_file(stack: Stack, path: Path, name: str) -> DatasetInfo:
    with stack.client() as client:
        return client.upload(path, name)


def npz_digest(data: bytes) -> str:
    """The content id of an npz upload, worked from DataStore's tree digest: one file entry,
    b"f" + u64(len(path)) + path + u64(size) + bytes, path "data.npz"."""
    path = b"data.npz"
    entry = b"f" + len(path).to_bytes(8, "big") + path + len(data).to_bytes(8, "big") + data
    return "sha256:" + hashlib.sha256(entry).hexdigest()


# -- good uploads ---------------------------------------------------------------------------


def test_npz_grey_uint8_is_stored_as_sent_and_summarised(stack: Stack, tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    path = save_npz(tmp_path / "grey.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]))
    info = upload_file(stack, path, "grey")
    assert (info.name, info.version, info.format, info.samples) == ("grey", 1, "npz", 6)
    assert (info.classes, info.class_counts, info.channels) == (["0", "1"], [3, 3], 1)
    assert (info.min_height, info.max_height, info.min_width, info.max_width) == (5, 5, 4, 4)
    assert info.mean == pytest.approx([x.mean()]) and info.std == pytest.approx([x.std()])
    assert (info.train_samples, info.test_samples) == (None, None)
    assert (info.source, info.size_bytes) == ("grey.npz", path.stat().st_size)
    assert info.id == npz_digest(path.read_bytes())
    stored = stack.data_dir / "datasets" / info.id.removeprefix("sha256:")
    assert (stored / "content" / "data.npz").read_bytes() == path.read_bytes()


def test_npz_colour_float32_with_class_names(stack: Stack, tmp_path: Path) -> None:
    x = np.random.default_rng(1).uniform(0, 255, (4, 3, 3, 2)).astype(np.float32)
    path = save_npz(
        tmp_path / "colour.npz",
        compressed=True,
        x=x,
        y=np.array([2, 0, 1, 2]),
        class_names=np.array(["ant", "bee", "cow"]),
    )
    info = upload_file(stack, path, "colour")
    assert (info.classes, info.class_counts, info.channels) == (["ant", "bee", "cow"], [1, 1, 2], 3)
    assert info.mean == pytest.approx(x.astype(np.float64).mean(axis=(0, 2, 3)))
    assert info.std == pytest.approx(x.astype(np.float64).std(axis=(0, 2, 3)))


def test_npz_with_float_targets_is_a_regression_set(stack: Stack, tmp_path: Path) -> None:
    x = np.zeros((4, 3, 3), np.uint8)
    y = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 20.0], [4.0, 20.0]], np.float32)
    path = save_npz(tmp_path / "r.npz", x=x, y=y, target_names=np.array(["size", "weight"]))
    info = upload_file(stack, path, "sizes")
    assert (info.task, info.classes, info.class_counts) == ("regression", [], [])
    assert info.targets == ["size", "weight"]
    assert info.target_mean == pytest.approx([2.5, 15.0])
    assert info.target_std == pytest.approx([np.sqrt(1.25), 5.0])
    with stack.client() as client:
        assert client.get_dataset("sizes").task == "regression"


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_archive_without_split_is_stored_under_train(
    stack: Stack, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"pets{suffix}"
    write_zip(path, TWO_CLASSES) if suffix == ".zip" else write_tar(path, TWO_CLASSES)
    info = upload_file(stack, path, f"pets-{suffix.lstrip('.').replace('.', '-')}")
    assert (info.format, info.samples, info.classes, info.class_counts) == (
        "images",
        3,
        ["cats", "dogs"],
        [2, 1],
    )
    # pixels 10 and 20 (cats) and 30 (dogs), 4 of each: mean 20, variance 200/3
    assert info.mean == pytest.approx([20.0]) and info.std == pytest.approx([(200 / 3) ** 0.5])
    assert (info.train_samples, info.test_samples) == (None, None)
    content = stack.data_dir / "datasets" / info.id.removeprefix("sha256:") / "content"
    assert sorted(p.relative_to(content).as_posix() for p in content.rglob("*.png")) == [
        "train/cats/000000.png",
        "train/cats/000001.png",
        "train/dogs/000002.png",
    ]


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_archive_with_train_test_split(stack: Stack, tmp_path: Path, suffix: str) -> None:
    files = {f"train/{name}": data for name, data in TWO_CLASSES.items()} | {
        "test/cats/d.png": solid(40),
        "test/dogs/e.png": solid(50),
    }
    path = tmp_path / f"split{suffix}"
    write_zip(path, files) if suffix == ".zip" else write_tar(path, files)
    info = upload_file(stack, path, "split")
    assert (info.samples, info.class_counts) == (5, [3, 2])
    assert (info.train_samples, info.test_samples) == (3, 2)
    content = stack.data_dir / "datasets" / info.id.removeprefix("sha256:") / "content"
    assert sorted(p.name for p in content.iterdir()) == ["test", "train"]


def test_the_same_bytes_again_are_a_new_version_with_the_same_id(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_zip(tmp_path / "again.zip", TWO_CLASSES)
    first = upload_file(stack, path, "again")
    second = upload_file(stack, path, "again")
    assert (first.version, second.version) == (1, 2)
    assert first.id == second.id
    assert (stack.data_dir / "names" / "again" / "2").read_text().strip() == first.id[7:]


def test_list_get_and_delete(stack: Stack, tmp_path: Path) -> None:
    # content of its own: an id resolves to the first name:version holding that content
    path = write_tar(tmp_path / "shared.tar", {"cats/a.png": solid(11), "dogs/b.png": solid(12)})
    with stack.client() as client:
        v1 = client.upload(path, "shared")
        v2 = client.upload(path, "shared")
        assert [d.ref for d in client.list_datasets("shared")] == ["shared:1", "shared:2"]
        assert "shared:1" in [d.ref for d in client.list_datasets()]
        assert client.get_dataset("shared").ref == "shared:2"
        assert client.get_dataset("shared:1") == v1
        assert client.get_dataset(v1.id).name == "shared"
        client.delete_dataset("shared", 1)
        with pytest.raises(CnnClientError) as caught:
            client.get_dataset("shared:1")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert "shared (versions 2)" in str(caught.value)
        content = stack.data_dir / "datasets" / v2.id.removeprefix("sha256:")
        assert content.is_dir()  # version 2 still points to it
        client.delete_dataset("shared", 2)
        assert not content.exists()
        assert client.list_datasets("shared") == []
        v3 = client.upload(path, "shared")
    assert v3.version == 3  # deleted numbers are never given again


@pytest.mark.parametrize(
    ("call", "code", "needle"),
    [
        (lambda s: s.Get(pb.GetDatasetRequest(dataset="nope")), "NOT_FOUND", "'nope' not found"),
        (lambda s: s.Get(pb.GetDatasetRequest(dataset="x:y")), "INVALID_ARGUMENT", "version"),
        (lambda s: s.Get(pb.GetDatasetRequest()), "INVALID_ARGUMENT", "dataset is required"),
        (lambda s: s.List(pb.ListDatasetsRequest(name="../x")), "INVALID_ARGUMENT", "name"),
        (
            lambda s: s.Delete(pb.DeleteDatasetRequest(name="nope", version=1)),
            "NOT_FOUND",
            "'nope:1' not found",
        ),
        (
            lambda s: s.Delete(pb.DeleteDatasetRequest(name="nope")),
            "INVALID_ARGUMENT",
            "version must be >= 1",
        ),
    ],
)
def test_bad_references(
    stack: Stack, call: Callable[[pb_grpc.DatasetsStub], object], code: str, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(stack.stub())
    assert caught.value.code().name == code
    assert needle in caught.value.details()


# -- bad uploads ----------------------------------------------------------------------------

ZIP, TAR, TAR_GZ, NPZ = (
    pb.DATASET_FORMAT_ZIP,
    pb.DATASET_FORMAT_TAR,
    pb.DATASET_FORMAT_TAR_GZ,
    pb.DATASET_FORMAT_NPZ,
)
Build = Callable[[Path], list[pb.UploadDatasetRequest]]


def tar_with(*extra: tarfile.TarInfo, files: dict[str, bytes] | None = None) -> Build:
    return lambda tmp: file_messages(write_tar(tmp / "bad.tar", files or TWO_CLASSES, *extra), TAR)


def zip_of(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Build:
    return lambda tmp: file_messages(write_zip(tmp / "bad.zip", files, dirs), ZIP)


def npz_of(**arrays: np.ndarray) -> Build:
    return lambda tmp: file_messages(save_npz(tmp / "bad.npz", **arrays), NPZ)


def header_only(**fields: object) -> Build:
    header = {"name": "bad", "format": ZIP, **fields}
    return lambda tmp: [pb.UploadDatasetRequest(header=pb.UploadHeader(**header))]  # type: ignore[arg-type]


def with_header(build: Build, **fields: object) -> Build:
    def messages(tmp: Path) -> list[pb.UploadDatasetRequest]:
        first, *rest = build(tmp)
        header = pb.UploadHeader()
        header.CopyFrom(first.header)
        for key, value in fields.items():
            setattr(header, key, value)
        return [pb.UploadDatasetRequest(header=header), *rest]

    return messages


def chunks_only(tmp: Path) -> list[pb.UploadDatasetRequest]:
    return file_messages(write_zip(tmp / "bad.zip", TWO_CLASSES), ZIP)[1:]


def header_twice(tmp: Path) -> list[pb.UploadDatasetRequest]:
    messages = file_messages(write_zip(tmp / "bad.zip", TWO_CLASSES), ZIP)
    return [*messages, messages[0]]


def undeclared_over_limit(tmp: Path) -> list[pb.UploadDatasetRequest]:
    chunk = pb.UploadDatasetRequest(chunk=bytes(MiB))
    return [header_only()(tmp)[0], *([chunk] * 9)]


ZEROS = bytes(32 * MiB)  # compresses about 1000:1
ONE_CLASS = npz_of(x=np.zeros((2, 2, 2), np.uint8), y=np.array([0, 0]))
BAD_UPLOADS: dict[str, tuple[Build, str, str]] = {
    "absolute path": (
        tar_with(files={"/cats/a.png": solid(1)}),
        "INVALID_ARGUMENT",
        "/cats/a.png: absolute path",
    ),
    "dot-dot": (tar_with(files={"cats/../../x.png": solid(1)}), "INVALID_ARGUMENT", "'..'"),
    "symlink": (
        tar_with(special("cats/l.png", tarfile.SYMTYPE, "/etc/passwd")),
        "INVALID_ARGUMENT",
        "cats/l.png: a symbolic link",
    ),
    "hard link": (
        tar_with(special("cats/h.png", tarfile.LNKTYPE, "cats/a.png")),
        "INVALID_ARGUMENT",
        "cats/h.png: a hard link",
    ),
    "device": (
        tar_with(special("cats/d", tarfile.CHRTYPE)),
        "INVALID_ARGUMENT",
        "cats/d: a device",
    ),
    "fifo": (tar_with(special("cats/f", tarfile.FIFOTYPE)), "INVALID_ARGUMENT", "cats/f: a fifo"),
    "zip bomb": (
        zip_of({**TWO_CLASSES, "cats/z.png": ZEROS}),
        "RESOURCE_EXHAUSTED",
        "CNN_MAX_COMPRESSION_RATIO 100",
    ),
    "tar.gz bomb": (
        lambda tmp: file_messages(write_tar(tmp / "bad.tar.gz", {"cats/z.png": ZEROS}), TAR_GZ),
        "RESOURCE_EXHAUSTED",
        "CNN_MAX_COMPRESSION_RATIO 100",
    ),
    "undecodable image": (
        zip_of({**TWO_CLASSES, "dogs/bad.png": b"not a png"}),
        "INVALID_ARGUMENT",
        "bad.zip: dogs/bad.png",
    ),
    "labels out of range": (
        npz_of(
            x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 1, 2]), class_names=np.array(["a", "b"])
        ),
        "INVALID_ARGUMENT",
        "bad.npz: y: labels must lie in 0..1",
    ),
    "empty class in npz": (
        npz_of(x=np.zeros((2, 2, 2), np.uint8), y=np.array([0, 2])),
        "INVALID_ARGUMENT",
        "classes with no samples: ['1']",
    ),
    "empty class folder": (
        zip_of(TWO_CLASSES, dirs=("birds/",)),
        "INVALID_ARGUMENT",
        "class 'birds' has no images",
    ),
    "one class": (ONE_CLASS, "INVALID_ARGUMENT", "at least 2 needed"),
    "one class folder": (zip_of({"cats/a.png": solid(1)}), "INVALID_ARGUMENT", "at least 2 needed"),
    "too many files": (
        zip_of({f"cats/{i}.png": solid(i) for i in range(20)} | {"dogs/x.png": solid(1)}),
        "RESOURCE_EXHAUSTED",
        "more than 20 files (CNN_MAX_UPLOAD_FILES)",
    ),
    "image side": (
        zip_of({**TWO_CLASSES, "dogs/wide.png": png_header_only(200, 10)}),
        "RESOURCE_EXHAUSTED",
        "dogs/wide.png is 200x10 pixels; each side must be <= 128 (CNN_MAX_UPLOAD_IMAGE_SIDE)",
    ),
    "decoded pixels": (
        zip_of(
            {f"cats/{i}.png": solid(i, 100, 100) for i in range(5)}
            | {"dogs/x.png": solid(1, 100, 100)}
        ),
        "RESOURCE_EXHAUSTED",
        "more than 50000 pixels in total (CNN_MAX_UPLOAD_PIXELS)",
    ),
    "declared bytes over the limit": (
        header_only(size_bytes=9 * MiB),
        "RESOURCE_EXHAUSTED",
        f"over the limit of {8 * MiB} (CNN_MAX_UPLOAD_BYTES)",
    ),
    "undeclared bytes over the limit": (
        undeclared_over_limit,
        "RESOURCE_EXHAUSTED",
        f"more than {8 * MiB} bytes received, over the upload limit (CNN_MAX_UPLOAD_BYTES)",
    ),
    "sha256 mismatch": (
        with_header(zip_of(TWO_CLASSES), sha256="0" * 64),
        "INVALID_ARGUMENT",
        "but header.sha256 declared 0000",
    ),
    "bad sha256": (
        with_header(zip_of(TWO_CLASSES), sha256="xyz"),
        "INVALID_ARGUMENT",
        "header.sha256 must be 64 hex digits",
    ),
    "size mismatch (fewer)": (
        with_header(zip_of(TWO_CLASSES), size_bytes=10**6),
        "INVALID_ARGUMENT",
        "but header.size_bytes declared 1000000",
    ),
    "size mismatch (more)": (
        with_header(zip_of(TWO_CLASSES), size_bytes=10),
        "INVALID_ARGUMENT",
        "more bytes received than header.size_bytes 10",
    ),
    "no messages": (lambda tmp: [], "INVALID_ARGUMENT", "the first message must be the header"),
    "header without bytes": (
        header_only(),
        "INVALID_ARGUMENT",
        "no bytes received after the header",
    ),
    "chunk before header": (
        chunks_only,
        "INVALID_ARGUMENT",
        "must be the header (name, format), got chunk",
    ),
    "header twice": (header_twice, "INVALID_ARGUMENT", "a second header"),
    "bad name": (
        header_only(name="../etc"),
        "INVALID_ARGUMENT",
        "header.name: data set name '../etc' is invalid",
    ),
    "digest-like name": (
        header_only(name="a" * 64),
        "INVALID_ARGUMENT",
        "would read as a sha256 digest",
    ),
    "no format": (
        header_only(format=0),
        "INVALID_ARGUMENT",
        "header.format 0 is not a known format",
    ),
    "unknown format": (
        header_only(format=99),
        "INVALID_ARGUMENT",
        "header.format 99 is not a known format",
    ),
    "format mismatch": (
        with_header(zip_of(TWO_CLASSES), format=TAR),
        "INVALID_ARGUMENT",
        "header.format says tar, but the content is a zip archive",
    ),
    "not an npz": (
        lambda tmp: file_messages(write_tar(tmp / "bad.npz", TWO_CLASSES), NPZ),
        "INVALID_ARGUMENT",
        "bad.npz: not a readable .npz",
    ),
    "pickled npz": (
        npz_of(
            x=np.zeros((2, 2, 2), np.uint8),
            y=np.array([0, 1]),
            class_names=np.array([{"a": 1}, 2], dtype=object),
        ),
        "INVALID_ARGUMENT",
        "pickled Python objects",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_and_leaves_nothing(stack: Stack, tmp_path: Path, case: str) -> None:
    build, code, needle = BAD_UPLOADS[case]
    status, message = refused(stack, build(tmp_path))
    assert (status.name, needle in message) == (code, True), message
    assert str(stack.data_dir) not in message  # the file by its upload name, not server paths


def test_a_client_that_cancels_mid_stream_leaves_nothing(stack: Stack, tmp_path: Path) -> None:
    before = tree(stack.data_dir)
    release = threading.Event()

    def messages() -> Iterator[pb.UploadDatasetRequest]:
        yield header_only()(tmp_path)[0]
        yield pb.UploadDatasetRequest(chunk=bytes(64 * 1024))  # over a file buffer: on disk
        release.wait(EVENT_LIMIT_S)  # hold the stream open until the test cancels it

    future = stack.stub().Upload.future(messages(), timeout=EVENT_LIMIT_S)
    staged = wait_for(
        lambda: [p for p in stack.data_dir.glob(".staging-*/upload.zip") if p.stat().st_size],
        EVENT_LIMIT_S,
        what="the first chunk on disk",
    )
    assert staged
    future.cancel()
    release.set()
    wait_for(lambda: settled_tree(stack.data_dir) == before, EVENT_LIMIT_S, what="no staging")


def queue_job(redis_url: str, dataset: dict[str, object]) -> str:
    """Queue a training job whose spec names ``dataset`` as submit-time resolution writes it;
    written in RQ's layout directly (no worker listens, so it stays queued)."""
    settings = QueueSettings(redis_url=redis_url)
    job = rq_layout.NewJob(
        job_id=str(uuid.uuid4()),
        queue=settings.queue,
        func_name=TRAIN_FUNCTION,
        payload={"name": "uses-data", "dataset": dataset},
        description="train uses-data",
        timeout_s=60,
        result_ttl=60,
        retries=0,
        meta={},
        submitted_at=time.time(),
    )
    with JobQueue.connect(settings) as queue, queue._redis.pipeline() as pipe:
        rq_layout.write_new_job(pipe, job)
        pipe.execute()
    return job.job_id


def test_delete_is_refused_while_a_queued_job_trains_on_the_version(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_zip(tmp_path / "busy.zip", TWO_CLASSES)
    with stack.client() as client:
        v1 = client.upload(path, "busy")
        client.upload(path, "busy")  # version 2 shares the content
        job = queue_job(stack.redis.url, {"name": "busy", "version": 1, "id": v1.id})
        before = tree(stack.data_dir)
        with pytest.raises(CnnClientError) as caught:
            client.delete_dataset("busy", 1)
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert f"busy:1 is in use by 1 queued or running job(s) as their data set: {job}" in str(
            caught.value
        )
        assert tree(stack.data_dir) == before
        client.delete_dataset("busy", 2)  # same content, but not the version the job named
        with JobQueue.connect(QueueSettings(redis_url=stack.redis.url)) as queue:
            queue.cancel(job)
        client.delete_dataset("busy", 1)
        assert client.list_datasets("busy") == []


# -- servers of their own -------------------------------------------------------------------


def test_delete_with_redis_down_is_refused_and_stale_uploads_are_cleaned_at_start(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    stale = data_dir / ".staging-stale"
    stale.mkdir(parents=True)
    (stale / "upload.zip").write_bytes(b"half an upload")
    two_hours_ago = time.time() - 7200
    os.utime(stale / "upload.zip", (two_hours_ago, two_hours_ago))
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fresh = data_dir / ".staging-fresh"  # another server's upload in progress: kept
    fresh.mkdir()
    (tmp_path / "models").mkdir()
    env = {"CNN_DATA_DIR": str(data_dir), "CNN_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    server = start_server(tmp_path / "server", tmp_path / "models", env)
    try:
        assert not stale.exists() and fresh.is_dir()
        fresh.rmdir()
        with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
            client.upload(write_zip(tmp_path / "d.zip", TWO_CLASSES), "kept")
            before = tree(data_dir)
            with pytest.raises(CnnClientError) as caught:
                client.delete_dataset("kept", 1)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert "nothing was deleted" in str(caught.value) and "Redis" in str(caught.value)
        assert tree(data_dir) == before
    finally:
        server.stop()


def test_uploads_need_the_token_and_are_budgeted_chunk_by_chunk(tmp_path: Path) -> None:
    """An unauthenticated upload stores nothing; with the token, a 5 MiB upload passes an
    in-flight budget of two messages, because each chunk is released once written."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "models").mkdir()
    env = {
        "CNN_DATA_DIR": str(data_dir),
        "CNN_AUTH_TOKEN": "s3cret",
        "CNN_MAX_MESSAGE_BYTES": str(MiB + 4096),
        "CNN_MAX_INFLIGHT_BYTES": str(2 * (MiB + 4096)),
    }
    server = start_server(tmp_path / "server", tmp_path / "models", env)
    x = np.random.default_rng(2).integers(0, 256, (80, 1, 256, 256), dtype=np.uint8)
    path = save_npz(tmp_path / "big.npz", x=x, y=np.arange(80) % 2)
    try:
        with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
            with pytest.raises(CnnClientError) as caught:
                client.upload(path, "big")
            assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert tree(data_dir) == {}
        progress: list[tuple[int, int]] = []
        with CnnClient(server.address, token="s3cret", timeout=EVENT_LIMIT_S) as client:
            info = client.upload(path, "big", on_progress=lambda *p: progress.append(p))
        assert info.samples == 80 and info.size_bytes == path.stat().st_size > 5 * MiB
        assert progress[0] == (0, info.size_bytes) and progress[-1] == (info.size_bytes,) * 2
        assert len(progress) == 1 + -(-info.size_bytes // MiB)
    finally:
        server.stop()
