"""Model artifacts: ``model.json`` (metadata) + ``weights.npz`` (arrays), no pickle anywhere.

``model.json`` records the format version, architecture, input spec (C, H, W, dtype, pixel
range), preprocessing (per-channel mean/std), class names, metrics, data set, creation time,
job id, the sha256 of ``weights.npz`` and, for a fine-tuned model, what it started from
(``init_from``). Loading verifies the digest before parsing the arrays
(``np.load(allow_pickle=False)``), so a corrupt or truncated file raises :class:`ArtifactError`
instead of giving a silently wrong model.

Beside them, optionally: ``learning_curve.png`` (from the training history), and the evaluation
on the held-out test split, ``evaluation.json`` (:class:`core.evaluation.EvaluationReport`)
with its ``confusion_matrix.png``. A version without ``evaluation.json`` has no report (its
data set had no test split, or it predates reports); one that cannot be read or validated is
a damaged version, like a bad ``model.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from core.checkpoint import npz_bytes, read_npz_bytes
from core.confusion_plot import CONFUSION_MATRIX_PNG, confusion_matrix_png
from core.datasets import Normalisation
from core.durable import atomic_write_bytes
from core.errors import ArtifactError, CnnError, ShapeError, SpecError
from core.evaluation import EVAL_BATCH, EvaluationReport, Report, evaluate, parse_report
from core.images import ResizeMode, scale_pixels
from core.model import Sequential
from core.regression import RegressionReport, TargetScaling

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"
LEARNING_CURVE_PNG = "learning_curve.png"
EVALUATION_JSON = "evaluation.json"


class InputRangeError(CnnError, ValueError):
    """Input pixels are NaN/infinite or outside the model's pixel range."""


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class InputSpec:
    """What the model takes: images (C, H, W) of ``dtype`` with values in ``pixel_range``.

    A frozen (pydantic) dataclass rather than a ``BaseModel``: the server reads it on every
    request, and a dataclass attribute is a plain instance lookup, several times cheaper.
    Validated all the same, whether built in code or read from ``model.json``. The bounds sit
    in ``Annotated`` rather than ``= Field(...)``: a class attribute of the same name would
    slow every read of the instance attribute down (about 3x, CPython 3.11).
    """

    channels: Annotated[int, Field(ge=1, le=64)]
    height: Annotated[int, Field(ge=1, le=4096)]
    width: Annotated[int, Field(ge=1, le=4096)]
    dtype: Literal["uint8", "float32"] = "uint8"
    pixel_range: tuple[float, float] = (0.0, 255.0)
    #: How encoded images of another size are brought to (H, W) (`core.images.image_pixels`);
    #: artifacts written before it existed were stretched, hence the default.
    resize: ResizeMode = "stretch"

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    @model_validator(mode="after")
    def _range(self) -> InputSpec:
        lo, hi = self.pixel_range
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"input.pixel_range must be finite with low < high, got {self.pixel_range}"
            )
        return self


