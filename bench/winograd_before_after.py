"""Kernel-level before/after of the Winograd F(4x4,3x3) forward on VGG-small's Winograd shapes.

Run ``python -m bench.winograd_before_after OLD.py [--reps N]`` where OLD.py is an earlier
``core/kernels/winograd.py``, e.g. ``git show <commit>:core/kernels/winograd.py > /tmp/old.py``
(copied into a temporary directory and imported as module ``winograd_before``, so its kernels
get a disk cache of their own). For batch 1 and 64 and one and two threads it prints the best
of N ``winograd_forward`` times of the old and the current module, timed in turn (so load that
comes and goes hits both alike), checks they agree, and the time of the a*a GEMMs alone (what
the transforms add to). Same weights, block size and NumPy BLAS for both.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numba
import numpy as np

from core import conv_algorithms
from core.kernels import blas
from core.kernels import winograd as current

SHAPES = [(32, 32, 32), (32, 16, 64), (64, 16, 64)]  # (C, H = W, F), 3x3, padding 1
M = 4


def _load_old(path: Path, tmp: Path) -> ModuleType:
    shutil.copy(path, tmp / "winograd_before.py")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("winograd_before")


def _gemm_us(u: np.ndarray, c: int, f: int, tiles: int, blocks: int, reps: int) -> float:
    v = np.random.default_rng(1).standard_normal((M + 2) ** 2 * c * tiles).astype(np.float32)
    v = v.reshape((M + 2) ** 2, c, tiles)
    mm = np.empty(((M + 2) ** 2, f, tiles), np.float32)
    best = np.inf
    with blas.numpy_blas(1) as fptr:
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(blocks):
                for p in range((M + 2) ** 2):
                    blas.gemm(fptr, u[p], v[p], mm[p])
            best = min(best, time.perf_counter() - t0)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="an earlier core/kernels/winograd.py")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="cnn-wino-") as tmp:
        old = _load_old(args.old, Path(tmp))
        mods = {"before": old, "after": current}
        print("best of", args.reps, "(us); ratio = before / after")
        for n in (1, 64):
            for c, h, f in SHAPES:
                x = rng.standard_normal((n, c, h, h)).astype(np.float32)
                w = (rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
                b = np.zeros(f, np.float32)
                u = np.empty(((M + 2) ** 2, f, c), np.float32)
                current.winograd_filter(w, M, u)
                block = conv_algorithms.block_rows(M, c, f, h, 4)
                cells = []
                for threads in (1, 2):
                    numba.set_num_threads(threads)
                    outs = {k: np.zeros((n, f, h, h), np.float32) for k in mods}
                    best = dict.fromkeys(mods, np.inf)
                    with blas.numpy_blas(1) as fptr:
                        for rep in range(args.reps + 1):
                            for k, mod in mods.items():
                                t0 = time.perf_counter()
                                mod.winograd_forward(
                                    x, u, b, M, 1, 1, block, threads, outs[k], fptr
                                )
                                if rep:  # the first call may compile
                                    best[k] = min(best[k], time.perf_counter() - t0)
                    np.testing.assert_allclose(outs["after"], outs["before"], atol=1e-4)
                    before, after = best["before"] * 1e6, best["after"] * 1e6
                    cells.append(
                        f"T{threads} {before:9.1f} -> {after:9.1f} ({before / after:.2f}x)"
                    )
                tw = -(-h // M)
                rows = n * tw
                gemm = _gemm_us(u, c, f, min(block, rows) * tw, -(-rows // block), args.reps)
                print(
                    f"b{n:<3} C{c:<3} {h}x{h} F{f:<3} " + "  ".join(cells) + f"  GEMMs {gemm:.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
