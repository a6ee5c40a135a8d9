"""Image-folder archives: :func:`inspect_archive` and :func:`extract_archive`."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from core.durable import fsync_dir, fsync_tree
from core.ingest.errors import DatasetSummary, IngestError, IngestLimits, check_size
from core.ingest.layout import Layout, entry_parts
from core.ingest.members import detect_archive, tar_entries, zip_entries
from core.ingest.stats import ImageStats


def inspect_archive(path: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an image-folder archive entry by entry and summarise it; nothing is extracted.

    Args:
        path: a ``.zip``, ``.tar`` or ``.tar.gz`` file (recognised by content, not name).
        limits: the limits to hold it to (defaults: :class:`IngestLimits`).

    Raises:
        IngestError: the first problem found (see the module docstring for the kinds).
    """
    return _scan_archive(Path(path), limits or IngestLimits(), keep=None)


def extract_archive(path: Path, dest: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an image-folder archive as :func:`inspect_archive` does and write its images to
    ``dest/<split>/<class>/<n>.png|.jpg`` (split "train" for an archive without one).

    Nothing of the archive's file names is used but the class and split names, which are
    checked: files are numbered ``000000``, ``000001``... in archive order, with the suffix of
    their content. Images go into a hidden sibling ``.<dest name>.tmp-<random>``, which is
    fsynced and renamed to ``dest`` once everything passed: ``dest`` then holds a complete,
    valid data set or does not exist.

    Raises:
        IngestError: as :func:`inspect_archive` (nothing is left behind).
        FileExistsError: ``dest`` exists already.
    """
    path, dest, limits = Path(path), Path(dest), limits or IngestLimits()
    if dest.exists():
        raise FileExistsError(f"{dest} exists already; extract_archive writes a new directory")
    staging = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
    (staging / "files").mkdir(parents=True)
    placed: list[tuple[tuple[str, ...], str]] = []  # (folder, file name in staging/files)

    def keep(folder: tuple[str, ...], data: bytes, suffix: str) -> None:
        name = f"{len(placed):06d}{suffix}"
        with (staging / "files" / name).open("xb") as fh:
            fh.write(data)
        placed.append((folder, name))

    try:
        summary = _scan_archive(path, limits, keep)
        for folder, name in placed:
            target = staging / Path(*folder) if summary.splits else staging / "train" / folder[0]
            target.mkdir(parents=True, exist_ok=True)
            (staging / "files" / name).rename(target / name)
        (staging / "files").rmdir()
        fsync_tree(staging)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    return summary


def _scan_archive(
    path: Path,
    limits: IngestLimits,
    keep: Callable[[tuple[str, ...], bytes, str], None] | None,
) -> DatasetSummary:
    """Visit every entry once, checking it; hand each image (its folder, bytes and suffix) to
    ``keep`` once it has decoded, then check the layout as a whole and summarise."""
    check_size(path, limits)
    archive_format = detect_archive(path)
    entries = (
        zip_entries(path, limits)
        if archive_format == "zip"
        else tar_entries(path, archive_format == "tar.gz", limits)
    )
    layout = Layout(path, limits)
    stats = ImageStats(limits)
    seen: set[tuple[str, ...]] = set()
    files = 0
    try:
        for entry in entries:
            what = f"{path}: {entry.name}"
            parts = entry_parts(entry.name, what)
            if parts in seen:
                raise IngestError("bad_entry", f"{what}: the archive holds this path twice")
            seen.add(parts)
            if entry.is_dir:
                layout.add_dir(parts, what)
                continue
            files += 1
            if files > limits.max_files:
                raise IngestError(
                    "too_large", f"{path}: more than {limits.max_files} files (max_files)"
                )
            layout.add_file(parts, what)
            if entry.size > limits.max_image_bytes:
                raise IngestError(
                    "too_large",
                    f"{what}: {entry.size} bytes, over max_image_bytes {limits.max_image_bytes}",
                )
            data = entry.read(limits.max_image_bytes + 1)
            suffix = stats.add(data, what)
            if keep is not None:
                keep(parts[:-1], data, suffix)
    # Other OSErrors (a disk that fails to read the upload or to write an image) are the
    # server's problem, not the upload's: they propagate as they are.
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise IngestError(
            "format", f"{path}: corrupt {archive_format} archive ({type(exc).__name__}: {exc})"
        ) from None
    classes, class_counts, split_counts = layout.resolve()
    moments = stats.moments()
    return DatasetSummary(
        format=archive_format,
        samples=sum(class_counts.values()),
        classes=tuple(classes),
        class_counts=class_counts,
        channels=stats.channels(),
        min_height=stats.heights[0],
        max_height=stats.heights[1],
        min_width=stats.widths[0],
        max_width=stats.widths[1],
        mean=tuple(float(m) for m in moments.mean),
        std=tuple(float(s) for s in moments.std()),
        splits=split_counts,
    )
