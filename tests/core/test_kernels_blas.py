"""core.kernels.blas.gemm (NumPy's OpenBLAS through a function pointer) against its twin."""

from __future__ import annotations

import numpy as np
import pytest

from core.kernels import blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (3, 5, 7), (16, 150, 140), (1, 400, 120)])
def test_gemm_matches_reference(dtype: type, m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    expected = np.empty((m, n), dtype)
    blas.gemm_reference(0, a, b, expected)
    with blas.numpy_blas(1) as fptr:
        for pointer in (fptr, 0):
            out = np.full((m, n), np.nan, dtype)
            blas.gemm(pointer, a, b, out)
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_gemm_on_row_slices_and_strided_operands() -> None:
    rng = np.random.default_rng(0)
    big = rng.standard_normal((8, 12)).astype(np.float32)
    b = rng.standard_normal((12, 6)).astype(np.float32)
    out = np.empty((10, 6), np.float32)[2:6]  # row slice of a larger array
    with blas.numpy_blas(1) as fptr:
        blas.gemm(fptr, big[4:8], b, out)
        np.testing.assert_allclose(out, big[4:8] @ b, rtol=1e-5, atol=1e-5)
        strided = np.empty((4, 6), np.float32)
        blas.gemm(fptr, big[:4, ::2], b[::2], strided)  # non-unit column stride: np.dot path
        np.testing.assert_allclose(strided, big[:4, ::2] @ b[::2], rtol=1e-5, atol=1e-5)
        at = np.ascontiguousarray(big[:, :5].T)  # (5, 8)
        bt = rng.standard_normal((6, 5)).astype(np.float32)
        both = np.empty((8, 6), np.float32)
        blas.gemm(fptr, at.T, bt.T, both)  # transposed views of both operands
        np.testing.assert_allclose(both, at.T @ bt.T, rtol=1e-5, atol=1e-5)
        part = np.empty((8, 2), np.float32)
        blas.gemm(fptr, big[:, :5], at[:, 2:4], part)  # row-strided slice as b
        np.testing.assert_allclose(part, big[:, :5] @ at[:, 2:4], rtol=1e-5, atol=1e-5)


def test_numpy_blas_restores_thread_count() -> None:
    from threadpoolctl import threadpool_info

    def numpy_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if "numpy" in i["filepath"]]

    before = numpy_threads()
    with blas.numpy_blas(1):
        inside = numpy_threads()
    assert numpy_threads() == before
    assert all(t == 1 for t in inside)


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 1), (1, 2)])
def test_conv_kernels_with_numpy_blas_match_reference(stride: int, groups: int) -> None:
    from core.kernels import conv

    rng = np.random.default_rng(stride + groups)
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    oh, ow = (9 + 2 - 3) // stride + 1, (8 + 2 - 3) // stride + 1
    geometry = (stride, stride, 1, 1, 1, 1, 2)
    out, ref = np.empty((3, 6, oh, ow), np.float32), np.empty((3, 6, oh, ow), np.float32)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    grads = [
        (
            np.empty_like(x),
            np.zeros_like(w),
            np.zeros(6, np.float32),
            np.empty((2, 6, w[0].size + 1), np.float32),
        )
        for _ in range(2)
    ]
    with blas.numpy_blas(1) as fptr:
        conv.conv2d_forward(x, w, b, *geometry, out, fptr)
        conv.conv2d_backward(x, w, dout, *geometry, *grads[0], fptr)
    conv.conv2d_forward_reference(x, w, b, *geometry, ref, 0)
    conv.conv2d_backward_reference(x, w, dout, *geometry, *grads[1], 0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    for fast, slow in zip(grads[0][:3], grads[1][:3], strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-3)


def test_numpy_blas_stays_pinned_while_any_caller_is_inside() -> None:
    from threadpoolctl import threadpool_info

    def numpy_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if "numpy" in i["filepath"]]

    before = numpy_threads()
    outer = blas.numpy_blas(1)
    outer.__enter__()
    with blas.numpy_blas(1):
        pass
    assert all(t == 1 for t in numpy_threads())  # the inner exit did not restore
    outer.__exit__(None, None, None)
    assert numpy_threads() == before
