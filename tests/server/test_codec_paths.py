"""The codecs' fast per-request paths against their slow, obvious twins.

`server.codec` and `server.images` here; `server.codec_v2` in tests/server_v2codec, a pytest
process of its own: this one may import tritonclient, whose messages clash with ours
(see test_v2_api.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.artifacts import InputSpec
from core.datasets import Normalisation
from proto.cnn.v1 import classifier_pb2 as pb
from server import codec
from server.errors import InvalidInput
from server.images import check_pixels, check_pixels_reference
from server.model import ServedModel

SPEC = InputSpec(1, 8, 8, "uint8", (0.0, 16.0))
LIMITS = codec.Limits(max_images_per_request=256, max_image_side=4096)
# Pixel ranges that exercise every branch: a uint8 byte scan, no uint8 check at all (0..255),
# a lower bound > 0, fractional bounds, negative ranges and infinite bounds (where only the
# finiteness check can reject an infinity; no artifact has them, see `_spec`).
RANGES = [
    (0.0, 16.0),
    (0.0, 255.0),
    (2.5, 200.0),
    (-1.0, 1.0),
    (0.0, 1.0),
    (-300.0, 300.0),
    (-math.inf, math.inf),
]


def _model(spec: InputSpec = SPEC, num_classes: int = 10) -> ServedModel:
    return ServedModel(
        name="digits",
        version=1,
        spec=spec,
        normalisation=Normalisation(mean=[4.9], std=[6.0]),
        class_names=tuple(f"c{i}" for i in range(num_classes)),
        meta={},
        network=None,
        batcher=None,  # type: ignore[arg-type]
    )


def _spec(dtype: str, lo: float, hi: float) -> InputSpec:
    """A 1x8x8 spec with pixel range [lo, hi]. InputSpec refuses infinite bounds, so those are
    set past its validation: the fast path must still agree with the reference on them."""
    if math.isfinite(lo) and math.isfinite(hi):
        return InputSpec(1, 8, 8, dtype, (lo, hi))  # type: ignore[arg-type]
    spec = InputSpec(1, 8, 8, dtype, (0.0, 1.0))  # type: ignore[arg-type]
    object.__setattr__(spec, "pixel_range", (lo, hi))  # frozen: bypassed on purpose
    return spec


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    """The result, or the error type and message: what a client would see."""
    try:
        return fn(*args)
    except InvalidInput as exc:
        return (type(exc).__name__, str(exc))


def _probability_rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Softmax-like rows, or quantised ones full of ties, with some -0.0/inf/NaN."""
    if rng.random() < 0.5:
        p = rng.random((n, k))
        p /= p.sum(axis=1, keepdims=True)
    else:
        p = rng.integers(0, 4, size=(n, k)) / 4.0
    p = p.astype(np.float32)
    for special in (-0.0, math.inf, -math.inf, math.nan):
        if rng.random() < 0.15:
            p[rng.integers(n), rng.integers(k)] = special
    return p


# --- top-k ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_rank_top_k_is_the_stable_argsort_of_minus_p(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(500):
        n, num = int(rng.choice([1, 1, 2, 3, 7, 40])), int(rng.choice([1, 2, 10, 10, 33, 100]))
        p = _probability_rows(rng, n, num)
        k = int(rng.integers(1, num + 1))
        got = codec.rank_top_k(p, k)
        assert got == codec.rank_top_k_reference(p, k) or _same_with_nan(got, p, k)


def _same_with_nan(got: list[tuple[list[int], list[float]]], p: np.ndarray, k: int) -> bool:
    """== fails on NaN values; compare the indices and the values' bits instead."""
    want = codec.rank_top_k_reference(p, k)
    return [i for i, _ in got] == [i for i, _ in want] and np.array_equal(
        [v for _, v in got], [v for _, v in want], equal_nan=True
    )


def test_rank_top_k_keeps_tied_classes_in_index_order() -> None:
    p = np.array([[0.25, 0.5, 0.25, 0.0, 0.5, -0.0]], np.float32)
    assert codec.rank_top_k(p, 6) == [([1, 4, 0, 2, 3, 5], [0.5, 0.5, 0.25, 0.25, 0.0, -0.0])]


def test_rank_top_k_puts_nan_last_like_numpy() -> None:
    p = np.array([[0.1, math.nan, 0.7, 0.2]], np.float32)
    idx, _ = codec.rank_top_k(p, 4)[0]
    assert idx == [2, 3, 0, 1]


@pytest.mark.parametrize("top_k", [0, 1, 3, 10, 11])
def test_encode_classify_matches_argsort_of_every_row(top_k: int) -> None:
    rng = np.random.default_rng(top_k)
    model = _model()
    for n in (1, 2, 5, 30):
        p = _probability_rows(rng, n, 10)
        response = codec.encode_classify(model, p, top_k)
        k = min(top_k or codec.DEFAULT_TOP_K, 10)
        order = np.argsort(-p, axis=1, kind="stable")[:, :k]
        assert (response.model, response.version, len(response.results)) == ("digits", 1, n)
        for row, result in zip(range(n), response.results, strict=True):
            assert list(result.class_indices) == order[row].tolist()
            assert list(result.class_names) == [f"c{i}" for i in order[row]]
            np.testing.assert_array_equal(
                np.asarray(result.probabilities, np.float32), p[row, order[row]]
            )


