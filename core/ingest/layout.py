"""Archive entry names -> path components, and the ``<class>/<image>`` or
``train|test/<class>/<image>`` layout they must form."""

from __future__ import annotations

from pathlib import Path

from core.ingest.errors import IngestError, IngestLimits, check_class_name

SPLITS = ("train", "test")


def entry_parts(name: str, what: str) -> tuple[str, ...]:
    """An archive entry name -> its path components, leading ``./`` dropped.

    Raises:
        IngestError: bad_entry for absolute paths, ``..``, empty or ``.`` components inside the
            path, backslashes and control characters.
    """
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise IngestError("bad_entry", f"{what}: entry name has control characters")
    if "\\" in name:
        raise IngestError("bad_entry", f"{what}: entry name has a backslash; use '/' paths")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise IngestError("bad_entry", f"{what}: absolute path; entries must be relative")
    parts = name.split("/")
    while parts and parts[0] == ".":
        parts.pop(0)
    if parts and parts[-1] == "":  # "cats/" names a directory
        parts.pop()
    if ".." in parts:
        raise IngestError("bad_entry", f"{what}: '..' in the path; entries must stay inside")
    if any(part in ("", ".") for part in parts):
        raise IngestError("bad_entry", f"{what}: empty or '.' path component")
    return tuple(parts)


class Layout:
    """Where each image sits: ``<class>/<file>`` (flat) or ``<split>/<class>/<file>``.

    Which of the two an archive uses is decided at the end (a flat archive may have a class
    named "train"), so files are counted by their directory (a 1- or 2-tuple of names).
    """

    def __init__(self, path: Path, limits: IngestLimits) -> None:
        self.path = path
        self.limits = limits
        self.counts: dict[tuple[str, ...], int] = {}
        self.first_entry: dict[tuple[str, ...], str] = {}
        self.dirs: dict[tuple[str, ...], str] = {}

    def add_dir(self, parts: tuple[str, ...], what: str) -> None:
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in SPLITS):
            raise IngestError(
                "bad_entry", f"{what}: directory outside <class>/ or train|test/<class>/"
            )
        if parts:
            self.dirs.setdefault(parts, what)
            self._check_class_count()

    def add_file(self, parts: tuple[str, ...], what: str) -> None:
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[0] not in SPLITS):
            raise IngestError(
                "bad_entry",
                f"{what}: file outside the layout <class>/<image> or train|test/<class>/<image>",
            )
        folder = parts[:-1]
        self.counts[folder] = self.counts.get(folder, 0) + 1
        self.first_entry.setdefault(folder, what)
        self._check_class_count()

    def _check_class_count(self) -> None:
        # A class appears as at most 3 folders (<c>, train/<c>, test/<c>): refuse early at 3x.
        if len(self.counts) + len(self.dirs) > 3 * self.limits.max_classes + 2:
            self._too_many_classes()

    def _too_many_classes(self) -> None:
        raise IngestError(
            "too_large", f"{self.path}: more than {self.limits.max_classes} classes (max_classes)"
        )

    def resolve(self) -> tuple[list[str], dict[str, int], dict[str, int]]:
        """(sorted classes, images per class, images per split).

        Raises:
            IngestError: bad_entry (flat and split layouts mixed), classes (an empty class,
                fewer than two classes, a bad class name), too_large (over max_classes).
        """
        folders = set(self.counts) | set(self.dirs)
        split = any(len(folder) == 2 for folder in folders)
        if split:
            # Every image must then sit in <split>/<class>/, every directory be a split or one.
            stray = sorted(f for f in self.counts if len(f) == 1)
            stray += sorted(f for f in self.dirs if len(f) == 1 and f[0] not in SPLITS)
            if stray:
                where = self.first_entry.get(stray[0]) or self.dirs[stray[0]]
                raise IngestError(
                    "bad_entry",
                    f"{where}: not inside train|test/<class>/, but the archive has a train|test "
                    "split; use one layout throughout",
                )
            folders = {f for f in folders if len(f) == 2}
        classes = sorted({folder[-1] for folder in folders})
        for name in classes:
            check_class_name(name, str(self.path))
        if len(classes) > self.limits.max_classes:
            self._too_many_classes()
        class_counts = {name: 0 for name in classes}
        split_counts = {name: 0 for name in SPLITS} if split else {}
        for folder, count in self.counts.items():
            class_counts[folder[-1]] += count
            if split:
                split_counts[folder[0]] += count
        for name in classes:
            trained = self.counts.get(("train", name), 0) if split else class_counts[name]
            if not trained:
                place = f"train/{name}/" if split else f"{name}/"
                raise IngestError(
                    "classes", f"{self.path}: class {name!r} has no images in {place}"
                )
        if len(classes) < 2:
            raise IngestError(
                "classes", f"{self.path}: {len(classes)} class(es) {classes}; at least 2 needed"
            )
        return classes, class_counts, split_counts
