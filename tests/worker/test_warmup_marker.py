"""The warm-up's marker (worker/warm_marker.py) and what the warm-up covers (worker/warmup.py).

Real processes against a compile cache of the test's own: the first `python -m worker.warmup`
compiles everything and writes the marker; a second one, and a worker starting on that cache,
skip the warm-up; a first VGG-like or LeNet training step (and its evaluation, and a batch-1
inference) after the warm-up compiles no kernel signature, whichever convolution algorithm it
takes. Compiles are counted with Numba's dispatcher statistics (`compile_cache.kernel_stats`),
never timed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.kernels import compile_cache
from tests.support.limits import COLD_START_LIMIT_S, COLD_START_TEST_TIMEOUT_S
from tests.support.processes import ManagedProcess, python_module
from tests.support.workers import REPO_ROOT
from tests.worker.conftest import FAST_TIMINGS
from worker import warm_marker

#: The cold warm-up compiles every kernel a job may need (three models, both convolution
#: algorithms): it passed COLD_START_LIMIT_S at load 13 on the 2-core machine (guards hangs only).
WARMUP_LIMIT_S = 2 * COLD_START_LIMIT_S
#: The test that first uses the cold-warmed cache waits for that warm-up, then for its own work.
TEST_TIMEOUT_S = WARMUP_LIMIT_S + COLD_START_TEST_TIMEOUT_S

# A first training step of a zoo model (two steps, so the optimizer state exists), the
# evaluation a job runs after training (batched inference plan) and a batch-1 inference as the
# server answers it; prints the kernel signatures this process compiled.
_FIRST_STEP = """
import json, sys
import numpy as np
from core import zoo
from core.datasets import Dataset
from core.evaluation import evaluate
from core.kernels import compile_cache
from core.model import Sequential
from core.training import TrainConfig, fit

arch = getattr(zoo, sys.argv[1])()
shape = (3, 32, 32) if sys.argv[1] == "vgg_small" else (1, 28, 28)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(160, *shape), dtype=np.uint8)
y = (np.arange(160) % 10).astype(np.int64)
data = Dataset(x, y, x[:100], y[:100], [str(i) for i in range(10)], name="first-step")
model = Sequential.from_spec(arch, data.input_shape, seed=0)
config = TrainConfig.model_validate(
    {"epochs": 1, "batch_size": 64, "optimizer": {"type": "adam", "lr": 1e-3},
     "validation_split": 0.2}
)
steps = []
fit(model, data, config, on_progress=steps.append, should_stop=lambda: len(steps) >= 2)
assert steps, "no training step ran"
evaluate(model, data.x_test.astype(np.float32) / 255, data.y_test, data.class_names)
assert model.predict_proba(data.x_test[:1].astype(np.float32)).shape == (1, 10)
stats = compile_cache.kernel_stats()
print(json.dumps({name: s["compiled"] for name, s in stats.items() if s["compiled"]}))
"""


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("CNN_CONV_ALGORITHM", None)
    return {**env, **extra}


def _start_warmup(cache: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        python_module("worker.warmup", "--kernels", *args),
        cwd=REPO_ROOT,
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(proc: subprocess.Popen[str], timeout: float = COLD_START_LIMIT_S) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-4000:]
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def warmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A compile cache filled by one cold `python -m worker.warmup`, and its report."""
    cache = tmp_path_factory.mktemp("warmup") / "numba-cache"
    return cache, _report(_start_warmup(cache), WARMUP_LIMIT_S)


