"""The training spec: the JSON payload of a training job (schema documented in examples/README.md).

This module must not import `rq` or `redis`: the gRPC server imports it to validate a spec before
it enqueues the job, and `cnn train submit` validates with it before anything touches Redis.
`TRAIN_FUNCTION` is the one place the path of the job function is written.

A spec is a flat JSON object: the model name, the architecture, the data set reference, an
optional job timeout, an optional warm start (``init_from``), plus every field of
`core.training.TrainConfig` (epochs, batch_size, optimizer, schedule, seed, validation_split,
early_stopping, augmentation, ...). Unknown keys are rejected at every level, and errors name
the field path, e.g.
``architecture.2.type: unknown layer 'conv3d'``.

The model is sized from its shapes alone (`core.estimate`: nothing is allocated) and held to
the caps of `jobs.limits.SpecLimits` (``CNN_MAX_PARAMETERS``, ...), passed as
``parse_spec(data, limits)``: every process validates with its own `QueueSettings.spec_limits()`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.datasets import BUNDLED, DatasetRef
from core.images import ResizeMode
from core.repository import MODEL_NAME_PATTERN
from core.training import TrainConfig
from jobs.errors import InvalidSpec
from jobs.limits import DEFAULT_LIMITS, SpecLimits, job_errors, layer_option_errors, size_errors

#: The job function a worker runs (and the only one it runs): named by path, so whoever submits
#: needs no worker code.
TRAIN_FUNCTION = "worker.jobs.train_job"

#: Longest job timeout the schema allows (one week); CNN_MAX_TIMEOUT_S caps it further.
MAX_TIMEOUT_S = 7 * 24 * 3600

#: Largest input height or width a spec may ask for, px (the model artifact's bound).
MAX_INPUT_SIDE = 4096

Shape = tuple[int, int, int]

#: Errors a bad option may raise while a layer or optimizer parses it (a huge int is an
#: OverflowError once made a float, a deeply nested value a RecursionError).
_OPTION_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


class InputSection(BaseModel):
    """The model's input and how images are brought to it: ``"input": {"channels": 1 | 3,
    "height": H, "width": W, "resize": "crop" | "stretch"}``, every key optional.

    Unset channels and size are the data set's (a stored data set whose images differ in size
    needs ``height`` and ``width``); ``resize`` is how an image of another size is brought to
    H x W, in training and when served (`core.images.image_pixels`): "stretch" (the default)
    resizes both sides, "crop" keeps the aspect ratio and cuts the centre.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: Literal[1, 3] | None = Field(
        default=None, description="1 (grey) or 3 (RGB); default: the data set's"
    )
    height: int | None = Field(default=None, ge=1, le=MAX_INPUT_SIDE, description="px")
    width: int | None = Field(default=None, ge=1, le=MAX_INPUT_SIDE, description="px")
    resize: ResizeMode = "stretch"

    @model_validator(mode="after")
    def _size_together(self) -> InputSection:
        if (self.height is None) != (self.width is None):
            missing = "width" if self.width is None else "height"
            raise ValueError(f"input.{missing} is required when the other side is given")
        return self

    def shape_for(self, native: Shape) -> Shape:
        """(C, H, W) for a data set whose images are ``native`` (C, H, W)."""
        channels, height, width = native
        if self.height is not None and self.width is not None:
            height, width = self.height, self.width
        return self.channels or channels, height, width

    @property
    def shape(self) -> Shape | None:
        """(C, H, W) when the section states all three, else None."""
        if self.channels is None or self.height is None or self.width is None:
            return None
        return self.channels, self.height, self.width


def _freeze_entry(entry: Any) -> int | str:
    from core.layers import LAYER_TYPES

    if isinstance(entry, int) and not isinstance(entry, bool) and entry >= 0:
        return entry
    if isinstance(entry, str) and entry in LAYER_TYPES:
        return entry
    known = ", ".join(sorted(LAYER_TYPES))
    raise ValueError(f"{entry!r} is neither a layer index (>= 0) nor a layer type ({known})")


#: A ``freeze`` entry: a layer index into the architecture or a layer type.
FreezeEntry = Annotated[int | str, PlainValidator(_freeze_entry)]


