"""Numba kernels of the CNN library (NCHW layout).

Every fast kernel ``<name>`` is ``@numba.njit(parallel=True, cache=True)`` and has a plain-Python
``<name>_reference`` twin with the same signature, used as the test oracle. Kernels write into
caller-provided output arrays (no allocation inside), so the layer owns the memory. float32 is the
fast path; float64 works (used by gradient checks). Nothing here runs a kernel at import time.
"""

from __future__ import annotations
