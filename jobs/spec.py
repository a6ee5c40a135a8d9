"""The training spec: the JSON payload of a training job (schema documented in examples/README.md).

This module must not import `rq` or `redis`: the gRPC server imports it to validate a spec before
it enqueues the job, and `cnn train submit` validates with it before anything touches Redis.
`TRAIN_FUNCTION` is the one place the path of the job function is written.

A spec is a flat JSON object: the model name, the architecture, the data set reference, an
optional job timeout, plus every field of `core.training.TrainConfig` (epochs, batch_size,
optimizer, schedule, seed, validation_split, early_stopping, augmentation, ...). Unknown keys are
rejected at every level, and errors name the field path, e.g.
``architecture.2.type: unknown layer 'conv3d'``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.datasets import KNOWN_INPUT_SHAPES, DatasetRef
from core.repository import MODEL_NAME_PATTERN
from core.training import TrainConfig
from jobs.errors import InvalidSpec

#: The job function a worker runs (and the only one it runs): named by path, so whoever submits
#: needs no worker code.
TRAIN_FUNCTION = "worker.jobs.train_job"

#: Longest job timeout a spec may ask for (one week).
MAX_TIMEOUT_S = 7 * 24 * 3600


class TrainSpec(TrainConfig):
    """A training job: what to build, on which data, and how to train it.

    Inherits every `TrainConfig` field (so the training options have exactly one definition)
    and adds the job-level fields below. ``extra="forbid"``: unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=MODEL_NAME_PATTERN,
        description="model name: the repository directory <models>/<name>/<version>/",
    )
    description: str = Field(default="", max_length=1000, description="free text, kept in meta")
    architecture: list[dict[str, Any]] = Field(
        min_length=1, description="layer configs, e.g. {'type': 'conv2d', 'filters': 8, ...}"
    )
    dataset: DatasetRef
    timeout_s: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_S,
        description="job timeout in seconds (default: the worker's CNN_JOB_TIMEOUT)",
    )

    @model_validator(mode="after")
    def _check_architecture(self) -> TrainSpec:
        errors = architecture_errors(self.architecture, self.input_shape(), seed=self.seed)
        errors += optimizer_errors(self.optimizer, self.schedule)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def input_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of the data set when known without loading it, else None."""
        return KNOWN_INPUT_SHAPES.get(self.dataset.name)

    def train_config(self) -> TrainConfig:
        """The `TrainConfig` part of the spec (what `core.training.fit` takes)."""
        fields = set(TrainConfig.model_fields)
        return TrainConfig.model_validate(self.model_dump(include=fields))

    def payload(self) -> dict[str, Any]:
        """The JSON-able job payload (round-trips through `parse_spec`)."""
        return self.model_dump(mode="json", exclude_none=False)


def architecture_errors(
    architecture: list[dict[str, Any]], input_shape: tuple[int, int, int] | None, *, seed: int = 0
) -> list[InitErrorDetails]:
    """Check an architecture without running any kernel.

    Each layer config is checked on its own (known type, known and valid options); when the
    data set's input shape is known, the model is also built (parameters allocated, shapes
    propagated) so that incompatible shapes are reported at submit time.
    """
    from core.layers import LAYER_TYPES, layer_from_config

    errors: list[InitErrorDetails] = []
    for index, cfg in enumerate(architecture):
        kind = cfg.get("type")
        if not isinstance(kind, str):
            errors.append(_error(("architecture", index, "type"), "missing layer type", kind))
            continue
        if kind not in LAYER_TYPES:
            known = ", ".join(sorted(LAYER_TYPES))
            errors.append(
                _error(
                    ("architecture", index, "type"),
                    f"unknown layer {kind!r} (known: {known})",
                    kind,
                )
            )
            continue
        try:
            layer_from_config(dict(cfg))
        except (ValueError, TypeError) as exc:
            errors.append(_error(("architecture", index), str(exc), cfg))
    if errors or input_shape is None:
        return errors

    from core.model import Sequential

    try:
        Sequential.from_spec(list(architecture), input_shape, seed=seed)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        match = re.match(r"layer (\d+) \(([^)]*)\): ", message)
        loc: tuple[str | int, ...] = ("architecture",)
        if match and int(match.group(1)) < len(architecture):
            loc = ("architecture", int(match.group(1)))
            message = message[match.end() :]
        errors.append(_error(loc, f"{message} [data set input {input_shape}]", architecture))
    return errors


def optimizer_errors(
    optimizer: dict[str, Any], schedule: dict[str, Any] | None
) -> list[InitErrorDetails]:
    """Check the optimizer and schedule configs by building them (no parameters, no steps)."""
    from core.optim import optimizer_from_config
    from core.schedules import schedule_from_config

    errors: list[InitErrorDetails] = []
    try:
        optimizer_from_config(dict(optimizer), [])
    except (ValueError, TypeError) as exc:
        errors.append(_error(("optimizer",), str(exc), optimizer))
    lr = optimizer.get("lr", 1e-3)
    try:
        schedule_from_config(dict(schedule) if schedule else None, float(lr), 1000)
    except (ValueError, TypeError) as exc:
        errors.append(_error(("schedule",), str(exc), schedule))
    return errors


def _error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    # The message is data, not a template: escape braces so pydantic does not format it.
    template = message.replace("{", "{{").replace("}", "}}")
    return InitErrorDetails(type=PydanticCustomError("spec", template), loc=loc, input=value)


def describe_errors(exc: ValidationError) -> list[str]:
    """One ``"dotted.path: message"`` line per pydantic error."""
    lines = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"]) or "spec"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the training spec schema)"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return lines


def parse_spec(data: Any) -> TrainSpec:
    """Validate a decoded JSON spec.

    Raises:
        InvalidSpec: naming each offending field path.
    """
    if not isinstance(data, dict):
        raise InvalidSpec([f"spec: expected a JSON object, got {type(data).__name__}"])
    try:
        return TrainSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidSpec(describe_errors(exc)) from None


def load_spec(path: str | Path) -> TrainSpec:
    """Read and validate a spec file.

    Raises:
        FileNotFoundError: no such file.
        InvalidSpec: bad JSON (with line/column) or invalid fields.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSpec([f"spec: not valid JSON: {exc}"]) from None
    return parse_spec(data)
