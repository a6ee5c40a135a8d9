"""`python -m core.kernels [--prune | --clear]`: the per-machine Numba compile cache.

Prints the cache root, this revision's directory and every revision's size
(:mod:`core.kernels.compile_cache`); ``--prune`` removes old revisions, ``--clear`` all of them.
A revision's directory also holds the machine's measured choices (:mod:`core.machine_choices`)
and the worker warm-up's marker (``worker.warm_marker``), so both go with it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence

from core.kernels import compile_cache


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.kernels",
        description="Show, prune or clear the per-machine Numba compile cache.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--prune", action="store_true", help="remove old revisions' caches")
    group.add_argument("--clear", action="store_true", help="remove every revision's cache")
    args = parser.parse_args(argv)
    root = compile_cache.machine_root()
    if args.clear:
        for path in compile_cache.revisions(root):
            shutil.rmtree(path, ignore_errors=True)
            print(f"removed {path}")
        return 0
    if args.prune:
        for path in compile_cache.prune(root):
            print(f"removed {path}")
    current = compile_cache.revision_dir()
    print(f"root: {root}")
    print(f"this revision: {current}")
    choices = current / "choices.json"  # core.machine_choices.FILE_NAME (not imported: no core)
    if choices.is_file():
        print(f"measured choices: {choices}")
    for path in compile_cache.revisions(root):
        mark = "*" if path == current else " "
        print(f"{mark} {path.name}  {compile_cache.size_bytes(path) / 1e6:7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