def _marker_file(cache: Path) -> Path:
    (revision,) = cache.glob("cnn-*")
    return revision / warm_marker.FILE_NAME


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_second_warmup_on_a_warm_cache_skips(warmed: tuple[Path, dict[str, Any]]) -> None:
    cache, first = warmed
    marker = json.loads(_marker_file(cache).read_text())

    second = _report(_start_warmup(cache))

    assert "skipped" not in first and first["compiled"] > 0
    assert (marker["compiled"], marker["loaded"]) == (first["compiled"], first["loaded"])
    assert "skipped" in second
    assert (second["compiled"], second["loaded"], second["kernels"]) == (0, 0, {})


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_forced_warmup_on_a_warm_cache_loads_and_compiles_nothing(
    warmed: tuple[Path, dict[str, Any]],
) -> None:
    cache, _ = warmed

    forced = _report(_start_warmup(cache, "--force"))

    assert "skipped" not in forced
    # loaded counts top-level kernels only (their callees come with them), compiled counts all
    assert forced["compiled"] == 0 and forced["loaded"] > 0


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize(
    ("model", "algorithm"),
    [("vgg_small", "winograd"), ("vgg_small", "im2col"), ("vgg_small", "auto"), ("lenet5", "auto")],
)
def test_a_first_training_step_after_the_warmup_compiles_nothing(
    warmed: tuple[Path, dict[str, Any]], model: str, algorithm: str
) -> None:
    cache, _ = warmed
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_STEP, model],
        cwd=REPO_ROOT,
        env=_env(cache, CNN_CONV_ALGORITHM=algorithm),
        capture_output=True,
        text=True,
        timeout=COLD_START_LIMIT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}  # kernel -> signatures compiled


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_of_two_concurrent_warmups_one_warms_and_the_other_waits_and_skips(
    warmed: tuple[Path, dict[str, Any]],
) -> None:
    cache, _ = warmed
    _marker_file(cache).unlink()

    reports = [_report(proc) for proc in [_start_warmup(cache), _start_warmup(cache)]]

    assert sorted("skipped" in report for report in reports) == [False, True]
    assert warm_marker.Marker.model_validate_json(_marker_file(cache).read_text())


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize(
    "content",
    [
        "{broken",
        '{"format": 1, "key": "0123456789abcdef", "finished_at": 1.0, "compiled": 0, "loaded": 0}',
    ],
    ids=["corrupt", "foreign"],
)
def test_a_corrupt_or_foreign_marker_is_ignored_and_replaced(
    warmed: tuple[Path, dict[str, Any]], content: str
) -> None:
    cache, _ = warmed
    _marker_file(cache).write_text(content)

    report = _report(_start_warmup(cache))

    assert "skipped" not in report
    marker = warm_marker.Marker.model_validate_json(_marker_file(cache).read_text())
    assert marker.key == warm_marker.marker_key()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_worker_on_a_warm_cache_skips_the_warmup(
    warmed: tuple[Path, dict[str, Any]], redis_url: str, tmp_path: Path
) -> None:
    # Not the start_worker fixture: it warms the per-machine cache first, a compile this test
    # does not need.
    cache, _ = warmed
    warm_marker_before = _marker_file(cache).read_bytes()
    env = {
        **FAST_TIMINGS,
        "CNN_REDIS_URL": redis_url,
        "CNN_MODELS_DIR": str(tmp_path / "models"),
        "CNN_DATA_DIR": str(tmp_path / "data"),
        "CNN_WARMUP": "block",
        "NUMBA_CACHE_DIR": str(cache),
        "PYTHONPATH": str(REPO_ROOT),
    }
    worker = ManagedProcess(
        python_module("worker", "--name", f"skip-{tmp_path.name}"[:60]),
        log_path=tmp_path / "worker.log",
        env=env,
        cwd=REPO_ROOT,
    ).start()
    try:
        worker.wait_for_log(r"\*\*\* Listening on", timeout=COLD_START_LIMIT_S)
        log = worker.log_text()
    finally:
        worker.stop()

    skipped = log.index("warm-up skipped: the compile cache is warm for this code")
    assert skipped < log.index("*** Listening on")
    assert "warm-up finished" not in log
    assert _marker_file(cache).read_bytes() == warm_marker_before


# -- the marker itself, in this process ------------------------------------------------------


@pytest.fixture()
def marker_path(tmp_path: Path) -> Path:
    return tmp_path / "cnn-x" / warm_marker.FILE_NAME


def test_a_written_marker_is_valid_for_this_code(marker_path: Path) -> None:
    warm_marker.write_marker(12, 3, marker_path)

    marker = warm_marker.read_marker(marker_path)

    assert marker is not None and (marker.compiled, marker.loaded) == (12, 3)
    assert marker_path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\x80\x04\x95 a pickle is never loaded",
        '{"format": 1, "key": "k", "finished_at": 1.0, "compiled": 0}',
        '{"format": 1, "key": "k", "finished_at": 1.0, "compiled": "0", "loaded": 0}',
        '{"format": 1, "key": "k", "finished_at": 1.0, "compiled": 0, "loaded": 0, "x": 1}',
    ],
    ids=["empty", "pickle", "missing-field", "string-count", "extra-field"],
)
def test_a_corrupt_marker_is_not_trusted(marker_path: Path, content: str) -> None:
    marker_path.parent.mkdir(parents=True)
    marker_path.write_text(content.replace('"k"', json.dumps(warm_marker.marker_key())))
    assert warm_marker.read_marker(marker_path) is None


def test_a_marker_of_other_code_or_format_is_not_trusted(marker_path: Path) -> None:
    warm_marker.write_marker(1, 1, marker_path)
    good = json.loads(marker_path.read_text())
    for change in ({"key": "0123456789abcdef"}, {"format": warm_marker.FORMAT + 1}):
        marker_path.write_text(json.dumps({**good, **change}))
        assert warm_marker.read_marker(marker_path) is None


def test_the_marker_key_follows_core_and_warmup_sources(tmp_path: Path) -> None:
    core = tmp_path / "repo" / "core"
    worker = tmp_path / "repo" / "worker"
    shutil.copytree(compile_cache.CORE_DIR, core, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "worker", worker, ignore=shutil.ignore_patterns("__pycache__"))
    key = warm_marker.compute_marker_key(core, worker)
    assert key == warm_marker.marker_key()  # content, not paths

    (core / "layers.py").write_text((core / "layers.py").read_text() + "\n# a layer change\n")
    changed_layer = warm_marker.compute_marker_key(core, worker)
    (worker / "warmup.py").write_text((worker / "warmup.py").read_text() + "\n# recipe\n")
    changed_recipe = warm_marker.compute_marker_key(core, worker)
    (worker / "main.py").write_text((worker / "main.py").read_text() + "\n# not the warm-up\n")

    assert len({key, changed_layer, changed_recipe}) == 3
    assert warm_marker.compute_marker_key(core, worker) == changed_recipe
