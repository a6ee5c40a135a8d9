"""Domain errors of the CNN library.

Every error is a ``ValueError`` subclass (through :class:`CnnError` + ``ValueError``) whose message
names the offending field, the shape and the limit.
"""

from __future__ import annotations


class CnnError(Exception):
    """Base class of every error raised by ``core``."""


class SpecError(CnnError, ValueError):
    """An architecture / layer / optimizer / schedule specification is invalid."""


class ShapeError(CnnError, ValueError):
    """An array or per-sample shape is incompatible with a layer."""


class ArtifactError(CnnError, ValueError):
    """A model artifact is missing, corrupt or of an unsupported format."""


class DatasetError(CnnError, ValueError):
    """A data set cannot be found or is malformed."""