class ModelMeta(BaseModel):
    """Contents of ``model.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1, max_length=128)
    version: int | None = None
    architecture: list[dict[str, Any]]
    input: InputSpec
    preprocessing: Normalisation
    #: Classification: the K class names (K >= 2). Regression: empty.
    class_names: list[str] = Field(default_factory=list)
    #: "regression": the network's K outputs are standardised targets, served as
    #: ``target_scaling.undo(outputs)`` in target units; artifacts before it are classifiers.
    task: Literal["classification", "regression"] = "classification"
    target_names: list[str] = Field(default_factory=list)
    target_scaling: TargetScaling | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    job_id: str | None = None
    #: Provenance of a warm start: {"model", "version", "copied", "frozen", "reset_head"}
    #: (layer indices); None for a model trained from scratch.
    init_from: dict[str, Any] | None = None
    weights_sha256: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ModelMeta:
        if self.task == "classification":
            if len(self.class_names) < 2 or self.target_names or self.target_scaling:
                raise ValueError(
                    f"a classification model needs class_names (at least 2, got "
                    f"{len(self.class_names)}) and no target_names or target_scaling"
                )
        else:
            k = len(self.target_names)
            if self.class_names or k < 1 or self.target_scaling is None:
                raise ValueError(
                    "a regression model needs target_names (at least 1) and target_scaling, "
                    "and no class_names"
                )
            if len(self.target_scaling.mean) != k:
                raise ValueError(
                    f"target_scaling has {len(self.target_scaling.mean)} targets, target_names {k}"
                )
        if len(self.preprocessing.mean) != self.input.channels:
            raise ValueError(
                f"preprocessing has {len(self.preprocessing.mean)} channel(s), input.channels is "
                f"{self.input.channels}"
            )
        return self


@dataclass
class LoadedModel:
    """A model ready to classify raw images (preprocessing from its metadata)."""

    model: Sequential
    meta: ModelMeta
    path: Path | None = None
    #: The report stored with the version (``evaluation.json``), None when there is none.
    evaluation: Report | None = None

    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw images (N, C, H, W) (or (N, H, W) for 1 channel) -> probabilities (N, K)."""
        if self.meta.task != "classification":
            raise SpecError(f"model {self.meta.name!r} is a regression model: use regress()")
        return self.model.predict_proba(preprocess(self.meta, images), batch_size)

    def regress(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw images (N, C, H, W) -> predictions (N, K) float32 in target units (the
        network's standardised outputs un-scaled by ``meta.target_scaling``)."""
        scaling = self.meta.target_scaling
        if scaling is None:
            raise SpecError(f"model {self.meta.name!r} is a classifier: use predict_proba()")
        return scaling.undo(self.model.logits(preprocess(self.meta, images), batch_size))

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self.predict_proba(images, batch_size).argmax(axis=1)

    def evaluate(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int = EVAL_BATCH
    ) -> EvaluationReport:
        """The evaluation report of raw images (N, C, H, W) against labels (N,), normalised
        by the model's own preprocessing (see `core.evaluation.evaluate`; a regression model:
        `evaluate_regressor`)."""
        return evaluate(
            self.model,
            images,
            labels,
            self.meta.class_names,
            normalisation=self.meta.preprocessing,
            batch_size=batch_size,
        )

    def evaluate_regressor(
        self, images: np.ndarray, targets: np.ndarray, batch_size: int = EVAL_BATCH
    ) -> RegressionReport:
        """The regression report of raw images (N, C, H, W) against targets (N, K)."""
        from core.regression import evaluate_regression

        if self.meta.target_scaling is None:
            raise SpecError(f"model {self.meta.name!r} is a classifier: use evaluate()")
        return evaluate_regression(
            self.model,
            images,
            targets,
            self.meta.target_names,
            self.meta.target_scaling,
            normalisation=self.meta.preprocessing,
            batch_size=batch_size,
        )


def image_input(image: Image.Image, spec: InputSpec, what: str = "image") -> np.ndarray:
    """A decoded image (any size, grey or colour) -> float32 (C, H, W) raw model input in the
    pixel range: converted to the spec's channels, brought to (H, W) by ``spec.resize`` and
    rescaled from 0..255. The server and local predictions both use it, so they agree; the
    per-channel normalisation (:func:`preprocess`) comes after, as for raw tensors.

    Raises:
        ImageDecodeError: the spec does not take 1 or 3 channels, or Pillow cannot convert.
    """
    return scale_pixels(image, spec.shape, spec.pixel_range, what, spec.resize)


def make_meta(
    model: Sequential,
    *,
    name: str,
    class_names: list[str],
    normalisation: Normalisation,
    pixel_range: tuple[float, float] = (0.0, 255.0),
    resize: ResizeMode = "stretch",
    metrics: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    job_id: str | None = None,
    version: int | None = None,
    init_from: dict[str, Any] | None = None,
    target_names: list[str] | None = None,
    target_scaling: TargetScaling | None = None,
) -> ModelMeta:
    """Metadata for ``model`` (architecture and input shape taken from it); with
    ``target_names`` and ``target_scaling`` (and no ``class_names``) a regression model's."""
    c, h, w = model.input_shape
    return ModelMeta(
        name=name,
        version=version,
        architecture=model.architecture,
        input=InputSpec(channels=c, height=h, width=w, pixel_range=pixel_range, resize=resize),
        preprocessing=normalisation,
        class_names=list(class_names),
        task="classification" if target_names is None else "regression",
        target_names=list(target_names or []),
        target_scaling=target_scaling,
        metrics=metrics or {},
        dataset=dataset,
        job_id=job_id,
        init_from=init_from,
    )


def save_artifact(
    directory: Path | str,
    model: Sequential,
    meta: ModelMeta,
    *,
    history: list[dict[str, Any]] | None = None,
    evaluation: Report | None = None,
) -> ModelMeta:
    """Write ``weights.npz`` then ``model.json`` (each atomically) into ``directory``.

    The architecture and the weights' sha256 are taken from ``model``; returns the meta written.
    With ``history`` (``TrainResult.history``) a ``learning_curve.png`` is written too; with
    ``evaluation`` its ``evaluation.json`` and ``confusion_matrix.png``. ``model.json`` comes
    last: a directory with it is complete.

    Raises:
        ArtifactError: the meta's input shape or class count disagree with the model, or the
            evaluation's classes differ from the meta's.
    """
    directory = Path(directory)
    if meta.input.shape != model.input_shape:
        raise ArtifactError(
            f"meta input {meta.input.shape} differs from the model input {model.input_shape}"
        )
    names = meta.class_names if meta.task == "classification" else meta.target_names
    if len(names) != model.num_classes:
        what = "class" if meta.task == "classification" else "target"
        raise ArtifactError(
            f"meta has {len(names)} {what} names, the model outputs {model.num_classes}"
        )
    if evaluation is not None and _report_names(evaluation) != names:
        field = "class_names" if meta.task == "classification" else "target_names"
        what = "classes" if isinstance(evaluation, EvaluationReport) else "targets"
        raise ArtifactError(
            f"the evaluation report's {what} {_report_names(evaluation)} differ from the meta's "
            f"{field} {names}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {key: value.astype(model.dtype) for key, value in model.named_arrays().items()}
    data = npz_bytes(arrays)
    meta = meta.model_copy(
        update={
            "architecture": model.architecture,
            "weights_sha256": hashlib.sha256(data).hexdigest(),
            "format_version": FORMAT_VERSION,
        }
    )
    atomic_write_bytes(directory / WEIGHTS_NPZ, data)
    if history:
        from core.learning_curve import learning_curve_png

        learning_curve_png(history, directory / LEARNING_CURVE_PNG)
    if evaluation is not None:
        atomic_write_bytes(
            directory / EVALUATION_JSON, (evaluation.model_dump_json() + "\n").encode()
        )
        if isinstance(evaluation, EvaluationReport):
            confusion_matrix_png(evaluation, directory / CONFUSION_MATRIX_PNG)
    atomic_write_bytes(directory / MODEL_JSON, (meta.model_dump_json(indent=2) + "\n").encode())
    return meta


def read_meta(directory: Path | str) -> ModelMeta:
    """Parse and validate ``model.json``.

    Raises:
        ArtifactError: missing, not JSON, invalid fields or unsupported format version.
    """
    path = Path(directory) / MODEL_JSON
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON (corrupt or truncated?): {exc}") from exc
    if isinstance(doc, dict) and doc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {doc.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    try:
        return ModelMeta.model_validate(doc)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid model metadata: {exc}") from exc


def _report_names(report: Report) -> list[str]:
    """The classes (classification) or targets (regression) a report lists."""
    return report.class_names if isinstance(report, EvaluationReport) else report.target_names


def read_evaluation(directory: Path | str, class_names: list[str] | None = None) -> Report | None:
    """Parse and validate ``evaluation.json``; None when the version has none.

    Args:
        directory: the version directory.
        class_names: when given, the report must list exactly these classes (the meta's; a
            regression model's target names).

    Raises:
        ArtifactError: unreadable, not JSON, invalid or inconsistent fields, other classes.
    """
    path = Path(directory) / EVALUATION_JSON
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        report = parse_report(raw)
    except ValidationError as exc:
        # pydantic reports malformed JSON as a validation error too ("json_invalid")
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise ArtifactError(f"{path}: not valid JSON (corrupt or truncated?)") from exc
        raise ArtifactError(f"{path}: invalid evaluation report: {exc}") from exc
    if class_names is not None and _report_names(report) != list(class_names):
        what = "classes" if isinstance(report, EvaluationReport) else "targets"
        raise ArtifactError(
            f"{path}: {what} {_report_names(report)} differ from the names {class_names} in "
            f"{MODEL_JSON}"
        )
    return report


def load_artifact(directory: Path | str) -> LoadedModel:
    """Load and verify a model directory (``model.json`` + ``weights.npz``).

    Raises:
        ArtifactError: missing/corrupt/truncated files, sha256 mismatch, weights that do not
            fit the architecture, an invalid architecture, a damaged ``evaluation.json``.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    weights_path = directory / WEIGHTS_NPZ
    try:
        data = weights_path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{weights_path}: cannot read ({exc.strerror})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.weights_sha256:
        raise ArtifactError(
            f"{weights_path}: sha256 {digest} does not match weights_sha256 "
            f"{meta.weights_sha256} in {MODEL_JSON} (corrupt or truncated)"
        )
    arrays = read_npz_bytes(data, str(weights_path))
    try:
        model = Sequential.from_spec(meta.architecture, meta.input.shape)
    except SpecError as exc:
        raise ArtifactError(f"{directory / MODEL_JSON}: invalid architecture: {exc}") from exc
    names = meta.class_names if meta.task == "classification" else meta.target_names
    if model.num_classes != len(names):
        what = "class" if meta.task == "classification" else "target"
        raise ArtifactError(
            f"{directory / MODEL_JSON}: {len(names)} {what} names but the model "
            f"outputs {model.num_classes} scores"
        )
    try:
        model.load_named_arrays(arrays)
    except ArtifactError as exc:
        raise ArtifactError(f"{weights_path}: {exc}") from exc
    evaluation = read_evaluation(directory, names)
    return LoadedModel(model, meta, directory, evaluation)


def preprocess(meta: ModelMeta, images: np.ndarray) -> np.ndarray:
    """Raw images in ``meta.input.pixel_range`` -> normalised float32 (N, C, H, W).

    Accepts (N, C, H, W), or (N, H, W) for single-channel models; uint8 or float.

    Raises:
        ShapeError: wrong rank or shape (naming the expected one).
        InputRangeError: NaN/infinite values or values outside the pixel range.
    """
    x = np.asarray(images)
    c, h, w = meta.input.shape
    if x.ndim == 3 and c == 1:
        x = x[:, None, :, :]
    if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
        raise ShapeError(
            f"images have shape {tuple(np.shape(images))}, expected (N, {c}, {h}, {w})"
        )
    if x.dtype.kind not in "uif":
        raise ShapeError(f"images have dtype {x.dtype}, expected uint8 or float")
    lo, hi = meta.input.pixel_range
    if x.size:
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise InputRangeError("images contain NaN or infinite values")
        x_min, x_max = float(x.min()), float(x.max())
        if x_min < lo or x_max > hi:
            raise InputRangeError(
                f"pixel values span {x_min:g}..{x_max:g}, outside the model's range {lo:g}..{hi:g}"
            )
    return meta.preprocessing.apply(x, np.float32)
