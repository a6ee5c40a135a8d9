"""float32 GEMM through NumPy's own OpenBLAS, callable from Numba kernels.

Numba's ``np.dot`` calls SciPy's OpenBLAS (0.3.30 here); NumPy 2.4 ships a newer one (0.3.31) that
measured 20-35% faster on the conv GEMM shapes of this library, single-threaded on this AMD EPYC
(32x288x306: 82 -> 110 GFLOP/s; 64x576x288: 101 -> 121; 16x150x140: 61 -> 87). :func:`gemm` calls
its ``cblas_sgemm`` through a function pointer passed in as an integer (so the calling kernels stay
cacheable: no address is baked into compiled code); a zero pointer, float64, or a non-contiguous
operand falls back to ``np.dot``. ``CNN_NUMPY_BLAS=0`` in the environment disables the NumPy path.

NumPy's OpenBLAS has its own thread pool: :func:`numpy_blas` pins it to one thread while kernels
run (``openblas_set_num_threads_local`` is process-global in this pthreads build, so the
process-wide setter is used, reference-counted, and restored when the last caller leaves),
because the parallelism comes from Numba's pool and two pools of busy threads on the same cores
slow both down many times over.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

_ROW_MAJOR = 101
_NO_TRANS = 111
_TRANS = 112


@intrinsic
def _cblas_sgemm(typingctx, fptr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    """c (m, n) = op(a) @ op(b) via the ILP64 row-major ``cblas_sgemm`` at address ``fptr``;
    ta / tb: 111 (no transpose) or 112 (transpose)."""
    sig = types.void(fptr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        fptr_t = f32.as_pointer()
        fnty = ir.FunctionType(
            ir.VoidType(),
            [i32, i32, i32, i64, i64, i64, f32, fptr_t, i64, fptr_t, i64, f32, fptr_t, i64],
        )
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        ptrs = []
        for index in (6, 8, 10):
            arr = context.make_array(signature.args[index])(context, builder, args[index])
            ptrs.append(builder.bitcast(arr.data, fptr_t))
        one, zero = ir.Constant(f32, 1.0), ir.Constant(f32, 0.0)
        order = ir.Constant(i32, _ROW_MAJOR)
        ta32 = builder.trunc(args[1], i32)
        tb32 = builder.trunc(args[2], i32)
        builder.call(
            fn,
            [
                order,
                ta32,
                tb32,
                args[3],
                args[4],
                args[5],
                one,
                ptrs[0],
                args[7],
                ptrs[1],
                args[9],
                zero,
                ptrs[2],
                args[11],
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True)
def _layout(x):
    """(trans, leading dimension) of a 2-D operand for row-major cblas: (111, ld) when its rows are
    contiguous, (112, ld) when its columns are (a transposed view), ld = -1 when neither."""
    r, q = x.shape
    item = x.itemsize
    if r == 0 or q == 0:
        return _NO_TRANS, -1
    s0, s1 = x.strides
    if (s1 == item or q == 1) and s0 % item == 0 and (r == 1 or s0 // item >= q):
        return _NO_TRANS, max(s0 // item, q, 1)
    if (s0 == item or r == 1) and s1 % item == 0 and (q == 1 or s1 // item >= r):
        return _TRANS, max(s1 // item, r, 1)
    return _NO_TRANS, -1


def _gemm(fptr, a, b, c):
    raise NotImplementedError


@overload(_gemm)
def _gemm_overload(fptr, a, b, c):
    f32 = all(isinstance(t, types.Array) and t.dtype == types.float32 for t in (a, b, c))
    if not f32:
        return lambda fptr, a, b, c: np.dot(a, b, c)

    def impl(fptr, a, b, c):
        ta, lda = _layout(a)
        tb, ldb = _layout(b)
        tc, ldc = _layout(c)
        if fptr != 0 and lda > 0 and ldb > 0 and ldc > 0 and tc == _NO_TRANS:
            m, k, n = a.shape[0], a.shape[1], b.shape[1]
            _cblas_sgemm(fptr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc)  # type: ignore[call-arg]
        else:
            np.dot(a, b, c)

    return impl


@numba.njit(cache=True)
def gemm(fptr, a, b, c):
    """c (M, N) = a (M, K) @ b (K, N), overwriting c. float32 operands whose rows or columns are
    contiguous (c: rows) go to the cblas_sgemm at address ``fptr`` (if not 0), the rest to
    ``np.dot``."""
    _gemm(fptr, a, b, c)


def gemm_reference(fptr, a, b, c):
    """Plain twin of :func:`gemm` (float64 sums)."""
    c[...] = np.asarray(a, np.float64) @ np.asarray(b, np.float64)


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_fptr: int | None = None


def _load() -> int:
    global _lib, _fptr
    with _lock:
        if _fptr is not None:
            return _fptr
        _fptr = 0
        if os.environ.get("CNN_NUMPY_BLAS", "1") == "0":
            return 0
        libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
        for path in sorted(glob.glob(os.path.join(libdir, "libscipy_openblas64_*.so"))):
            try:
                lib = ctypes.CDLL(path)
                fn = lib.scipy_cblas_sgemm64_
                lib.scipy_openblas_get_num_threads64_.restype = ctypes.c_int
                lib.scipy_openblas_set_num_threads64_.argtypes = [ctypes.c_int]
            except (OSError, AttributeError):
                continue
            _lib = lib
            _fptr = int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
            break
        return _fptr


def sgemm_pointer() -> int:
    """Address of NumPy's ILP64 ``cblas_sgemm`` (0 when unavailable or CNN_NUMPY_BLAS=0)."""
    return _fptr if _fptr is not None else _load()


class _NumpyBlas:
    """Context manager of :func:`numpy_blas` (a class: ~1 us cheaper than a generator, which
    matters for batch-1 latency)."""

    users = 0  # callers inside the block, process-wide
    saved = 1  # NumPy's OpenBLAS thread count before the first of them entered

    def __enter__(self) -> int:
        fptr = sgemm_pointer()
        lib = _lib
        if lib is not None:
            with _lock:
                if _NumpyBlas.users == 0:
                    _NumpyBlas.saved = int(lib.scipy_openblas_get_num_threads64_())
                    if _NumpyBlas.saved != 1:
                        lib.scipy_openblas_set_num_threads64_(1)
                _NumpyBlas.users += 1
        return fptr

    def __exit__(self, *exc: object) -> None:
        lib = _lib
        if lib is not None:
            with _lock:
                _NumpyBlas.users -= 1
                if _NumpyBlas.users == 0 and _NumpyBlas.saved != 1:
                    lib.scipy_openblas_set_num_threads64_(_NumpyBlas.saved)


_NUMPY_BLAS = _NumpyBlas()


def numpy_blas(threads: int = 1) -> _NumpyBlas:
    """``with numpy_blas(1) as fptr:`` runs the block with NumPy's OpenBLAS on one thread and
    yields :func:`sgemm_pointer`.

    Reference-counted: the first caller to enter pins the thread count, the last to leave restores
    it, so concurrent callers (e.g. one server batcher thread per model) never see it restored
    under them. ``threads`` other than 1 is not supported (Numba owns the parallelism).
    """
    if threads != 1:
        raise ValueError(f"numpy_blas: threads must be 1, got {threads}")
    return _NUMPY_BLAS
