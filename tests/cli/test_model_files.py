"""`cnn models export|import`: ONNX files through a real server, and on a repository directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from core import zoo
from core.artifacts import load_artifact, save_artifact
from core.repository import ModelRepository
from tests.cli.conftest import run_cnn
from tests.server.serverproc import ServerProcess, start_server
from tests.support.onnx_graphs import (
    PROBABILITY_ATOL,
    graph_model,
    pixels,
    run_onnx,
    seeded_artifact,
    weights,
)


def _publish_seeded(root: Path, name: str) -> None:
    loaded = seeded_artifact(zoo.digits_cnn(), (1, 8, 8), name=name, pixel_range=(0.0, 16.0))
    ModelRepository(root).publish(name, lambda d: save_artifact(d, loaded.model, loaded.meta))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    _publish_seeded(root, "digits")
    process = start_server(tmp_path_factory.mktemp("server"), root)
    try:
        yield process
    finally:
        process.stop()


def test_export_and_import_through_the_server(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "digits.onnx"
    result = run_cnn("models", "export", "digits:1", str(out), "--address", server.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"exported digits version 1 to {out}")
    x = pixels((1, 8, 8), hi=16.0)
    (_, probabilities) = run_onnx(out.read_bytes(), x)
    local = load_artifact(server.models_dir / "digits" / "1")
    np.testing.assert_allclose(probabilities, local.predict_proba(x), atol=PROBABILITY_ATOL)

    names = ",".join(f"d{i}" for i in range(10))
    result = run_cnn(
        "models", "import", str(out), "--name", "copy", "--class-names", names,
        "--address", server.address,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "as copy version 1" in result.stdout and "receptive field" in result.stdout.lower()
    copy = load_artifact(server.models_dir / "copy" / "1")
    assert copy.meta.class_names == names.split(",")
    np.testing.assert_array_equal(copy.predict_proba(x), local.predict_proba(x))


def test_export_and_import_on_a_repository_directly(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _publish_seeded(root, "digits")
    out = tmp_path / "digits.onnx"
    result = run_cnn("models", "export", "digits", str(out), "--models-dir", str(root))
    assert result.returncode == 0, result.stderr
    result = run_cnn(
        "models", "import", str(out), "--name", "digits", "--models-dir", str(root)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "as digits version 2" in result.stdout
    assert ModelRepository(root).versions("digits") == [1, 2]


def test_an_unsupported_graph_is_one_line_naming_the_node(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Elu", ["x"], ["e"], name="odd"),
        helper.make_node("Flatten", ["e"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w"], ["y"], name="fc"),
    ]
    path = tmp_path / "odd.onnx"
    path.write_bytes(graph_model(nodes, {"w": weights((64, 3))}, ["N", 1, 8, 8], "y"))
    root = tmp_path / "models"
    result = run_cnn("models", "import", str(path), "--name", "odd", "--models-dir", str(root))
    assert result.returncode == 2
    assert "node 'odd' (Elu): unsupported op" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not root.exists() or not any(root.rglob("*"))


def test_exporting_a_missing_version_names_what_there_is(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _publish_seeded(root, "digits")
    result = run_cnn(
        "models", "export", "digits:4", str(tmp_path / "x.onnx"), "--models-dir", str(root)
    )  # fmt: skip
    assert result.returncode == 2 and "no version 4 (published: 1)" in result.stderr
