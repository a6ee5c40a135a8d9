"""Everything `cnn inspect` writes for one model and one image, and the page that shows it.

:func:`inspect_model` takes a loaded model version, the image as model input (raw pixels
(C, H, W) in the model's pixel range: ``core.artifacts.image_input``) and optionally the
model's test split, and writes into a directory, for every conv layer ``i``:

- ``kernels_layer<i>.png`` (and ``kernels_rgb_layer<i>.png`` for a first layer on RGB),
- ``features_layer<i>.png``, ``fields_layer<i>.png``,
- ``top_patches_layer<i>.png`` when the test split is given,

plus ``saliency.png`` (of the predicted class), the version's ``learning_curve.png`` and
``confusion_matrix.png`` when it has them, and ``index.html`` (:mod:`core.inspection.page`)
with all of them inlined. Whatever cannot be drawn is a note on the page, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.artifacts import LEARNING_CURVE_PNG, InputRangeError, preprocess
from core.confusion_plot import CONFUSION_MATRIX_PNG, confusion_matrix_image_bytes
from core.durable import atomic_write_bytes
from core.errors import ShapeError
from core.evaluation import EvaluationReport
from core.explain import feature_maps, saliency
from core.images import ImageDecodeError, conform_pixels
from core.inspection.canvas import figure_texts, pixel_size, png_bytes, showable
from core.inspection.fields import field_text, fields_figure, pair_text, strongest_units
from core.inspection.kernels import kernels_figure, rgb_kernels_figure
from core.inspection.maps import feature_maps_figure
from core.inspection.page import Page, PagePicture, render_page
from core.inspection.patches import TOP_K, patches_figure, top_activations
from core.inspection.saliency import saliency_figure
from core.summary import summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from core.artifacts import LoadedModel
    from core.summary import Summary

INDEX_HTML = "index.html"
#: Test images per forward pass while looking for the top patches (memory: one batch's maps).
PATCH_BATCH = 128
TOP_CLASSES = 5


@dataclass(frozen=True)
class TestImages:
    """A model's test split: uint8 images (N, C, H, W) as the data set stores them (any size;
    brought to the model's input like an uploaded image), and a description of the source."""

    images: np.ndarray
    source: str


@dataclass(frozen=True)
class Picture:
    """A PNG written: its section on the page, pixel size and every text it shows (empty for a
    picture copied from the model version)."""

    path: Path
    section: str
    size: tuple[int, int]
    texts: tuple[str, ...]


@dataclass
class Inspection:
    """What :func:`inspect_model` wrote: the pictures in page order, the page, the notes of
    sections with nothing (or not everything) to show, and the top classes (name, probability)."""

    pictures: list[Picture] = field(default_factory=list)
    page: Path | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)
    prediction: list[tuple[str, float]] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [p.path for p in self.pictures] + ([self.page] if self.page else [])


class _Writer:
    """Writes pictures into ``out_dir`` and collects them for the page."""

    def __init__(self, out_dir: Path, page: Page, result: Inspection) -> None:
        self.out_dir, self.page, self.result = out_dir, page, result

    def figure(self, section: str, name: str, fig: Figure, caption: str) -> None:
        data = png_bytes(fig)  # draws the figure: its texts are laid out after this
        self.png(section, name, data, caption, pixel_size(fig), tuple(figure_texts(fig, False)))

    def png(
        self,
        section: str,
        name: str,
        data: bytes,
        caption: str,
        size: tuple[int, int] | None = None,
        texts: tuple[str, ...] = (),
    ) -> None:
        path = self.out_dir / name
        atomic_write_bytes(path, data)
        if size is None:
            from PIL import Image

            with Image.open(path) as im:
                size = im.size
        self.result.pictures.append(Picture(path, section, size, texts))
        self.page.pictures.append(PagePicture(section, caption, data))

    def note(self, section: str, text: str) -> None:
        self.page.note(section, text)
        self.result.notes.setdefault(section, []).append(text)