# --- pixel checks --------------------------------------------------------------------------


@pytest.mark.parametrize(("lo", "hi"), RANGES)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_check_pixels_accepts_and_rejects_like_the_reference(
    lo: float, hi: float, dtype: str
) -> None:
    spec = _spec(dtype, lo, hi)
    rng = np.random.default_rng(RANGES.index((lo, hi)))
    specials = (math.nan, math.inf, -math.inf, lo, hi, lo - 0.5, hi + 0.5, -0.0, 255.0, 3e38)
    for _ in range(300):
        n = int(rng.choice([1, 2, 40]))  # 40 uint8 images are 2,560 bytes: numpy's branch
        if dtype == "uint8":
            x = rng.integers(0, 256, size=(n, 1, 8, 8)).astype(np.uint8)
            if rng.random() < 0.7:
                x = np.clip(x, math.ceil(max(lo, 0)), math.floor(min(hi, 255))).astype(np.uint8)
            if rng.random() < 0.3:
                x.flat[rng.integers(x.size)] = rng.integers(0, 256)
        else:
            x = rng.uniform(max(lo, -1e3), min(hi, 1e3), size=(n, 1, 8, 8)).astype(np.float32)
            for _ in range(int(rng.integers(0, 3))):
                x.flat[rng.integers(x.size)] = rng.choice(specials)
        got = _outcome(check_pixels, x, spec, "images[2].tensor")
        want = _outcome(check_pixels_reference, x, spec, "images[2].tensor")
        if isinstance(want, tuple):
            assert got == want
            assert want[1].startswith("images[2].tensor ")
        else:
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)


def test_float_errors_name_the_field_and_the_first_bad_element() -> None:
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 5, 1] = 99.0  # out of range, but the NaN/inf check comes first
    x[0, 0, 6, 2] = -math.inf
    with pytest.raises(InvalidInput, match=r"^batch contains NaN or infinity \(first at flat e"):
        check_pixels(x, SPEC, "batch")
    x[0, 0, 6, 2] = 0.0
    with pytest.raises(InvalidInput, match=r"^batch has values in \[0, 99\], outside the model"):
        check_pixels(x, SPEC, "batch")


# --- decode --------------------------------------------------------------------------------


def _tensor(x: np.ndarray) -> pb.Tensor:
    dtype = pb.DATA_TYPE_UINT8 if x.dtype == np.uint8 else pb.DATA_TYPE_FLOAT32
    return pb.Tensor(dtype=dtype, shape=list(x.shape), data=x.tobytes())


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("n", [1, 3])
def test_decoded_raw_tensors_are_the_pixels_as_float32(dtype: type, n: int) -> None:
    model = _model()
    pixels = np.random.default_rng(n).integers(0, 17, size=(n, 1, 8, 8)).astype(dtype)
    want = pixels.astype(np.float64).astype(np.float32)
    batch = codec.decode_images(pb.ClassifyRequest(batch=_tensor(pixels)), model, LIMITS)
    images = pb.ClassifyRequest(images=[pb.Image(tensor=_tensor(im)) for im in pixels])
    squeezed = pb.ClassifyRequest(images=[pb.Image(tensor=_tensor(im[0])) for im in pixels])
    for request in (images, squeezed):
        got = codec.decode_images(request, model, LIMITS)
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got, want)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, want)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            math.nan,
            "contains NaN or infinity (first at flat element 9); pixel values must be finite",
        ),
        (
            math.inf,
            "contains NaN or infinity (first at flat element 9); pixel values must be finite",
        ),
        (16.5, "has values in [0, 16.5], outside the model's pixel range [0, 16]"),
        (-1.0, "has values in [-1, 15], outside the model's pixel range [0, 16]"),
    ],
)
def test_decode_errors_name_the_field(bad: float, message: str) -> None:
    model = _model()
    x = (np.arange(64, dtype=np.float32) % 16).reshape(1, 1, 8, 8)
    x[0, 0, 1, 1] = bad
    good = _tensor(np.zeros((1, 8, 8), np.float32))
    cases = [
        ("batch", pb.ClassifyRequest(batch=_tensor(x))),
        (
            "images[1].tensor",
            pb.ClassifyRequest(images=[pb.Image(tensor=t) for t in (good, _tensor(x[0]))]),
        ),
    ]
    for field, request in cases:
        with pytest.raises(InvalidInput) as info:
            codec.decode_images(request, model, LIMITS)
        assert str(info.value) == f"{field} {message}"


def test_out_of_range_uint8_is_rejected_naming_the_field() -> None:
    x = np.zeros((1, 8, 8), np.uint8)
    x[0, 7, 7] = 17
    request = pb.ClassifyRequest(images=[pb.Image(tensor=_tensor(x))])
    with pytest.raises(InvalidInput, match=r"^images\[0\]\.tensor has values in \[0, 17\]"):
        codec.decode_images(request, _model(), LIMITS)
