"""`cnn summary`: the layer table with receptive fields, from a spec file or a model dir.

The file is a training spec (the input shape comes from ``input`` or the bundled ``dataset``),
a ``model.json`` or its directory, an object with ``architecture`` and ``input_shape``
[C, H, W], or a bare architecture list (then ``--input-shape`` says the shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.errors import CliError

if TYPE_CHECKING:
    from core.summary import Summary

Shape = tuple[int, int, int]


def parse_shape(text: str) -> Shape:
    """``"1,28,28"`` -> (1, 28, 28)."""
    try:
        c, h, w = (int(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--input-shape must be C,H,W (three integers), got {text!r}") from None
    return c, h, w


def load_spec_file(path: Path) -> tuple[list[dict[str, Any]], Shape | None]:
    """(architecture, input shape if the file tells it) of a spec file or model directory.

    Raises:
        CliError: unreadable file, not JSON, no architecture list.
    """
    if path.is_dir():
        path = path / "model.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(doc, list):
        return doc, None
    if not isinstance(doc, dict) or not isinstance(doc.get("architecture"), list):
        raise CliError(f"{path}: expected an architecture list or an object with 'architecture'")
    try:
        return doc["architecture"], _shape_of(doc)
    except (TypeError, ValueError):
        raise CliError(f"{path}: the input shape must be three integers C, H, W") from None


def _shape_of(doc: dict[str, Any]) -> Shape | None:
    from core.datasets import KNOWN_INPUT_SHAPES

    raw = doc.get("input_shape")
    if raw is not None:
        c, h, w = raw
        return int(c), int(h), int(w)
    spec_input = doc.get("input")
    if isinstance(spec_input, dict) and {"channels", "height", "width"} <= spec_input.keys():
        return int(spec_input["channels"]), int(spec_input["height"]), int(spec_input["width"])
    dataset = doc.get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else dataset
    return KNOWN_INPUT_SHAPES.get(name) if isinstance(name, str) else None


def spec_file_summary(path: Path, input_shape: Shape | None = None) -> Summary:
    """The summary of the model a spec file describes; ``input_shape`` overrides the file's.

    Raises:
        CliError: unreadable file or unknown input shape.
        core.errors.SpecError: an invalid architecture.
    """
    from core.estimate import estimate

    architecture, shape = load_spec_file(path)
    shape = input_shape or shape
    if shape is None:
        raise CliError(f"{path}: the input shape is unknown; pass --input-shape C,H,W")
    # sized from the shapes alone: a spec with a billion-unit layer is summarised, not built
    return estimate(architecture, shape).summary()


def print_summary(spec: str, input_shape: str | None) -> None:
    shape = parse_shape(input_shape) if input_shape is not None else None
    print(spec_file_summary(Path(spec), shape))
