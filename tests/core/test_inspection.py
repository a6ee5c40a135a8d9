"""The labelled pictures of `cnn inspect` (core.inspection): labels, scales, boxes, top patches.

Labels are read from the figures' own text objects (``figure_texts``), boxes from the drawn
``Rectangle`` patches: nothing is read back from pixels except where a colour is the point.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from core.explain import feature_maps, unit_box
from core.inspection.canvas import figure_texts, pixel_size, png_bytes, showable
from core.inspection.fields import fields_figure, strongest_units
from core.inspection.kernels import MAX_CHANNELS, MAX_FILTERS, kernels_figure, rgb_kernels_figure
from core.inspection.maps import feature_maps_figure
from core.inspection.page import SECTION_IDS, Page, PagePicture, render_page
from core.inspection.patches import (
    OUTSIDE,
    TopActivations,
    field_patch,
    top_activations,
    top_activations_reference,
)
from core.inspection.saliency import saliency_figure
from core.learning_curve import learning_curve_figure
from core.model import Sequential
from core.summary import ReceptiveField

#: 3x3 conv -> 2x2 pool -> 3x3 conv on 12x12 (tests/core/test_explain.py works its fields out
#: by hand: the last conv has size 8, jump 2, start 3.5).
STACK = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3},
    {"type": "avgpool2d", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel_size": 3},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def _stack_model(seed: int = 0) -> Sequential:
    return Sequential.from_spec(STACK, (1, 12, 12), dtype=np.float64, seed=seed)


def _png_size(fig: object) -> tuple[int, int]:
    with Image.open(io.BytesIO(png_bytes(fig))) as im:  # type: ignore[arg-type]
        return im.size


def test_kernel_figure_labels_every_filter_and_channel_on_one_symmetric_scale() -> None:
    weight = np.random.default_rng(0).normal(size=(6, 2, 5, 5)).astype(np.float32)
    weight[0, 0, 2, 2] = -5.0  # the largest magnitude (normal samples stay below 5), negative
    fig = kernels_figure(weight, "layer 0 conv2d")
    texts = figure_texts(fig)
    assert {f"f{i}" for i in range(6)} | {"c0", "c1", "filter", "input channel", "weight"} <= set(
        texts
    )
    assert any(t.startswith("layer 0 conv2d: kernels 5×5, 6 filters × 2 channels") for t in texts)
    (image,) = fig.axes[0].images
    assert image.get_clim() == (-5.0, 5.0)  # centred on zero, the layer's max |w|
    assert image.get_cmap().name.startswith("RdBu_r")
    assert _png_size(fig) == pixel_size(fig)


def test_kernel_figure_of_a_wide_layer_shows_the_first_filters_and_says_so() -> None:
    weight = np.ones((40, 20, 3, 3), np.float32)
    texts = figure_texts(kernels_figure(weight, "layer 4 conv2d"))
    assert f"f{MAX_FILTERS - 1}" in texts and f"f{MAX_FILTERS}" not in texts
    assert f"c{MAX_CHANNELS - 1}" in texts and f"c{MAX_CHANNELS}" not in texts
    assert any("first 32 of 40 filters × first 16 of 20 channels" in t for t in texts)


def test_rgb_kernels_are_colour_images_with_zero_at_mid_grey() -> None:
    weight = np.zeros((4, 3, 3, 3), np.float32)
    weight[1, 0] = 2.0  # filter 1: red channel only, the layer's largest weight
    fig = rgb_kernels_figure(weight, "layer 0 conv2d")
    assert {"f0", "f1", "f2", "f3"} <= set(figure_texts(fig))
    zero = fig.axes[0].images[0].get_array()
    red = fig.axes[1].images[0].get_array()
    assert np.allclose(zero, 0.5)
    assert np.allclose(red[..., 0], 1.0) and np.allclose(red[..., 1:], 0.5)


def test_feature_maps_share_one_scale_and_are_labelled_by_channel() -> None:
    maps = np.stack([np.full((4, 4), 0.1), np.linspace(-2.0, 1.0, 16).reshape(4, 4)])
    fig = feature_maps_figure(maps, "layer 0 conv2d")
    texts = figure_texts(fig)
    assert {"ch 0", "ch 1"} <= set(texts)
    assert any("activation" in t for t in texts)  # the colour bar's label
    limits = {ax.images[0].get_clim() for ax in fig.axes if ax.images}
    assert limits == {(-2.0, 2.0)}  # one symmetric scale for the signed layer
    nonneg = feature_maps_figure(np.abs(maps), "layer 0 conv2d")
    assert {ax.images[0].get_clim() for ax in nonneg.axes if ax.images} == {(0.0, 2.0)}


def test_drawn_boxes_are_the_unit_boxes_of_each_channels_argmax_in_the_hand_computed_stack() -> (
    None
):
    model = _stack_model(seed=3)
    x = np.random.default_rng(1).standard_normal((1, 1, 12, 12))
    maps = feature_maps(model, x, [2])[2][0]  # (4, 3, 3): the second conv's maps
    field = model.summary().rows[2].field
    assert (field.size, field.jump, field.start) == ((8, 8), (2, 2), (3.5, 3.5))
    units = strongest_units(maps, field, 12, 12)
    fig = fields_figure(showable(x[0], (-4.0, 4.0)), units, field, "layer 2 conv2d")
    tiles = [ax for ax in fig.axes if ax.patches]
    assert len(tiles) == 4
    for c, ax in enumerate(tiles):
        y, xx = np.unravel_index(int(np.argmax(maps[c])), maps[c].shape)
        box = unit_box(field, int(y), int(xx), 12, 12)
        (rect,) = ax.patches
        # the rectangle runs along pixel edges: column `left` starts at left - 0.5
        assert rect.get_xy() == (box.left - 0.5, box.top - 0.5)
        assert (rect.get_width(), rect.get_height()) == (box.width, box.height)
        assert ax.get_title() == f"ch {c} @ ({y}, {xx})"
    texts = figure_texts(fig)
    assert any("receptive field 8×8, jump 2, start 3.5" in t for t in texts)


def test_streamed_top_activations_equal_the_all_at_once_reference() -> None:
    model = _stack_model(seed=5)
    x = np.random.default_rng(2).standard_normal((23, 1, 12, 12))
    expected = top_activations_reference(model, [0, 2], x)
    for batch in (1, 4, 23):
        got = top_activations(model, [0, 2], (x[i : i + batch] for i in range(0, 23, batch)))
        for i in (0, 2):
            np.testing.assert_allclose(got[i].values, expected[i].values)
            for name in ("samples", "ys", "xs"):
                np.testing.assert_array_equal(getattr(got[i], name), getattr(expected[i], name))


def test_equal_activations_keep_the_earlier_sample_first_across_batches() -> None:
    maps = np.zeros((1, 1, 2, 2))
    maps[0, 0, 1, 0] = 5.0
    top = TopActivations(filters=1, k=3)
    for sample in range(4):  # four samples with the same peak, one batch each
        top.update(maps, first_sample=sample)
    assert top.samples.tolist() == [[0, 1, 2]]
    assert (top.ys.tolist(), top.xs.tolist()) == ([[1, 1, 1]], [[0, 0, 0]])


def test_top_activations_with_fewer_images_than_k_leave_empty_ranks() -> None:
    top = TopActivations(filters=2, k=9)
    top.update(np.arange(2 * 2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2, 2), first_sample=0)
    assert top.samples[:, :2].tolist() == [[1, 0], [1, 0]]
    assert (top.samples[:, 2:] == -1).all()


def test_a_patch_keeps_its_place_in_the_field_where_the_field_leaves_the_image() -> None:
    image = np.arange(36, dtype=np.float64).reshape(6, 6) / 36
    field = ReceptiveField().through((5, 5), (1, 1), (2, 2), (1, 1))  # size 5, start 0
    tile = field_patch(image, field, 0, 0)  # sees rows/cols -2..2: the first two are outside
    assert tile.shape == (5, 5, 3)
    assert np.allclose(tile[:2, :], OUTSIDE) and np.allclose(tile[:, :2], OUTSIDE)
    np.testing.assert_allclose(tile[2:, 2:, 0], image[:3, :3])


def test_saliency_figure_has_both_panels_and_a_labelled_scale() -> None:
    sal = np.zeros((8, 8))
    sal[2:4, 2:4] = 1.0
    fig = saliency_figure(np.full((8, 8), 0.5), sal, "saliency of class '7'")
    texts = set(figure_texts(fig))
    assert {"image + saliency", "saliency", "saliency of class '7'", "|∂ logit / ∂ input|"} <= texts


def test_learning_curve_is_drawn_with_labelled_axes_and_legend() -> None:
    history = [
        {"epoch": e, "loss": 1 / e, "accuracy": 0.5, "val_loss": 1.1 / e, "val_accuracy": 0.4}
        for e in (1, 2, 3)
    ]
    fig = learning_curve_figure(history)
    texts = figure_texts(fig)
    assert {"loss", "accuracy", "epoch", "train", "validation"} <= set(texts)
    assert _png_size(fig) == (960, 380)
    regression = [{"epoch": 1, "loss": 0.3, "r2": 0.7, "val_loss": None, "val_r2": None}]
    texts = figure_texts(learning_curve_figure(regression))
    assert "R²" in texts and "validation" not in texts  # no validation values, no line


def test_page_has_every_section_and_loads_nothing_from_elsewhere() -> None:
    page = Page("m version 1", "image x.png")
    page.pictures.append(PagePicture("kernels", "k", b"\x89PNG fake"))
    page.note("top-patches", "the data set <shapes> is not available")
    text = render_page(page)
    for section in SECTION_IDS:
        assert f'<section id="{section}"><h2>' in text
    assert "&lt;shapes&gt;" in text  # notes are escaped
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert "<script" not in text and "<link" not in text


@pytest.mark.parametrize("shape", [(1, 5, 7), (3, 5, 7)])
def test_showable_scales_the_pixel_range_to_0_1(shape: tuple[int, int, int]) -> None:
    pixels = np.full(shape, 8.0)
    shown = showable(pixels, (0.0, 16.0))
    assert shown.shape == ((5, 7) if shape[0] == 1 else (5, 7, 3))
    assert np.allclose(shown, 0.5)