class InitFrom(BaseModel):
    """Warm start from a published version: ``"init_from": {"model": "digits", "version": 3,
    "freeze": [0, "conv2d"], "reset_head": true}`` (checks and copying: `core.warm_start`;
    resolving and pinning: `jobs.warm_start`).

    ``freeze`` entries are layer indices into ``architecture`` or a layer type (``"conv2d"``:
    every conv layer); they must name layers with parameters. ``reset_head`` re-initialises
    the last layer with parameters, which may then give another number of classes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=MODEL_NAME_PATTERN, description="published model name")
    version: int | None = Field(
        default=None, ge=1, description="default: the newest when submitted (then pinned)"
    )
    freeze: list[FreezeEntry] = Field(
        default_factory=list, max_length=1000, description="layer indices or layer types"
    )
    reset_head: bool = False


class TensorBoardOptions(BaseModel):
    """TensorBoard event files for the job: ``"tensorboard": true`` (every default) or
    ``"tensorboard": {"scalars_every": 10, "histograms_every": 1, "images_every": 1}``.

    The worker writes them to ``<CNN_DATA_DIR>/tensorboard/<job id>/`` (`jobs.tensorboard`):
    loss, accuracy (or R²), learning rate and images/s every ``scalars_every`` optimizer steps
    and at every epoch end; validation figures per epoch; weight and gradient histograms of
    every parameter and the conv kernels as images every ``histograms_every`` and
    ``images_every`` epochs (0: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scalars_every: int = Field(
        default=1, ge=1, le=1_000_000, description="optimizer steps between scalar points"
    )
    histograms_every: int = Field(
        default=1, ge=0, le=10_000, description="epochs between histograms (0: none)"
    )
    images_every: int = Field(
        default=1, ge=0, le=10_000, description="epochs between kernel images (0: none)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        # `true` is the short form of "on with every default"; `false` is handled by TrainSpec
        return {} if value is True else value


def _tensorboard_option(value: Any) -> Any:
    """``false`` (and null) mean no event files; anything else is validated as the options."""
    return None if value is False else value


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
    input: InputSection | None = Field(
        default=None,
        description="model input (channels, height, width) and resize mode; default: the "
        "data set's channels and image size, resize 'stretch'",
    )
    timeout_s: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_S,
        description="job timeout in seconds (default: the worker's CNN_JOB_TIMEOUT)",
    )
    init_from: InitFrom | None = Field(
        default=None, description="start from a published version's weights (fine-tuning)"
    )
    tensorboard: Annotated[TensorBoardOptions | None, BeforeValidator(_tensorboard_option)] = Field(
        default=None,
        description="write TensorBoard event files (true, or TensorBoardOptions as an object)",
    )

    @model_validator(mode="after")
    def _check_architecture(self, info: ValidationInfo) -> TrainSpec:
        limits = (info.context or {}).get("limits") or DEFAULT_LIMITS
        errors = [
            _error(loc, message, None)
            for loc, message in job_errors(self.epochs, self.batch_size, self.timeout_s, limits)
        ]
        layer_errors = architecture_errors(self.architecture)
        errors += layer_errors
        errors += [
            _error(loc, message, None)
            for loc, message in layer_option_errors(self.architecture, limits)
        ]
        input_shape = self.input_shape()
        if not layer_errors and input_shape is not None:  # sized even when over a layer cap
            errors += self._size_errors(input_shape, limits)
        errors += optimizer_errors(self.optimizer, self.schedule)
        errors += self._freeze_range_errors()
        if self.task == "regression" and self.dataset.name in BUNDLED:
            errors.append(
                _error(
                    ("task",),
                    f"bundled data set {self.dataset.name!r} has class labels: a regression "
                    "task needs an uploaded .npz data set with float targets y",
                    self.task,
                )
            )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _freeze_range_errors(self) -> list[InitErrorDetails]:
        # the rest of init_from is checked against the source model (jobs.warm_start)
        freeze = self.init_from.freeze if self.init_from else []
        last = len(self.architecture) - 1
        return [
            _error(
                ("init_from", "freeze", k),
                f"no layer {entry}: the architecture has layers 0..{last}",
                entry,
            )
            for k, entry in enumerate(freeze)
            if isinstance(entry, int) and entry > last
        ]

    def _size_errors(
        self, input_shape: Shape, limits: SpecLimits, num_classes: int | None = None
    ) -> list[InitErrorDetails]:
        bundled = BUNDLED.get(self.dataset.name or "")
        if num_classes is None and bundled is not None:
            num_classes = bundled.num_classes
        return model_errors(
            self.architecture,
            input_shape,
            batch_size=self.batch_size,
            optimizer=str(self.optimizer.get("type")),
            limits=limits,
            num_classes=num_classes,
            task=self.task,
        )

    def check_model(
        self, input_shape: Shape, limits: SpecLimits, num_classes: int | None = None
    ) -> None:
        """Check the model on a data set's actual input shape and, when given, class count
        (the target count K for a regression task) (a data set whose shape is not known from
        the spec alone is checked here: a stored one when the job is submitted, a file one by
        the worker once loaded).

        Raises:
            InvalidSpec: shapes that do not fit, a last layer whose scores are not one per
                class, or a size over `limits`.
        """
        errors = self._size_errors(input_shape, limits, num_classes)
        if errors:
            raise InvalidSpec(describe_errors(ValidationError.from_exception_data("", errors)))

    def input_shape(self) -> Shape | None:
        """(C, H, W) of the model input when known without loading (or looking up) the data
        set, else None: a bundled set's (with the ``input`` section applied), or what the
        ``input`` section states in full."""
        bundled = BUNDLED.get(self.dataset.name or "")
        if bundled is not None:
            return self.input.shape_for(bundled.input_shape) if self.input else bundled.input_shape
        return self.input.shape if self.input else None

    def resize(self) -> ResizeMode:
        """How images are brought to the input size (the ``input`` section's, or "stretch")."""
        return self.input.resize if self.input else "stretch"

    def train_config(self) -> TrainConfig:
        """The `TrainConfig` part of the spec (what `core.training.fit` takes)."""
        fields = set(TrainConfig.model_fields)
        return TrainConfig.model_validate(self.model_dump(include=fields))

    def payload(self) -> dict[str, Any]:
        """The JSON-able job payload (round-trips through `parse_spec`)."""
        return self.model_dump(mode="json", exclude_none=False)


def architecture_errors(architecture: list[dict[str, Any]]) -> list[InitErrorDetails]:
    """Check each layer config on its own: known type, known and valid options."""
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
        except _OPTION_ERRORS as exc:
            errors.append(_error(("architecture", index), _option_problem(exc), None))
    return errors


def model_errors(
    architecture: list[dict[str, Any]],
    input_shape: tuple[int, int, int],
    *,
    batch_size: int,
    optimizer: str,
    limits: SpecLimits = DEFAULT_LIMITS,
    num_classes: int | None = None,
    task: str = "classification",
) -> list[InitErrorDetails]:
    """Check the model on per-sample input `input_shape` from its estimate (nothing is
    allocated): shapes that do not fit, a last layer giving other than `num_classes` scores
    (when given; for a regression ``task``, the number of targets), then parameters and
    memory over `limits`."""
    from core.estimate import estimate
    from core.optim import OPTIMIZER_TYPES

    try:
        model = estimate(list(architecture), input_shape)
    except _OPTION_ERRORS as exc:
        message = _option_problem(exc)
        match = re.match(r"layer (\d+) \(([^)]*)\): ", message)
        loc: tuple[str | int, ...] = ("architecture",)
        if match and int(match.group(1)) < len(architecture):
            loc = ("architecture", int(match.group(1)))
            message = message[match.end() :]
        return [_error(loc, f"{message} [data set input {input_shape}]", None)]
    errors: list[InitErrorDetails] = []
    last = model.layers[-1] if model.layers else None
    if num_classes is not None and last is not None and len(last.output_shape) == 1:
        (scores,) = last.output_shape
        if scores != num_classes:
            wanted = (
                f"{num_classes} targets: the last layer must give one output per target"
                if task == "regression"
                else f"{num_classes} classes: the last layer must give one score per class"
            )
            errors.append(
                _error(
                    ("architecture", last.index),
                    f"the model ends in {scores} scores, the data set has {wanted} "
                    f"[data set input {input_shape}]",
                    None,
                )
            )
    if optimizer not in OPTIMIZER_TYPES:
        optimizer = "adam"  # reported by optimizer_errors; size with the largest state
    found = size_errors(model, batch_size=batch_size, optimizer=optimizer, limits=limits)
    return errors + [_error(loc, message, None) for loc, message in found]


def _option_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OverflowError):
        return f"a number is too large ({exc})"
    return str(exc)


