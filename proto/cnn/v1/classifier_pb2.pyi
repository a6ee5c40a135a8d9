from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_FLOAT32: DataType

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("encoded", "tensor")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    tensor: Tensor
    def __init__(self, encoded: _Optional[bytes] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "version", "images", "batch", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedCompositeFieldContainer[Image]
    batch: Tensor
    top_k: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., batch: _Optional[_Union[Tensor, _Mapping]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("class_indices", "class_names", "probabilities")
    CLASS_INDICES_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    class_indices: _containers.RepeatedScalarFieldContainer[int]
    class_names: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, class_indices: _Optional[_Iterable[int]] = ..., class_names: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "version", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    results: _containers.RepeatedCompositeFieldContainer[Classification]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[Classification, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionPolicy(_message.Message):
    __slots__ = ("latest", "all", "specific", "is_default")
    class Latest(_message.Message):
        __slots__ = ("num_versions",)
        NUM_VERSIONS_FIELD_NUMBER: _ClassVar[int]
        num_versions: int
        def __init__(self, num_versions: _Optional[int] = ...) -> None: ...
    class Specific(_message.Message):
        __slots__ = ("versions",)
        VERSIONS_FIELD_NUMBER: _ClassVar[int]
        versions: _containers.RepeatedScalarFieldContainer[int]
        def __init__(self, versions: _Optional[_Iterable[int]] = ...) -> None: ...
    class All(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    LATEST_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    SPECIFIC_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    latest: VersionPolicy.Latest
    all: VersionPolicy.All
    specific: VersionPolicy.Specific
    is_default: bool
    def __init__(self, latest: _Optional[_Union[VersionPolicy.Latest, _Mapping]] = ..., all: _Optional[_Union[VersionPolicy.All, _Mapping]] = ..., specific: _Optional[_Union[VersionPolicy.Specific, _Mapping]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class VersionState(_message.Message):
    __slots__ = ("version", "state", "reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    reason: str
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "versions", "default_version", "state", "policy", "version_states")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSION_STATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    default_version: int
    state: str
    policy: VersionPolicy
    version_states: _containers.RepeatedCompositeFieldContainer[VersionState]
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ..., default_version: _Optional[int] = ..., state: _Optional[str] = ..., policy: _Optional[_Union[VersionPolicy, _Mapping]] = ..., version_states: _Optional[_Iterable[_Union[VersionState, _Mapping]]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class InputSpec(_message.Message):
    __slots__ = ("channels", "height", "width", "dtype", "pixel_min", "pixel_max", "mean", "std", "resize")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    PIXEL_MIN_FIELD_NUMBER: _ClassVar[int]
    PIXEL_MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    channels: int
    height: int
    width: int
    dtype: str
    pixel_min: float
    pixel_max: float
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    resize: str
    def __init__(self, channels: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., dtype: _Optional[str] = ..., pixel_min: _Optional[float] = ..., pixel_max: _Optional[float] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., resize: _Optional[str] = ...) -> None: ...

class LayerSummary(_message.Message):
    __slots__ = ("index", "type", "output_shape", "parameters", "trainable_parameters", "global_receptive_field", "receptive_field", "jump", "start")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_RECEPTIVE_FIELD_FIELD_NUMBER: _ClassVar[int]
    RECEPTIVE_FIELD_FIELD_NUMBER: _ClassVar[int]
    JUMP_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: str
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    parameters: int
    trainable_parameters: int
    global_receptive_field: bool
    receptive_field: _containers.RepeatedScalarFieldContainer[int]
    jump: _containers.RepeatedScalarFieldContainer[int]
    start: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., type: _Optional[str] = ..., output_shape: _Optional[_Iterable[int]] = ..., parameters: _Optional[int] = ..., trainable_parameters: _Optional[int] = ..., global_receptive_field: _Optional[bool] = ..., receptive_field: _Optional[_Iterable[int]] = ..., jump: _Optional[_Iterable[int]] = ..., start: _Optional[_Iterable[float]] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("name", "version", "versions", "input", "class_names", "layers", "summary_text", "total_parameters", "metrics", "dataset", "created_at", "job_id", "weights_sha256", "architecture_json", "evaluation", "task", "target_names", "policy", "version_states")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_TEXT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_JSON_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TARGET_NAMES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSION_STATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    versions: _containers.RepeatedScalarFieldContainer[int]
    input: InputSpec
    class_names: _containers.RepeatedScalarFieldContainer[str]
    layers: _containers.RepeatedCompositeFieldContainer[LayerSummary]
    summary_text: str
    total_parameters: int
    metrics: _containers.ScalarMap[str, float]
    dataset: str
    created_at: str
    job_id: str
    weights_sha256: str
    architecture_json: str
    evaluation: EvaluationReport
    task: str
    target_names: _containers.RepeatedScalarFieldContainer[str]
    policy: VersionPolicy
    version_states: _containers.RepeatedCompositeFieldContainer[VersionState]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., versions: _Optional[_Iterable[int]] = ..., input: _Optional[_Union[InputSpec, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., layers: _Optional[_Iterable[_Union[LayerSummary, _Mapping]]] = ..., summary_text: _Optional[str] = ..., total_parameters: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., dataset: _Optional[str] = ..., created_at: _Optional[str] = ..., job_id: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., architecture_json: _Optional[str] = ..., evaluation: _Optional[_Union[EvaluationReport, _Mapping]] = ..., task: _Optional[str] = ..., target_names: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[VersionPolicy, _Mapping]] = ..., version_states: _Optional[_Iterable[_Union[VersionState, _Mapping]]] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("name", "precision", "recall", "f1", "support")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    precision: float
    recall: float
    f1: float
    support: int
    def __init__(self, name: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class TopKAccuracy(_message.Message):
    __slots__ = ("k", "accuracy")
    K_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    k: int
    accuracy: float
    def __init__(self, k: _Optional[int] = ..., accuracy: _Optional[float] = ...) -> None: ...

class EvaluationReport(_message.Message):
    __slots__ = ("split", "samples", "accuracy", "top_k", "classes", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix", "loss", "task", "regression")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    MACRO_PRECISION_FIELD_NUMBER: _ClassVar[int]
    MACRO_RECALL_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_FIELD_NUMBER: _ClassVar[int]
    split: str
    samples: int
    accuracy: float
    top_k: _containers.RepeatedCompositeFieldContainer[TopKAccuracy]
    classes: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    confusion_matrix: _containers.RepeatedScalarFieldContainer[int]
    loss: float
    task: str
    regression: RegressionMetrics
    def __init__(self, split: _Optional[str] = ..., samples: _Optional[int] = ..., accuracy: _Optional[float] = ..., top_k: _Optional[_Iterable[_Union[TopKAccuracy, _Mapping]]] = ..., classes: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., macro_precision: _Optional[float] = ..., macro_recall: _Optional[float] = ..., macro_f1: _Optional[float] = ..., confusion_matrix: _Optional[_Iterable[int]] = ..., loss: _Optional[float] = ..., task: _Optional[str] = ..., regression: _Optional[_Union[RegressionMetrics, _Mapping]] = ...) -> None: ...

class TargetMetrics(_message.Message):
    __slots__ = ("name", "mae", "rmse", "r2")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAE_FIELD_NUMBER: _ClassVar[int]
    RMSE_FIELD_NUMBER: _ClassVar[int]
    R2_FIELD_NUMBER: _ClassVar[int]
    name: str
    mae: float
    rmse: float
    r2: float
    def __init__(self, name: _Optional[str] = ..., mae: _Optional[float] = ..., rmse: _Optional[float] = ..., r2: _Optional[float] = ...) -> None: ...

class RegressionMetrics(_message.Message):
    __slots__ = ("targets", "mae", "rmse", "r2")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    MAE_FIELD_NUMBER: _ClassVar[int]
    RMSE_FIELD_NUMBER: _ClassVar[int]
    R2_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[TargetMetrics]
    mae: float
    rmse: float
    r2: float
    def __init__(self, targets: _Optional[_Iterable[_Union[TargetMetrics, _Mapping]]] = ..., mae: _Optional[float] = ..., rmse: _Optional[float] = ..., r2: _Optional[float] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("model", "version", "image", "target", "layers", "layer_types", "skip_feature_maps", "want_png", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    LAYER_TYPES_FIELD_NUMBER: _ClassVar[int]
    SKIP_FEATURE_MAPS_FIELD_NUMBER: _ClassVar[int]
    WANT_PNG_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    image: Image
    target: int
    layers: _containers.RepeatedScalarFieldContainer[int]
    layer_types: _containers.RepeatedScalarFieldContainer[str]
    skip_feature_maps: bool
    want_png: bool
    top_k: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., target: _Optional[int] = ..., layers: _Optional[_Iterable[int]] = ..., layer_types: _Optional[_Iterable[str]] = ..., skip_feature_maps: _Optional[bool] = ..., want_png: _Optional[bool] = ..., top_k: _Optional[int] = ...) -> None: ...

class Png(_message.Message):
    __slots__ = ("data", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class LayerMaps(_message.Message):
    __slots__ = ("index", "type", "maps", "min", "max", "png", "columns", "tile_scale", "global_receptive_field", "receptive_field", "jump", "start")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAPS_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TILE_SCALE_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_RECEPTIVE_FIELD_FIELD_NUMBER: _ClassVar[int]
    RECEPTIVE_FIELD_FIELD_NUMBER: _ClassVar[int]
    JUMP_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: str
    maps: Tensor
    min: float
    max: float
    png: Png
    columns: int
    tile_scale: int
    global_receptive_field: bool
    receptive_field: _containers.RepeatedScalarFieldContainer[int]
    jump: _containers.RepeatedScalarFieldContainer[int]
    start: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., type: _Optional[str] = ..., maps: _Optional[_Union[Tensor, _Mapping]] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., png: _Optional[_Union[Png, _Mapping]] = ..., columns: _Optional[int] = ..., tile_scale: _Optional[int] = ..., global_receptive_field: _Optional[bool] = ..., receptive_field: _Optional[_Iterable[int]] = ..., jump: _Optional[_Iterable[int]] = ..., start: _Optional[_Iterable[float]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("model", "version", "task", "prediction", "outputs", "target", "target_name", "target_score", "saliency", "saliency_max", "saliency_png", "saliency_scale", "layers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_SCORE_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_MAX_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_PNG_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_SCALE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    task: str
    prediction: Classification
    outputs: _containers.RepeatedScalarFieldContainer[float]
    target: int
    target_name: str
    target_score: float
    saliency: Tensor
    saliency_max: float
    saliency_png: Png
    saliency_scale: int
    layers: _containers.RepeatedCompositeFieldContainer[LayerMaps]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., task: _Optional[str] = ..., prediction: _Optional[_Union[Classification, _Mapping]] = ..., outputs: _Optional[_Iterable[float]] = ..., target: _Optional[int] = ..., target_name: _Optional[str] = ..., target_score: _Optional[float] = ..., saliency: _Optional[_Union[Tensor, _Mapping]] = ..., saliency_max: _Optional[float] = ..., saliency_png: _Optional[_Union[Png, _Mapping]] = ..., saliency_scale: _Optional[int] = ..., layers: _Optional[_Iterable[_Union[LayerMaps, _Mapping]]] = ...) -> None: ...
