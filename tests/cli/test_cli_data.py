"""`cnn data upload|list|show|rm` as a user runs them, against the CLI suite's real stack."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnn_cli.stack import LocalStack
from tests.cli.conftest import run_cnn
from tests.support.archives import save_npz, solid, write_tar, write_zip

FILES = {
    "train/cats/a.png": solid(10),
    "train/dogs/b.png": solid(30),
    "test/cats/c.png": solid(20),
    "test/dogs/d.png": solid(40),
}


def _one_line_error(done: object, *needles: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)  # type: ignore[attr-defined]
    # an upload's progress lines come first
    lines = [
        line
        for line in done.stderr.strip().splitlines()  # type: ignore[attr-defined]
        if not line.startswith("uploading ")
    ]
    assert len(lines) == 1 and lines[0].startswith("cnn: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


def test_upload_prints_progress_lines_and_the_stored_version(
    stack: LocalStack, tmp_path: Path
) -> None:
    x = np.random.default_rng(0).integers(0, 256, (300, 1, 64, 64), dtype=np.uint8)
    path = save_npz(tmp_path / "noise.npz", x=x, y=np.arange(300) % 3)
    done = run_cnn(
        "data", "upload", str(path), "--name", "cli-noise", "--address", stack.grpc_address
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stored cli-noise:1: 300 samples, 3 classes, sha256:")
    progress = done.stderr.strip().splitlines()  # stderr is a pipe here: plain lines
    assert progress[0] == f"uploading noise.npz: 0.0 of {path.stat().st_size / 2**20:.1f} MiB (0%)"
    # two 1 MiB chunks: 1 MiB of the 1.17 MiB file is 85%, shown by its tenth
    assert [line.rsplit("(", 1)[1] for line in progress] == ["0%)", "80%)", "100%)"]


def test_list_and_show_describe_the_upload(stack: LocalStack, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "pets.zip", FILES)
    uploaded = run_cnn(
        "data", "upload", str(path), "--name", "cli-pets", "--json",
        "--address", stack.grpc_address,
    )  # fmt: skip
    info = json.loads(uploaded.stdout)
    assert (info["samples"], info["train_samples"], info["test_samples"]) == (4, 2, 2)
    listed = run_cnn("data", "list", "cli-pets", "--address", stack.grpc_address)
    assert listed.returncode == 0 and "cli-pets:1" in listed.stdout
    assert info["id"].removeprefix("sha256:")[:12] in listed.stdout
    shown = run_cnn("data", "show", "cli-pets:1", "--address", stack.grpc_address).stdout
    assert f"id        {info['id']}" in shown
    assert "samples   4, split train 2 / test 2" in shown
    assert "images    1 channel(s), H×W 2×2" in shown
    assert "mean      25.00" in shown  # (10 + 30 + 20 + 40) / 4
    assert "std       11.18" in shown  # sqrt((15² + 5² + 5² + 15²) / 4) = sqrt(125)
    assert "     0  cats                             2" in shown
    by_id = json.loads(
        run_cnn("data", "show", info["id"], "--json", "--address", stack.grpc_address).stdout
    )
    assert by_id == info


def test_rm_deletes_a_version(stack: LocalStack, tmp_path: Path) -> None:
    path = write_tar(tmp_path / "gone.tar", {"a/x.png": solid(1), "b/y.png": solid(2)})
    run_cnn("data", "upload", str(path), "--name", "cli-gone", "--address", stack.grpc_address)
    done = run_cnn("data", "rm", "cli-gone:1", "--address", stack.grpc_address)
    assert (done.returncode, done.stdout) == (0, "deleted cli-gone:1\n")
    listed = run_cnn("data", "list", "cli-gone", "--address", stack.grpc_address)
    assert "no data sets named 'cli-gone'" in listed.stdout
    again = run_cnn("data", "rm", "cli-gone:1", "--address", stack.grpc_address)
    _one_line_error(again, "'cli-gone:1' not found", "[NOT_FOUND]")


def test_a_refused_upload_is_one_line_naming_the_entry(stack: LocalStack, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bad.zip", {"cats/a.png": solid(1), "dogs/b.png": b"no image"})
    done = run_cnn(
        "data", "upload", str(path), "--name", "cli-bad", "--address", stack.grpc_address
    )
    _one_line_error(done, "bad.zip: dogs/b.png", "[INVALID_ARGUMENT]")


def test_usage_errors(stack: LocalStack, tmp_path: Path) -> None:
    address = ("--address", stack.grpc_address)
    _one_line_error(run_cnn("data", "rm", "cats", *address), "NAME:VERSION")
    _one_line_error(
        run_cnn("data", "upload", str(tmp_path / "none.npz"), "--name", "x", *address),
        "none.npz: no such file",
    )
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"x")
    _one_line_error(
        run_cnn("data", "upload", str(odd), "--name", "x", *address), "cannot tell the format"
    )
    _one_line_error(run_cnn("data", "show", "nope", *address), "'nope' not found", "[NOT_FOUND]")
