"""Pictures drawn with Pillow (no matplotlib): kernel grids, feature-map grids, learning curves.

- :func:`kernel_grid`: first-layer kernels (F, C, KH, KW) as tiles, RGB when C == 3, else one
  grayscale tile per (filter, channel); each tile scaled to its own min..max.
- :func:`feature_map_grid`: one image's maps (C, H, W) of a layer, one tile per channel.
- :func:`learning_curve_png`: loss and accuracy per epoch (train and validation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.errors import ShapeError

MIN_TILE = 48  # tiles are enlarged (nearest neighbour) to at least this many pixels
GAP = 2
BACKGROUND = (255, 255, 255)
TRAIN_COLOUR = (31, 119, 180)
VAL_COLOUR = (255, 127, 14)


def _scale01(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-12:
        return np.full_like(a, 0.5)
    return (a - lo) / (hi - lo)


def _tile(a: np.ndarray) -> Image.Image:
    """(H, W) or (H, W, 3) in 0..1 -> enlarged Pillow image."""
    pixels = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L").convert("RGB")
    h, w = pixels.shape[:2]
    factor = max(1, math.ceil(MIN_TILE / max(h, w)))
    return img.resize((w * factor, h * factor), Image.Resampling.NEAREST)


def _grid(tiles: Sequence[Image.Image], columns: int | None = None) -> Image.Image:
    if not tiles:
        raise ShapeError("nothing to draw: no tiles")
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    tw, th = tiles[0].size
    grid = Image.new("RGB", (columns * (tw + GAP) + GAP, rows * (th + GAP) + GAP), (128, 128, 128))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid.paste(tile, (GAP + c * (tw + GAP), GAP + r * (th + GAP)))
    return grid


def kernel_grid(weight: np.ndarray) -> Image.Image:
    """Conv weights (F, C, KH, KW) -> grid image; RGB tiles when C == 3."""
    if weight.ndim != 4:
        raise ShapeError(f"kernel weights must be (F, C, KH, KW), got {weight.shape}")
    f, c = weight.shape[:2]
    if c == 3:
        tiles = [_tile(_scale01(weight[i].transpose(1, 2, 0))) for i in range(f)]
        return _grid(tiles)
    tiles = [_tile(_scale01(weight[i, j])) for i in range(f) for j in range(c)]
    return _grid(tiles, columns=c if c > 1 else None)


def feature_map_grid(maps: np.ndarray) -> Image.Image:
    """One sample's maps (C, H, W) -> grid image, each map scaled to its own range."""
    if maps.ndim != 3:
        raise ShapeError(f"feature maps must be (C, H, W), got {maps.shape}")
    return _grid([_tile(_scale01(m)) for m in maps])


# --- learning curve ----------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi - lo < 1e-12:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-6:
        if v >= lo - step * 1e-6:
            ticks.append(round(v, 10))
        v += step
    return ticks


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    epochs: list[int],
    series: list[tuple[str, list[float | None], tuple[int, int, int]]],
    font: Any,
) -> None:
    left, top, right, bottom = box
    values = [v for _, vs, _ in series for v in vs if v is not None and math.isfinite(v)]
    if not values:
        values = [0.0, 1.0]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.05
    lo, hi = lo - pad, hi + pad
    x0, x1 = min(epochs), max(epochs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pl, pr, pt, pb = left + 52, right - 10, top + 24, bottom - 32

    def px(e: float) -> float:
        return pl + (e - x0) / (x1 - x0) * (pr - pl)

    def py(v: float) -> float:
        return pb - (v - lo) / (hi - lo) * (pb - pt)

    draw.text((left + (right - left) // 2, top + 4), title, fill=(0, 0, 0), font=font, anchor="mt")
    for t in _nice_ticks(lo, hi):
        y = py(t)
        draw.line([(pl, y), (pr, y)], fill=(225, 225, 225))
        draw.text((pl - 6, y), f"{t:g}", fill=(60, 60, 60), font=font, anchor="rm")
    x_ticks = sorted({round(t) for t in _nice_ticks(x0, x1) if float(t).is_integer()})
    for t in x_ticks:
        if x0 <= t <= x1:
            x = px(t)
            draw.line([(x, pb), (x, pb + 4)], fill=(0, 0, 0))
            draw.text((x, pb + 6), str(t), fill=(60, 60, 60), font=font, anchor="mt")
    draw.rectangle([pl, pt, pr, pb], outline=(0, 0, 0))
    draw.text(((pl + pr) // 2, bottom - 12), "epoch", fill=(0, 0, 0), font=font, anchor="mt")
    legend_y = pt + 6
    for label, vs, colour in series:
        points = [(px(e), py(v)) for e, v in zip(epochs, vs, strict=True) if v is not None]
        if not points:
            continue
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
        draw.line([(pr - 90, legend_y + 5), (pr - 70, legend_y + 5)], fill=colour, width=2)
        draw.text((pr - 66, legend_y), label, fill=(0, 0, 0), font=font)
        legend_y += 14


def learning_curve_image(history: Sequence[dict[str, Any]]) -> Image.Image:
    """Two panels (loss, accuracy; R² for a regression) of train and validation values per
    epoch."""
    if not history:
        raise ShapeError("learning curve needs at least one epoch of history")
    epochs = [int(h["epoch"]) for h in history]
    font = ImageFont.load_default()
    img = Image.new("RGB", (960, 380), BACKGROUND)
    draw = ImageDraw.Draw(img)
    _panel(
        draw,
        (0, 0, 480, 380),
        "loss",
        epochs,
        [
            ("train", [h.get("loss") for h in history], TRAIN_COLOUR),
            ("validation", [h.get("val_loss") for h in history], VAL_COLOUR),
        ],
        font,
    )
    # a regression history has R² (unitless, <= 1) where a classifier's has accuracy
    second = "r2" if history[-1].get("r2") is not None else "accuracy"
    _panel(
        draw,
        (480, 0, 960, 380),
        "R2" if second == "r2" else "accuracy",
        epochs,
        [
            ("train", [h.get(second) for h in history], TRAIN_COLOUR),
            ("validation", [h.get(f"val_{second}") for h in history], VAL_COLOUR),
        ],
        font,
    )
    return img


def learning_curve_png(history: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Write :func:`learning_curve_image` as PNG (atomically) and return the path."""
    import io

    from core.durable import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    learning_curve_image(history).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
