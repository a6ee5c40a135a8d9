"""Project-level checks: generated code is fresh and the entry points answer --help."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_generated_protobuf_modules_are_fresh() -> None:
    result = _run(sys.executable, "scripts/gen_proto.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_generated_module_is_detected(tmp_path: Path) -> None:
    """The freshness check must fail when a committed stub differs from what protoc makes."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", copy / "proto", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    stub = next((copy / "proto").rglob("*_pb2.py"))
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert stub.name in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["cnn", "--help"],
        [sys.executable, "-m", "server", "--help"],
        [sys.executable, "-m", "worker", "--help"],
    ],
    ids=["cnn", "server", "worker"],
)
def test_entry_points_print_help(command: list[str]) -> None:
    if command[0] == "cnn":
        command = [str(Path(sys.executable).parent / "cnn"), *command[1:]]
    result = _run(*command)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_cnn_help_lists_the_sub_commands() -> None:
    result = _run(str(Path(sys.executable).parent / "cnn"), "--help")
    for name in ("serve", "worker", "train", "summary", "inspect", "demo"):
        assert name in result.stdout


def test_readme_lists_every_server_setting_as_the_server_prints_them() -> None:
    table = _run(sys.executable, "-m", "server", "--settings-table")
    assert table.returncode == 0, table.stderr
    assert table.stdout.strip() in (ROOT / "README.md").read_text()


def test_readme_lists_every_cli_setting_as_cnn_prints_them() -> None:
    table = _run(sys.executable, "-m", "cnn_cli", "settings")
    assert table.returncode == 0, table.stderr
    assert "| `CNN_ADDRESS` |" in table.stdout and "| `CNN_REDIS_URL` |" in table.stdout
    assert table.stdout.strip() in (ROOT / "README.md").read_text()
