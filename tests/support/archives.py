"""Data set files for tests: image-folder archives (zip, tar, tar.gz) with any entries,
special tar members, PNGs that only claim a size, and npz files."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tests.support.images import encode_image


def solid(value: int, height: int = 2, width: int = 2) -> bytes:
    """A grey PNG of one value."""
    return encode_image(np.full((height, width), value, dtype=np.uint8))


def write_zip(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in dirs:
            archive.writestr(name, b"")
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_tar(path: Path, files: dict[str, bytes], *extra: tarfile.TarInfo) -> Path:
    """A tar (gzipped when the name ends in .gz) of ``files``, then the ``extra`` members."""
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    """A tar member of type ``kind`` (tarfile.SYMTYPE, LNKTYPE, CHRTYPE, FIFOTYPE, ...)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR (8-bit grey) declares width x height; its pixel data is a stub
    (a header check must refuse it before decoding)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00"))
        + png_chunk(b"IEND", b"")
    )


def save_npz(path: Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path
