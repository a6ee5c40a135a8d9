"""The per-machine compile cache (core/kernels/compile_cache.py): a fresh clone at another path
loads what an earlier clone compiled; different kernel sources never share a directory.

Compiles are counted with Numba's dispatcher statistics (signatures compiled vs loaded from the
cache) in subprocesses run from copies of ``core/`` in temporary directories, never timed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.kernels import compile_cache
from tests.support.limits import COLD_START_LIMIT_S

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs one small kernel per dtype named on the command line, checks its answer, prints the
# kernel's dispatcher statistics and where its cache lives.
_RUN_KERNEL = """
import json, sys
import numpy as np
from core.kernels import activations, compile_cache
for dtype in sys.argv[1:]:
    x = np.array([-1.5, 0.0, 2.5], dtype=dtype)
    out = np.empty_like(x)
    activations.relu_forward(x, out)
    assert out.tolist() == [0.0, 0.0, 2.5], out
stats = compile_cache.kernel_stats()["core.kernels.activations.relu_forward"]
print(json.dumps({**stats, "dir": str(compile_cache.revision_dir()), "file": activations.__file__}))
"""


def _clone(tmp_path: Path, name: str) -> Path:
    """A copy of the repository's ``core`` package at a new path (new mtimes, no __pycache__)."""
    clone = tmp_path / name
    shutil.copytree(
        REPO_ROOT / "core", clone / "core", ignore=shutil.ignore_patterns("__pycache__")
    )
    return clone


def _start(clone: Path, root: Path, *dtypes: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root), "PYTHONPATH": str(clone)}
    return subprocess.Popen(
        [sys.executable, "-c", _RUN_KERNEL, *dtypes],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], clone: Path) -> dict[str, Any]:
    out, err = proc.communicate(timeout=COLD_START_LIMIT_S)
    assert proc.returncode == 0, err[-4000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(clone), result  # ran the copy, not the repo
    return result


def _run(clone: Path, root: Path, *dtypes: str) -> dict[str, Any]:
    return _finish(_start(clone, root, *dtypes), clone)


def test_a_fresh_clone_at_another_path_loads_the_kernels_another_clone_compiled(
    tmp_path: Path,
) -> None:
    root = tmp_path / "machine-cache"

    first = _run(_clone(tmp_path, "clone-a"), root, "float32")
    second = _run(_clone(tmp_path / "somewhere" / "else", "clone-b"), root, "float32")

    assert (first["compiled"], first["loaded"]) == (1, 0)
    assert (second["compiled"], second["loaded"]) == (0, 1)
    assert first["dir"] == second["dir"]
    assert Path(first["dir"]).parent == root.resolve()


def test_a_changed_kernel_source_compiles_into_a_new_directory(tmp_path: Path) -> None:
    root = tmp_path / "machine-cache"
    first = _run(_clone(tmp_path, "clone-a"), root, "float32")
    changed = _clone(tmp_path, "clone-b")
    with (changed / "core" / "kernels" / "activations.py").open("a") as source:
        source.write("\n# a change to a kernel source\n")

    second = _run(changed, root, "float32")

    assert (second["compiled"], second["loaded"]) == (1, 0)
    assert second["dir"] != first["dir"]


def test_concurrent_clones_compiling_different_signatures_both_land_in_the_cache(
    tmp_path: Path,
) -> None:
    # Two processes saving two signatures of one kernel into one directory at the same time:
    # the index must end up naming both, each with its own code (the write lock's job).
    root = tmp_path / "machine-cache"
    clones = [_clone(tmp_path, f"clone-{i}") for i in range(3)]
    procs = [_start(clones[0], root, "float32"), _start(clones[1], root, "float64")]
    for proc, clone in zip(procs, clones, strict=False):
        assert _finish(proc, clone)["compiled"] == 1

    third = _run(clones[2], root, "float32", "float64")  # checks both answers

    assert (third["compiled"], third["loaded"]) == (0, 2)


def test_the_key_follows_kernel_content_not_paths_or_other_modules(tmp_path: Path) -> None:
    a = _clone(tmp_path, "a") / "core"
    b = _clone(tmp_path, "b") / "core"
    key = compile_cache.compute_key(a)
    assert compile_cache.compute_key(b) == key  # same content at another path

    (b / "training.py").write_text((b / "training.py").read_text() + "\n# not a kernel\n")
    assert compile_cache.compute_key(b) == key

    (b / "kernels" / "winograd.py").write_text("# a kernel module added later\n")
    with_new_module = compile_cache.compute_key(b)
    assert with_new_module != key

    (b / "fused.py").write_text(
        "import numba\n\n@numba.njit(cache=True)\ndef f(x):\n    return x\n"
    )
    assert compile_cache.compute_key(b) not in {key, with_new_module}


def test_the_key_is_the_one_this_process_uses() -> None:
    assert compile_cache.compute_key() == compile_cache.cache_key()
    assert compile_cache.revision_dir().name == f"cnn-{compile_cache.cache_key()}"


def test_only_functions_under_core_get_the_content_keyed_locator(tmp_path: Path) -> None:
    locator = compile_cache.install()
    elsewhere = tmp_path / "other.py"
    elsewhere.write_text("def f():\n    return 1\n")
    namespace: dict[str, Any] = {}
    exec(compile(elsewhere.read_text(), str(elsewhere), "exec"), namespace)

    assert locator.from_function(namespace["f"], str(elsewhere)) is None

    from core.kernels import activations

    mine = locator.from_function(activations.relu_forward.py_func, activations.__file__)
    assert mine.get_cache_path() == str(compile_cache.revision_dir() / "core" / "kernels")
    assert compile_cache.install() is locator  # idempotent


def test_prune_keeps_the_recent_and_the_most_recently_used_revisions(tmp_path: Path) -> None:
    now = time.time()
    ages_h = {"cnn-new": 0, "cnn-day-old": 30, "cnn-week-old": 24 * 7, "cnn-month-old": 24 * 30}
    for name, hours in ages_h.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.nbi").write_bytes(b"")
        os.utime(tmp_path / name, (now - hours * 3600, now - hours * 3600))
    (tmp_path / "someone-elses").mkdir()

    removed = compile_cache.prune(tmp_path, keep=2, recent_s=3600.0)

    assert sorted(p.name for p in removed) == ["cnn-month-old", "cnn-week-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn-day-old", "cnn-new", "someone-elses"]


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_numba_cache_dir_means_the_user_cache(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.machine_root() == (tmp_path / "cnn-service" / "numba").resolve()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "explicit"))
    assert compile_cache.machine_root() == (tmp_path / "explicit").resolve()
