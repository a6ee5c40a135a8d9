"""Numba kernels of the CNN library (NCHW layout).

Every fast kernel ``<name>`` is ``@numba.njit(parallel=True, cache=True)`` and has a plain-Python
``<name>_reference`` twin with the same signature, used as the test oracle. Kernels write into
caller-provided output arrays, so the layer owns the memory. float32 is the fast path; float64
works (used by gradient checks). Nothing here runs a kernel at import time.

Threading: parallelism comes from ONE pool, Numba's (``prange`` over samples / row blocks). The
GEMMs inside those loops call BLAS (SciPy's OpenBLAS, which Numba links) single-threaded:
:func:`single_threaded_blas` pins that library to one thread, because two pools of spinning
threads on the same cores (OpenMP + OpenBLAS pthreads) slow both down many times over.
"""

from __future__ import annotations

import os

# GNU OpenMP (Numba's "omp" threading layer) spins idle pool threads by default. On a shared
# 2-core machine a spinning worker steals the time slice of the thread doing the work: measured
# LeNet batch-64 inference 72 ms with spinning vs 4.7 ms passive (16x), a 300k-element ReLU 1.1 ms
# mean vs 31 us. Passive waiting costs ~10-20 us to wake the pool per parallel region, which the
# layers avoid for small work by running serially. libgomp reads this when Numba first loads its
# pool (the first parallel kernel call), so setting it here, at import, is early enough; an
# explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Kernels are cached per machine under a key of their source content (compile_cache's doc):
# the locator must be registered before any kernel module below this package is decorated.
from core.kernels import compile_cache

compile_cache.install()

_blas_pinned = False


def single_threaded_blas() -> None:
    """Pin the BLAS that Numba's ``np.dot`` calls (SciPy's OpenBLAS) to 1 thread; idempotent.

    NumPy's own BLAS (a separate library) is left alone. No-op without threadpoolctl.
    """
    global _blas_pinned
    if _blas_pinned:
        return
    _blas_pinned = True
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (load the library Numba will call)
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - both ship with the project's dependencies
        return
    for lib in ThreadpoolController().lib_controllers:
        path = str(getattr(lib, "filepath", ""))
        if lib.user_api == "blas" and "scipy" in path and "numpy" not in path:
            lib.set_num_threads(1)
