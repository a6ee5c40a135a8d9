"""Image sizes and per-channel pixel moments, folded in one image (or band of rows) at a
time."""

from __future__ import annotations

import numpy as np

from core.images import ImageDecodeError, ImageTooLargeError, image_pixels, load_image, read_header
from core.ingest.errors import IngestError, IngestLimits

#: Pillow modes counted as one grey channel; all others are converted to RGB.
GREY_MODES = frozenset({"1", "L", "LA"})
VALUES_PER_BLOCK = 1 << 20  # pixel values converted to float64 at once (8 MiB)


class Moments:
    """Running count, mean and sum of squared deviations (M2) per channel.

    Blocks merge with Chan et al.'s pairwise update, ``delta = mean_b - mean_a``,
    ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / (n_a + n_b)``: no catastrophic cancellation
    as with raw sums of squares, and each block is converted to float64 alone.
    """

    def __init__(self, channels: int) -> None:
        self.count = np.zeros(channels, dtype=np.int64)
        self.mean = np.zeros(channels, dtype=np.float64)
        self.m2 = np.zeros(channels, dtype=np.float64)

    def add(self, channel: int, values: np.ndarray) -> None:
        """Fold the pixel values of one channel (any shape) in."""
        block = values.astype(np.float64).ravel()
        if block.size:
            mean = float(block.mean())
            self.merge(channel, block.size, mean, float(np.square(block - mean).sum()))

    def merge(self, channel: int, n: int, mean: float, m2: float) -> None:
        n_a = int(self.count[channel])
        total = n_a + n
        delta = mean - self.mean[channel]
        self.mean[channel] += delta * n / total
        self.m2[channel] += m2 + delta * delta * n_a * n / total
        self.count[channel] = total

    def add_image(self, pixels: np.ndarray) -> None:
        """Fold in a (C, H, W) image, a band of rows at a time (bounded float64 copies)."""
        _, height, width = pixels.shape
        rows = max(1, VALUES_PER_BLOCK // width)
        for channel in range(pixels.shape[0]):
            for top in range(0, height, rows):
                self.add(channel, pixels[channel, top : top + rows])

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


class ImageStats:
    """Sizes and pixel moments of the images seen so far, grey and colour kept apart."""

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.grey = Moments(1)
        self.rgb = Moments(3)
        self.pixels = 0
        self.heights = (0, 0)  # (min, max) over the images seen
        self.widths = (0, 0)

    def add(self, data: bytes, what: str) -> str:
        """Check the header against the limits, then decode ``data`` and fold its pixels in;
        returns the suffix of its format (".png", ".jpg").

        Raises:
            IngestError: too_large (a side, the total decoded pixels) or undecodable.
        """
        try:
            header = read_header(data, what, self.limits.max_image_side)
        except ImageTooLargeError as exc:
            raise IngestError("too_large", f"{exc} (max_image_side)") from None
        except ImageDecodeError as exc:
            raise IngestError("undecodable", str(exc)) from None
        width, height = header.size
        self.pixels += width * height
        if self.pixels > self.limits.max_decoded_pixels:
            raise IngestError(
                "too_large",
                f"{what}: the images decode to more than {self.limits.max_decoded_pixels} "
                f"pixels in total (max_decoded_pixels)",
            )
        channels = 1 if header.mode in GREY_MODES else 3
        try:
            pixels = image_pixels(load_image(header, what), channels, None, what)
        except ImageDecodeError as exc:
            raise IngestError("undecodable", str(exc)) from None
        (self.grey if channels == 1 else self.rgb).add_image(pixels)
        first = self.heights == (0, 0)
        self.heights = _span(self.heights, height, first)
        self.widths = _span(self.widths, width, first)
        return ".png" if header.format == "PNG" else ".jpg"

    def channels(self) -> int:
        return 3 if self.rgb.count[0] else 1

    def moments(self) -> Moments:
        """The data set's moments: grey alone, or RGB with each grey pixel counted in all three
        channels (the grey image converted to RGB)."""
        if not self.rgb.count[0]:
            return self.grey
        if self.grey.count[0]:
            for channel in range(3):
                self.rgb.merge(
                    channel, int(self.grey.count[0]), float(self.grey.mean[0]), self.grey.m2[0]
                )
            self.grey = Moments(1)
        return self.rgb


def _span(span: tuple[int, int], value: int, first: bool) -> tuple[int, int]:
    """(min, max) widened to take in ``value``; ``first`` starts a new span."""
    return (value, value) if first else (min(span[0], value), max(span[1], value))
