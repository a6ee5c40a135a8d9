"""Raw tensors from either API -> arrays the model can take: the checks both codecs make.

The codecs know their wire layout (which field holds the element type, the shape, the
bytes); what a tensor must satisfy is decided here, once, in this order, before any data is
read: every dimension >= 1, the model's input shape, the batch-size limit, then the byte count.
Values (NaN/inf, pixel range) are checked afterwards by `server.images.check_pixels`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from server.errors import InvalidInput, LimitExceeded
from server.images import check_image_shape

if TYPE_CHECKING:
    from core.artifacts import InputSpec

#: The element types a model input may arrive in (little-endian on the wire), by the name
#: `InputSpec.dtype` uses. Each codec maps its own wire names onto these.
INPUT_DTYPES: dict[str, np.dtype] = {"uint8": np.dtype("<u1"), "float32": np.dtype("<f4")}


def check_tensor_shape(
    shape: tuple[int, ...], spec: InputSpec, field: str, *, max_images: int | None
) -> int:
    """Check a tensor's shape before its data is touched; return its element count.

    With ``max_images`` None the tensor is one image, (C, H, W) or (H, W) for one channel;
    otherwise a batch (N, C, H, W) with N <= ``max_images``.

    Raises:
        InvalidInput: a dimension < 1, or not the model's input shape (names `field`).
        LimitExceeded: a batch of more than ``max_images`` images.
    """
    if not shape or min(shape) < 1:
        raise InvalidInput(f"{field}.shape is {shape}; every dimension must be >= 1")
    check_image_shape(shape, spec, field, max_images is not None)
    if max_images is not None and shape[0] > max_images:
        raise LimitExceeded(
            f"{field} has {shape[0]} images; max_images_per_request is {max_images}"
        )
    return math.prod(shape)


def array_from_bytes(
    data: bytes,
    dtype: np.dtype,
    shape: tuple[int, ...],
    count: int,
    field: str,
    type_name: str | None = None,
) -> np.ndarray:
    """``data`` as a read-only array of ``shape`` (``count`` elements of ``dtype``), no copy.

    Raises:
        InvalidInput: the byte count is not ``count`` x itemsize; names `field` (the bytes)
            and the element type (the wire's ``type_name``, else numpy's name of ``dtype``).
    """
    expected = count * dtype.itemsize
    if len(data) != expected:
        # dtype.name costs ~1.5 us: only ever read on this error path.
        shown = type_name or dtype.name
        raise InvalidInput(
            f"{field} has {len(data)} bytes; shape {shape} of {shown} needs {expected} bytes"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)