def _layer_table(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The rows of `cnn summary` (core.summary.Summary) as page table cells."""
    header = ["#", "layer", "output shape", "params", "RF size", "jump", "start"]
    rows = [["", "input", "×".join(map(str, summary.input_shape)), "", "1", "1", "0"]]
    for r in summary.rows:
        f = r.field
        rf = (
            ["global", "—", "—"]
            if f.is_global
            else [pair_text(f.size), pair_text(f.jump), pair_text(f.start)]
        )
        name = r.type_name + (f" {r.details}" if r.details else "")
        shape = "×".join(map(str, r.output_shape))
        rows.append([str(r.index), name, shape, f"{r.params + r.buffers:,}", *rf])
    return header, rows


def _test_batches(test: TestImages, loaded: LoadedModel, batch: int) -> Iterator[np.ndarray]:
    meta = loaded.meta
    for start in range(0, test.images.shape[0], batch):
        raw = np.stack(
            [
                conform_pixels(img, meta.input.shape, meta.input.resize)
                for img in test.images[start : start + batch]
            ]
        )
        yield preprocess(meta, raw)


def _top_patches(
    w: _Writer,
    loaded: LoadedModel,
    conv: list[int],
    summary: Summary,
    test: TestImages,
    batch: int,
) -> None:
    meta = loaded.meta
    section = "top-patches"
    count = int(test.images.shape[0])
    if count == 0:
        w.note(section, f"the test split ({test.source}) holds no images")
        return
    try:
        tops = top_activations(loaded.model, conv, _test_batches(test, loaded, batch))
    except (InputRangeError, ImageDecodeError, ShapeError) as exc:
        w.note(section, f"the test split ({test.source}) does not fit the model: {exc}")
        return

    def image_of(index: int) -> np.ndarray:
        raw = conform_pixels(test.images[index], meta.input.shape, meta.input.resize)
        return showable(raw, meta.input.pixel_range)

    for i in conv:
        field_ = summary.rows[i].field
        title = f"layer {i} conv2d"
        if field_.is_global:
            w.note(section, f"{title}: the receptive field is global, no patch to crop")
            continue
        fig = patches_figure(tops[i], field_, image_of, title)
        caption = (
            f"{title}: the {TOP_K} of {count:,} test images ({test.source}) whose strongest "
            f"unit responds most to each filter, cropped to that unit's {field_text(field_)}"
        )
        w.figure(section, f"top_patches_layer{i}.png", fig, caption)


def inspect_model(
    loaded: LoadedModel,
    pixels: np.ndarray,
    out_dir: Path,
    *,
    image_name: str = "image",
    test: TestImages | None = None,
    test_note: str = "no test split was given",
    batch: int = PATCH_BATCH,
) -> Inspection:
    """Write the pictures and ``index.html`` of ``loaded`` looking at ``pixels`` (C, H, W, raw,
    in the model's pixel range) into ``out_dir``; ``test_note`` says on the page why the top
    patches are missing when ``test`` is None.

    Raises:
        core.errors.ShapeError, InputRangeError: ``pixels`` do not fit the model.
    """
    model, meta = loaded.model, loaded.meta
    out_dir.mkdir(parents=True, exist_ok=True)
    x = preprocess(meta, pixels[None])
    c, h, wd = meta.input.shape
    version = f" version {meta.version}" if meta.version else ""
    page = Page(
        title=f"{meta.name}{version}: inside the network",
        subtitle=f"image {image_name} as the model sees it ({c}×{h}×{wd}); "
        + (f"test split: {test.source}" if test is not None else test_note),
    )
    result = Inspection()
    w = _Writer(out_dir, page, result)
    shown = showable(pixels, meta.input.pixel_range)

    # prediction
    if meta.task == "classification":
        probs = model.predict_proba(x)[0]
        order = np.argsort(-probs, kind="stable")[:TOP_CLASSES]
        result.prediction = [(meta.class_names[k], float(probs[k])) for k in order]
        page.tables["prediction"] = (
            ["rank", "class", "probability"],
            [[str(r + 1), name, f"{p:.2%}"] for r, (name, p) in enumerate(result.prediction)],
        )
        target, target_name = int(order[0]), f"class {meta.class_names[int(order[0])]!r}"
    else:
        values = loaded.regress(pixels[None])[0]
        page.tables["prediction"] = (
            ["#", "target", "value"],
            [
                [str(k), name, f"{v:.4g}"]
                for k, (name, v) in enumerate(zip(meta.target_names, values, strict=True))
            ],
        )
        target, target_name = 0, f"target {meta.target_names[0]!r}"

    summary = summarize(model)
    page.tables["layers"] = _layer_table(summary)

    conv = [i for i, layer in enumerate(model.layers) if layer.type_name == "conv2d"]
    if not conv:
        for section in ("kernels", "feature-maps", "receptive-fields", "top-patches"):
            w.note(section, "the model has no conv layer")
    maps = feature_maps(model, x, conv) if conv else {}
    for n, i in enumerate(conv):
        title = f"layer {i} conv2d"
        weight = model.layers[i].parameters()["weight"].value
        w.figure(
            "kernels",
            f"kernels_layer{i}.png",
            kernels_figure(weight, title),
            f"{title}: weights per filter (rows) and input channel (columns); red > 0 > blue",
        )
        if n == 0 and weight.shape[1] == 3:
            w.figure(
                "kernels",
                f"kernels_rgb_layer{i}.png",
                rgb_kernels_figure(weight, title),
                f"{title}: each filter's RGB weights as a colour image",
            )
        w.figure(
            "feature-maps",
            f"features_layer{i}.png",
            feature_maps_figure(maps[i][0], title),
            f"{title}: the image's feature maps, one colour scale for the layer",
        )
        field_ = summary.rows[i].field
        if field_.is_global:
            w.note("receptive-fields", f"{title}: the receptive field is global")
            continue
        units = strongest_units(maps[i][0], field_, h, wd)
        w.figure(
            "receptive-fields",
            f"fields_layer{i}.png",
            fields_figure(shown, units, field_, title),
            f"{title}: {field_text(field_)}; the box the most active unit of each channel sees",
        )

    if conv and test is not None:
        _top_patches(w, loaded, conv, summary, test, batch)
    elif conv:
        w.note("top-patches", f"skipped: {test_note}")

    sal = saliency(model, x, [target])[0]
    w.figure(
        "saliency",
        "saliency.png",
        saliency_figure(shown, sal, f"saliency of {target_name}"),
        f"|∂ logit / ∂ input| of {target_name} (vanilla gradient, the library's own backprop)",
    )

    _stored_pictures(w, loaded)
    page_path = out_dir / INDEX_HTML
    atomic_write_bytes(page_path, render_page(page).encode("utf-8"))
    result.page = page_path
    return result


def _stored_pictures(w: _Writer, loaded: LoadedModel) -> None:
    """The version's learning curve and confusion matrix (drawn from its evaluation report
    when the picture itself is missing)."""
    directory = loaded.path
    curve = directory / LEARNING_CURVE_PNG if directory else None
    if curve is not None and curve.is_file():
        w.png(
            "learning-curve", LEARNING_CURVE_PNG, curve.read_bytes(), "loss and accuracy per epoch"
        )
    else:
        w.note("learning-curve", "the model version has no learning curve (no training history)")
    matrix = directory / CONFUSION_MATRIX_PNG if directory else None
    report = loaded.evaluation
    if matrix is not None and matrix.is_file():
        data = matrix.read_bytes()
    elif isinstance(report, EvaluationReport):
        data = confusion_matrix_image_bytes(report)
    else:
        why = (
            "a regression model has none"
            if loaded.meta.task == "regression"
            else "the version has no evaluation report (its data set had no test split)"
        )
        w.note("confusion-matrix", f"no confusion matrix: {why}")
        return
    w.png(
        "confusion-matrix",
        CONFUSION_MATRIX_PNG,
        data,
        "the test split: rows true, columns predicted",
    )
