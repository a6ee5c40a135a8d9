"""Validate an uploaded data set on disk before anything trusts it: ``.npz`` files and image-folder
archives (``.zip``, ``.tar``, ``.tar.gz``).

- :func:`inspect_npz`: ``x`` (N, H, W) or (N, C, H, W), C in {1, 3}, uint8 or float32 pixels
  in 0..255; ``y`` (N,) integer labels in ``0..K-1``; optional ``class_names`` (K,) strings
  (without it K = max(y) + 1 and the classes are named "0".."K-1").
- :func:`inspect_archive`: ``<class>/<image>`` or ``train|test/<class>/<image>`` entries, each
  a PNG or JPEG (by content); class ``k`` is the k-th class name in sorted order.
- :func:`extract_archive`: the same checks, and the images written under a new directory as
  ``<split>/<class>/<n>.png|.jpg`` (no name from the archive but class and split), complete or
  not at all.
- :class:`IngestLimits`: every size limit, one frozen object (the server builds it from its
  settings).

Both read the file as a stream, never as a whole: archive entries are visited one at a time,
each image is decoded alone (at most ``max_image_bytes`` encoded, ``max_image_side`` squared
decoded), and pixel statistics accumulate in per-channel running moments (Chan et al.'s
pairwise update in float64), so memory does not grow with the upload.

Grey and colour images may be mixed in one archive: a grey image counts as RGB with three equal
channels when any image is colour. Pillow modes "1", "L" and "LA" are grey (alpha dropped);
every other mode ("RGB", "RGBA", "P" palette, "CMYK", ...) is converted to RGB.

Every refusal is an :class:`IngestError` whose ``kind`` says what went wrong (the server maps
:data:`RESOURCE_KINDS` to RESOURCE_EXHAUSTED, the rest to INVALID_ARGUMENT) and whose message
names the file or entry, the reason and the limit.
"""

from __future__ import annotations

from core.ingest.archive import extract_archive, inspect_archive
from core.ingest.errors import (
    RESOURCE_KINDS,
    DatasetSummary,
    ErrorKind,
    IngestError,
    IngestLimits,
)
from core.ingest.npz import inspect_npz

__all__ = [
    "RESOURCE_KINDS",
    "DatasetSummary",
    "ErrorKind",
    "IngestError",
    "IngestLimits",
    "extract_archive",
    "inspect_archive",
    "inspect_npz",
]
