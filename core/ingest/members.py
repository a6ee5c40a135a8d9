"""Archive members one at a time, from zip, tar and tar.gz, with the checks that must happen
before a member is read: entry types, compression ratios, directory sizes."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol

from core.ingest.errors import IngestError, IngestLimits

ArchiveFormat = Literal["zip", "tar", "tar.gz"]
_ZIP_ENCRYPTED = 0x1  # general purpose flag bit 0
_ZIP_UNIX = 3  # ZipInfo.create_system of unix hosts
_ZIP_END_SIZE = 22  # end of central directory record, without its comment
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_END_SIZE = 56
# An entry's directory record: 46 bytes, its name (a class and a file name, <= 255 bytes each)
# and extra fields; 1 KiB leaves room for all of that.
_ZIP_DIRECTORY_BYTES_PER_ENTRY = 1024


@dataclass(frozen=True)
class Entry:
    """One archive member: its name, whether it is a directory, its declared size, and a
    reader of its bytes (valid only until the next entry is produced)."""

    name: str
    is_dir: bool
    size: int
    read: Callable[[int], bytes]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _ExpansionGuard(io.RawIOBase):
    """A decompressed stream that refuses to deliver more than ``limit`` bytes in total: the
    total-ratio check of a compressed archive, enforced while reading, not after."""

    def __init__(self, source: _Readable, limit: int, what: str, ratio: float) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self._what = what
        self._ratio = ratio
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        self.delivered += len(data)
        if self.delivered > self._limit:
            raise IngestError(
                "bomb",
                f"{self._what}: unpacks to more than {self._limit} bytes, over "
                f"max_compression_ratio {self._ratio:g} (a compression bomb?)",
            )
        view[: len(data)] = data
        return len(data)


def detect_archive(path: Path) -> ArchiveFormat:
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    raise IngestError("format", f"{path}: not a .zip, .tar or .tar.gz archive (by its content)")


def _zip_directory(path: Path) -> tuple[int, int] | None:
    """(entries, central directory bytes) as a zip's end record declares them (zip64
    included), read before ``zipfile`` builds one object per entry; None when there is no end
    record (``zipfile`` then says why).
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        # The end record is 22 bytes plus a comment of at most 65,535 bytes.
        fh.seek(max(0, size - _ZIP_END_SIZE - 0xFFFF))
        tail = fh.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) - end < _ZIP_END_SIZE:
            return None
        count, directory_size = struct.unpack_from("<HI", tail, end + 10)
        locator = end - _ZIP64_LOCATOR_SIZE
        if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
            return int(count), int(directory_size)
        (record_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        fh.seek(record_offset)
        record = fh.read(_ZIP64_END_SIZE)
    if len(record) < _ZIP64_END_SIZE or not record.startswith(b"PK\x06\x06"):
        return None
    count64, directory_size64 = struct.unpack_from("<QQ", record, 32)
    return int(count64), int(directory_size64)


def open_zip(path: Path, max_entries: int) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)`` once its directory is known to be small enough.

    A central directory of millions of tiny entries fits in an upload of a few hundred MB and
    would cost gigabytes as ``ZipInfo`` objects. ``zipfile`` walks the directory by its size in
    bytes, not by the entry count, so both are bounded (the size by
    ``_ZIP_DIRECTORY_BYTES_PER_ENTRY`` per entry), and the entries are counted again after.
    """
    declared = _zip_directory(path)
    if declared is not None:
        count, directory_size = declared
        if count > max_entries:
            raise IngestError(
                "too_large",
                f"{path}: {count} entries in the zip directory, more than {max_entries} "
                "(max_files, plus directories)",
            )
        if directory_size > max_entries * _ZIP_DIRECTORY_BYTES_PER_ENTRY:
            raise IngestError(
                "too_large",
                f"{path}: a zip directory of {directory_size} bytes, more than "
                f"{_ZIP_DIRECTORY_BYTES_PER_ENTRY} per entry for {max_entries} entries "
                "(max_files)",
            )
    archive = zipfile.ZipFile(path)
    if len(archive.infolist()) > max_entries:
        archive.close()
        raise IngestError(
            "too_large",
            f"{path}: {len(archive.infolist())} entries in the zip, more than {max_entries} "
            "(max_files, plus directories)",
        )
    return archive


def check_zip_info(info: zipfile.ZipInfo, what: str, limits: IngestLimits) -> None:
    """Refuse an entry zipfile should not even open: encrypted, an unusual compression method
    (only stored and deflate), a link or device, or a per-entry ratio over the limit."""
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise IngestError("bad_entry", f"{what}: encrypted entries are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise IngestError(
            "bad_entry",
            f"{what}: compression method {info.compress_type}; only stored and deflate are read",
        )
    # A unix zip keeps st_mode in the high 16 bits; many writers leave its type bits 0.
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode) if info.create_system == _ZIP_UNIX else 0
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise IngestError("bad_entry", f"{what}: {_file_type(mode)}, not a regular file")
    if info.file_size > limits.expansion_limit(info.compress_size):
        raise IngestError(
            "bomb",
            f"{what}: {info.file_size} bytes from {info.compress_size} compressed, over "
            f"max_compression_ratio {limits.max_compression_ratio:g} (a compression bomb?)",
        )


def zip_entries(path: Path, limits: IngestLimits) -> Iterator[Entry]:
    # Directory entries are bounded by the classes: <c>/, train/<c>/, test/<c>/, train/, test/.
    max_entries = limits.max_files + 3 * limits.max_classes + 2
    with open_zip(path, max_entries) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        on_disk = path.stat().st_size
        if total > limits.expansion_limit(on_disk):
            raise IngestError(
                "bomb",
                f"{path}: entries declare {total} bytes from {on_disk} on disk, over "
                f"max_compression_ratio {limits.max_compression_ratio:g} (a compression bomb?)",
            )
        for info in infos:
            check_zip_info(info, f"{path}: {info.filename}", limits)
            if info.is_dir():
                yield Entry(info.filename, True, 0, _no_data)
                continue
            with archive.open(info) as member:
                yield Entry(info.filename, False, info.file_size, member.read)


def tar_entries(path: Path, gzipped: bool, limits: IngestLimits) -> Iterator[Entry]:
    with path.open("rb") as raw:
        source: IO[bytes] = raw
        if gzipped:
            unpacked = gzip.GzipFile(fileobj=raw, mode="rb")
            limit = limits.expansion_limit(path.stat().st_size)
            source = io.BufferedReader(
                _ExpansionGuard(unpacked, limit, str(path), limits.max_compression_ratio)
            )
        # "r|": a forward-only stream, so bytes are counted as they are unpacked.
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for member in archive:
                what = f"{path}: {member.name}"
                if member.isdir():
                    yield Entry(member.name, True, 0, _no_data)
                elif member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    reader = archive.extractfile(member)
                    if reader is None:  # unreachable for regular files; keeps mypy honest
                        raise IngestError("bad_entry", f"{what}: has no data")
                    yield Entry(member.name, False, member.size, reader.read)
                else:
                    raise IngestError("bad_entry", f"{what}: {_tar_type(member)}, not a file")


def _no_data(size: int) -> bytes:
    return b""


def _tar_type(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    if member.issparse():
        return "a sparse file"
    return f"an entry of tar type {member.type!r}"


def _file_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    return f"file mode {oct(mode)}"
