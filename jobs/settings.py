"""Settings of the training queue, shared by every process that talks to it.

`QueueSettings` holds what submitting, reading and cancelling a job needs (where Redis is, which
queue, the limits a new job gets). The worker's `WorkerSettings` and the server's `Settings`
inherit it, so each process still has exactly one settings object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from core.settings import ServiceSettings, redact_url
from jobs.limits import DEFAULT_LIMITS, SpecLimits

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The schemes redis-py's ``from_url`` accepts.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class QueueSettings(ServiceSettings):
    """Where the job queue lives and what a submitted job is given.

    Each field ``foo_bar`` is read from the environment variable ``CNN_FOO_BAR``.
    """

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="Redis holding the job queue, job state and progress.",
    )
    redis_timeout_s: float = Field(
        1.0,
        gt=0.0,
        le=30.0,
        description="Connect timeout towards Redis, s; a reply may take twice that (a worker "
        "waiting for jobs has no reply limit).",
    )
    data_dir: Path = Field(
        Path("data"),
        description="Data volume shared by servers and workers: uploaded data sets "
        "(datasets/, names/) and npz/folder data sets placed by hand.",
    )
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        ("training",),
        description="Comma-separated queue names: a worker listens on all, in priority order; "
        "jobs are submitted to the first.",
    )
    job_timeout: int = Field(
        3600,
        ge=1,
        description="Default job timeout, s (a spec's timeout_s overrides it).",
    )
    job_retries: int = Field(
        2,
        ge=0,
        description="Re-runs of a job whose work horse or worker died (errors and timeouts are "
        "not retried).",
    )
    result_ttl: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="How long finished, failed and cancelled job records are kept, s.",
    )
    request_id_ttl_s: int = Field(
        24 * 3600,
        ge=1,
        description="How long a submit's request_id is remembered, s: the same request_id "
        "(and spec) again within it returns the first job instead of queuing another.",
    )

    max_queued_jobs: int = Field(
        100,
        ge=1,
        description="Jobs a queue may hold waiting for a worker; a submit beyond is refused "
        "(RESOURCE_EXHAUSTED).",
    )
    # Caps on a training spec (jobs.limits), checked from its shapes alone, the same in the
    # server, the worker and the CLI.
    max_parameters: int = Field(
        DEFAULT_LIMITS.max_parameters, ge=1, description="Trainable parameters of a model."
    )
    max_activation_bytes: int = Field(
        DEFAULT_LIMITS.max_activation_bytes,
        ge=1,
        description="Estimated training memory per sample (layer outputs, caches, scratch), bytes.",
    )
    max_training_bytes: int = Field(
        DEFAULT_LIMITS.max_training_bytes,
        ge=1,
        description="Estimated memory of a training step (batch activations, parameters, "
        "gradients, optimizer state), bytes.",
    )
    max_layer_units: int = Field(
        DEFAULT_LIMITS.max_layer_units, ge=1, description="Units of a dense layer."
    )
    max_filters: int = Field(DEFAULT_LIMITS.max_filters, ge=1, description="Filters of a conv.")
    max_kernel: int = Field(
        DEFAULT_LIMITS.max_kernel, ge=1, description="Side of a conv kernel or pooling window."
    )
    max_padding: int = Field(
        DEFAULT_LIMITS.max_padding, ge=1, description="Explicit padding of a conv or pool."
    )
    max_epochs: int = Field(DEFAULT_LIMITS.max_epochs, ge=1, description="Epochs of a job.")
    max_train_batch_size: int = Field(
        DEFAULT_LIMITS.max_train_batch_size, ge=1, description="Training batch size of a job."
    )
    max_timeout_s: int = Field(
        DEFAULT_LIMITS.max_timeout_s, ge=1, description="Timeout a spec may ask for, s."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(REDIS_SCHEMES):
            schemes = ", ".join(REDIS_SCHEMES)
            raise ValueError(f"must start with {schemes}; got {redact_url(value)!r}")
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            names = tuple(str(name).strip() for name in value)
            names = tuple(name for name in names if name)
            if not names:
                raise ValueError("at least one queue name is required")
            return names
        return value

    def spec_limits(self) -> SpecLimits:
        """The caps a training spec is validated against (`jobs.spec.parse_spec`)."""
        return SpecLimits.from_settings(self)

    @property
    def queue(self) -> str:
        """The queue jobs are submitted to (the first of `queues`)."""
        return self.queues[0]