def optimizer_errors(
    optimizer: dict[str, Any], schedule: dict[str, Any] | None
) -> list[InitErrorDetails]:
    """Check the optimizer and schedule configs by building them (no parameters, no steps)."""
    from core.optim import optimizer_from_config
    from core.schedules import schedule_from_config

    errors: list[InitErrorDetails] = []
    try:
        optimizer_from_config(dict(optimizer), [])
    except _OPTION_ERRORS as exc:
        errors.append(_error(("optimizer",), _option_problem(exc), None))
    lr = optimizer.get("lr", 1e-3)
    try:
        schedule_from_config(dict(schedule) if schedule else None, float(lr), 1000)
    except _OPTION_ERRORS as exc:
        errors.append(_error(("schedule",), _option_problem(exc), None))
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


def parse_spec(data: Any, limits: SpecLimits = DEFAULT_LIMITS) -> TrainSpec:
    """Validate a decoded JSON spec against the caps `limits`.

    Raises:
        InvalidSpec: naming each offending field path.
    """
    if not isinstance(data, dict):
        raise InvalidSpec([f"spec: expected a JSON object, got {type(data).__name__}"])
    try:
        return TrainSpec.model_validate(data, context={"limits": limits})
    except ValidationError as exc:
        raise InvalidSpec(describe_errors(exc)) from None
    except RecursionError:
        raise InvalidSpec(["spec: nested too deeply"]) from None


def parse_spec_json(text: str, limits: SpecLimits = DEFAULT_LIMITS) -> TrainSpec:
    """Decode and validate JSON spec text.

    Raises:
        InvalidSpec: bad JSON (with line/column), nested too deeply, or invalid fields.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSpec([f"spec: not valid JSON: {exc}"]) from None
    except RecursionError:
        raise InvalidSpec(["spec: nested too deeply"]) from None
    return parse_spec(data, limits)


def load_spec(path: str | Path, limits: SpecLimits = DEFAULT_LIMITS) -> TrainSpec:
    """Read and validate a spec file.

    Raises:
        FileNotFoundError: no such file.
        InvalidSpec: bad JSON (with line/column) or invalid fields.
    """
    return parse_spec_json(Path(path).read_text(encoding="utf-8"), limits)
