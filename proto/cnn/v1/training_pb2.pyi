from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_FINISHED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_FINISHED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus

class SubmitRequest(_message.Message):
    __slots__ = ("spec_json", "request_id")
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    request_id: str
    def __init__(self, spec_json: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("job_id", "duplicate")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    duplicate: bool
    def __init__(self, job_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    def __init__(self, status: _Optional[_Union[JobStatus, str]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("status", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    limit: int
    def __init__(self, status: _Optional[_Union[JobStatus, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("epoch", "epochs", "step", "total_steps", "loss", "train_accuracy", "val_accuracy", "images_per_s", "eta_s", "phase", "val_loss", "lr", "updated_at", "train_r2", "val_r2", "val_mae", "val_rmse")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_R2_FIELD_NUMBER: _ClassVar[int]
    VAL_R2_FIELD_NUMBER: _ClassVar[int]
    VAL_MAE_FIELD_NUMBER: _ClassVar[int]
    VAL_RMSE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    images_per_s: float
    eta_s: float
    phase: str
    val_loss: float
    lr: float
    updated_at: float
    train_r2: float
    val_r2: float
    val_mae: float
    val_rmse: float
    def __init__(self, epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., images_per_s: _Optional[float] = ..., eta_s: _Optional[float] = ..., phase: _Optional[str] = ..., val_loss: _Optional[float] = ..., lr: _Optional[float] = ..., updated_at: _Optional[float] = ..., train_r2: _Optional[float] = ..., val_r2: _Optional[float] = ..., val_mae: _Optional[float] = ..., val_rmse: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "status", "model_name", "spec_json", "progress", "error", "model_version", "metrics", "enqueued_at", "started_at", "ended_at", "queue", "stage", "attempts", "epochs", "tensorboard_dir")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TENSORBOARD_DIR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: JobStatus
    model_name: str
    spec_json: str
    progress: Progress
    error: str
    model_version: int
    metrics: _containers.ScalarMap[str, float]
    enqueued_at: float
    started_at: float
    ended_at: float
    queue: str
    stage: str
    attempts: int
    epochs: _containers.RepeatedCompositeFieldContainer[Progress]
    tensorboard_dir: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., model_name: _Optional[str] = ..., spec_json: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., error: _Optional[str] = ..., model_version: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., enqueued_at: _Optional[float] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., queue: _Optional[str] = ..., stage: _Optional[str] = ..., attempts: _Optional[int] = ..., epochs: _Optional[_Iterable[_Union[Progress, _Mapping]]] = ..., tensorboard_dir: _Optional[str] = ...) -> None: ...
