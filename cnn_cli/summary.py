"""`cnn summary`: the layer table with receptive fields, from a spec file or a model dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnn_cli.main import CliError

# Input shapes of the bundled data sets, so a training spec alone is enough for a summary.
KNOWN_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist-5k": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
}


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--input-shape must be C,H,W (three integers), got {text!r}") from None
    return c, h, w


def _load(path: Path) -> tuple[list[dict[str, Any]], tuple[int, int, int] | None]:
    """Return (architecture, input shape if the file says it)."""
    if path.is_dir():
        path = path / "model.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(doc, list):
        return doc, None
    if not isinstance(doc, dict) or "architecture" not in doc:
        raise CliError(f"{path}: expected an architecture list or an object with 'architecture'")
    shape: tuple[int, int, int] | None = None
    spec_input = doc.get("input")
    if isinstance(spec_input, dict) and {"channels", "height", "width"} <= spec_input.keys():
        shape = (spec_input["channels"], spec_input["height"], spec_input["width"])
    dataset = doc.get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else dataset
    if shape is None and isinstance(name, str):
        shape = KNOWN_INPUT_SHAPES.get(name)
    return doc["architecture"], shape


def print_summary(spec: str, input_shape: str | None) -> None:
    from core.model import Sequential

    architecture, shape = _load(Path(spec))
    if input_shape is not None:
        shape = _parse_shape(input_shape)
    if shape is None:
        raise CliError(f"{spec}: the input shape is unknown; pass --input-shape C,H,W")
    model = Sequential.from_spec(architecture, shape)
    print(model.summary())
