"""Acceptance (issue #12): the server's Training API works without importing `rq` or `worker`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cnn_cli.redis_server import RedisServer
from tests.server.serverproc import REPO_ROOT


def test_every_training_rpc_works_and_neither_rq_nor_worker_is_imported(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.server.training_imports_probe",
             redis_server.url, str(tmp_path / "models")],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        redis_server.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "get": "JOB_STATUS_QUEUED",
        "listed": True,
        "cancel": "JOB_STATUS_CANCELLED",
        "watch": ["JOB_STATUS_CANCELLED"],
        "forbidden_modules": [],
    }
