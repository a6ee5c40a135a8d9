"""`worker.settings.WorkerSettings`: queue settings plus the worker's own, from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.settings import QueueSettings
from tests.support.workers import REPO_ROOT
from worker.settings import SettingsError, WorkerSettings


def test_defaults_and_overrides() -> None:
    settings = WorkerSettings.from_env({})
    assert isinstance(settings, QueueSettings)
    assert (settings.queue, settings.job_retries, settings.warmup) == ("training", 2, "block")
    assert settings.numba_cache_dir is None
    settings = WorkerSettings.from_env(
        {"CNN_QUEUES": "high, training", "CNN_JOB_RETRIES": "0", "NUMBA_CACHE_DIR": "/cache"},
        worker_name="w7",
    )
    assert settings.queues == ("high", "training")
    assert settings.job_retries == 0
    assert settings.numba_cache_dir == Path("/cache")
    assert settings.worker_name == "w7"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CNN_JOB_TIMEOUT", "soon"),
        ("CNN_WARMUP", "maybe"),
        ("CNN_WORKER_TTL", "15"),
        ("CNN_LOG_LEVEL", "chatty"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        WorkerSettings.from_env({variable: value})


def test_words_are_case_insensitive() -> None:
    settings = WorkerSettings.from_env({"CNN_WARMUP": "OFF", "CNN_LOG_LEVEL": "debug"})
    assert (settings.warmup, settings.log_level) == ("off", "DEBUG")


def test_abandoned_after_with_the_defaults() -> None:
    # monitoring 10 + grace 30 + max(maintenance 30, ttl 60 - 15) = 85 s
    assert WorkerSettings.from_env({}).abandoned_after() == 85


def test_readme_lists_every_worker_setting_as_the_worker_prints_them() -> None:
    table = subprocess.run(
        [sys.executable, "-m", "worker", "--settings-table"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.strip() in (REPO_ROOT / "README.md").read_text()


def test_a_bad_setting_stops_the_worker_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst"],
        cwd=REPO_ROOT,
        env={"CNN_JOB_TIMEOUT": "soon", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if "CNN_JOB_TIMEOUT" in line
    ]
