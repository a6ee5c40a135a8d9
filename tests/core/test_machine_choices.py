"""Measured choices shared per machine (core/machine_choices.py): every process on the machine
uses the first recorded choice of a convolution's algorithm; a corrupt or foreign file is never
trusted; CNN_CONV_ALGORITHM still overrides; `python -m core.kernels --clear` removes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import conv_algorithms, machine_choices
from core.kernels import compile_cache
from tests.support.limits import EVENT_LIMIT_S

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPE = conv_algorithms.ConvShape(16, 12, 12, 16, 12, 12, 1, 1, "float32")

# Asks for SHAPE's algorithm, this process's measurement replaced by the value given (so two
# processes certainly disagree when both measure, and no kernel is compiled); prints the choice
# it uses and how many times it measured.
_CHOOSE = """
import json, sys
from core import conv_algorithms
shape = conv_algorithms.ConvShape(16, 12, 12, 16, 12, 12, 1, 1, "float32")
measured = []
def measure(s):
    measured.append(s)
    return int(sys.argv[1])
conv_algorithms._measure = measure
print(json.dumps({"choice": conv_algorithms.tile_size(shape), "measured": len(measured)}))
"""


def _start(root: Path, measurement: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root), "PYTHONPATH": str(REPO_ROOT)}
    env.pop(conv_algorithms.ENV, None)
    return subprocess.Popen(
        [sys.executable, "-c", _CHOOSE, measurement],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=EVENT_LIMIT_S)
    assert proc.returncode == 0, err[-4000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.fixture()
def machine_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This process's choices go to an empty machine root, with no memo of earlier tests."""
    root = tmp_path / "machine-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(root))
    monkeypatch.delenv(conv_algorithms.ENV, raising=False)
    monkeypatch.setattr(conv_algorithms, "_chosen", {})
    machine_choices.forget()
    yield root
    machine_choices.forget()


def _write(content: Any) -> Path:
    path = machine_choices.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _valid(choices: dict[str, Any], cache_key: str | None = None) -> dict[str, Any]:
    key = compile_cache.cache_key() if cache_key is None else cache_key
    return {"format": machine_choices.FORMAT, "cache_key": key, "choices": choices}


def test_a_later_process_uses_the_choice_an_earlier_one_measured(tmp_path: Path) -> None:
    root = tmp_path / "machine-cache"

    first = _finish(_start(root, "2"))
    second = _finish(_start(root, "4"))  # would pick F(4x4) if it measured

    assert (first["choice"], first["measured"]) == (2, 1)
    assert (second["choice"], second["measured"]) == (2, 0)


def test_processes_that_measured_differently_at_once_use_the_first_recorded_choice(
    tmp_path: Path,
) -> None:
    root = tmp_path / "machine-cache"
    procs = [_start(root, "2"), _start(root, "4")]  # each would pick its own

    results = [_finish(proc) for proc in procs]

    assert results[0]["choice"] == results[1]["choice"]
    recorded = json.loads(next(root.glob("cnn-*/choices.json")).read_text())["choices"]
    assert recorded == {conv_algorithms.shape_key(SHAPE): results[0]["choice"]}


def test_a_recorded_choice_is_used_without_measuring(machine_root: Path) -> None:
    _write(_valid({conv_algorithms.shape_key(SHAPE): 2}))

    def must_not_measure(shape: conv_algorithms.ConvShape) -> int:
        raise AssertionError("measured although the machine has a choice")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_algorithms, "_measure", must_not_measure)
        assert conv_algorithms.tile_size(SHAPE) == 2


def test_the_weight_gradient_choice_is_recorded_apart_from_the_forward_one(
    machine_root: Path,
) -> None:
    # the forward recorded 2 for this shape; the weight gradient's decision is its own key
    _write(_valid({conv_algorithms.shape_key(SHAPE): 2}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_algorithms, "_chosen_weight_grad", {})
        patch.setattr(conv_algorithms, "_measure_weight_grad", lambda shape: 4)
        assert conv_algorithms.weight_grad_tile(SHAPE) == 4
        assert conv_algorithms.tile_size(SHAPE) == 2
        # a second process reads it back instead of measuring
        patch.setattr(conv_algorithms, "_chosen_weight_grad", {})
        machine_choices.forget()

        def must_not_measure(shape: conv_algorithms.ConvShape) -> int:
            raise AssertionError("measured although the machine has a choice")

        patch.setattr(conv_algorithms, "_measure_weight_grad", must_not_measure)
        assert conv_algorithms.weight_grad_tile(SHAPE) == 4
    assert machine_choices.read()[conv_algorithms.shape_key(SHAPE, "wgrad_tile")] == 4


def test_the_first_recorder_wins_and_later_records_keep_other_keys(machine_root: Path) -> None:
    assert machine_choices.record("a", 4) == 4
    assert machine_choices.record("a", 0) == 4  # a later measurement does not replace it
    assert machine_choices.record("b", "im2col") == "im2col"

    assert machine_choices.read() == {"a": 4, "b": "im2col"}
    assert machine_choices.path().stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "\x80\x04\x95 a pickle is never loaded",
        {"format": 1, "cache_key": "x"},  # no choices
        {"format": 1, "cache_key": "x", "choices": {"k": 4}, "extra": 1},
        {"format": 1, "cache_key": "x", "choices": {"k": 4.5}},
        {"format": 1, "cache_key": "x", "choices": {"k": True}},
        {"format": 1, "cache_key": "x", "choices": ["k", 4]},
    ],
    ids=["not-json", "pickle", "missing-field", "extra-field", "float", "bool", "list"],
)
def test_a_corrupt_file_is_ignored_and_replaced_at_the_next_record(
    machine_root: Path, content: Any
) -> None:
    if isinstance(content, dict):
        content["cache_key"] = compile_cache.cache_key()
    _write(content)

    assert machine_choices.read() == {}
    assert machine_choices.record("k", 2) == 2
    assert machine_choices.read() == {"k": 2}


def test_another_revisions_file_is_ignored(machine_root: Path) -> None:
    _write(_valid({"k": 4}, cache_key="0123456789abcdef"))
    assert machine_choices.read() == {}
    _write({**_valid({"k": 4}), "format": machine_choices.FORMAT + 1})
    assert machine_choices.read() == {}


def test_a_recorded_value_that_is_no_tile_size_is_not_used(machine_root: Path) -> None:
    _write(_valid({conv_algorithms.shape_key(SHAPE): 3}))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_algorithms, "_measure", lambda shape: 4)
        assert conv_algorithms.tile_size(SHAPE) == 4


@pytest.mark.parametrize(("setting", "expected"), [("im2col", 0), ("winograd2", 2)])
def test_the_environment_setting_overrides_the_machine_choice(
    machine_root: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: int
) -> None:
    _write(_valid({conv_algorithms.shape_key(SHAPE): 4}))
    monkeypatch.setenv(conv_algorithms.ENV, setting)
    assert conv_algorithms.tile_size(SHAPE) == expected


def test_a_root_that_cannot_be_written_keeps_the_process_own_choice(machine_root: Path) -> None:
    machine_root.write_text("a file where the cache directory should be")  # even root fails

    assert machine_choices.choose("k", lambda: 2) == 2
    assert machine_choices.choose("k", lambda: 4) == 2  # kept for the life of the process


def test_clearing_the_compile_cache_clears_the_choices(machine_root: Path) -> None:
    machine_choices.record("k", 4)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    done = subprocess.run(
        [sys.executable, "-m", "core.kernels", "--clear"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EVENT_LIMIT_S,
    )

    assert done.returncode == 0, done.stderr
    assert not machine_choices.path().exists()
