"""Worker settings: the queue's settings (`jobs.settings.QueueSettings`) plus the worker's own.

One object per process, read from `CNN_*` variables (``NUMBA_CACHE_DIR`` keeps Numba's own
name) by `WorkerSettings.from_env`; the work horses a worker forks read the same environment.
``python -m worker --settings-table`` prints the README's table, kept in step by a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from core.settings import SettingsError
from jobs.settings import QueueSettings

__all__ = ["SettingsError", "WorkerSettings"]


class WorkerSettings(QueueSettings):
    """Settings of the training worker and its work horses; times are in seconds.

    Each field ``foo_bar`` is read from the environment variable ``CNN_FOO_BAR``.
    """

    models_dir: Path = Field(
        Path("models"),
        description="Model repository root (<name>/<version>/); checkpoints go to "
        "<root>/.checkpoints/<job id>/.",
    )
    numba_cache_dir: Path | None = Field(
        None,
        validation_alias="NUMBA_CACHE_DIR",
        description="Root of the Numba compile cache shared by all clones, warmed at worker "
        "start (unset: $XDG_CACHE_HOME/cnn-service/numba).",
    )
    worker_name: str | None = Field(
        None, description="RQ worker name, unique per Redis (unset: random)."
    )
    warmup: Literal["block", "background", "off"] = Field(
        "block", description="Compile-cache warm-up at start: block, background or off."
    )
    warmup_timeout: float = Field(
        600.0, ge=1.0, description="How long the warm-up subprocess may take, s."
    )
    job_monitoring_interval: int = Field(
        10, ge=1, description="Between the worker's heartbeats while a job runs, s."
    )
    heartbeat_grace: int = Field(
        30, ge=1, description="After a missed heartbeat, before a running job is abandoned, s."
    )
    maintenance_interval: int = Field(
        30, ge=1, description="Between registry clean-ups (re-queue of abandoned jobs), s."
    )
    worker_ttl: int = Field(
        60, ge=16, description="Worker key TTL, s; an idle worker wakes every TTL-15 s."
    )
    progress_interval: float = Field(
        0.5, ge=0.0, description="Shortest time between progress writes to the job record, s."
    )
    tensorboard_ttl: int = Field(
        30 * 24 * 3600,
        ge=0,
        description="How long a job's TensorBoard event files (<data>/tensorboard/<job id>/) "
        "are kept after their last write once the job is no longer queued or running, s; 0 = "
        "kept for ever.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )

    @field_validator("warmup", "log_level", mode="before")
    @classmethod
    def _normalise_word(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        word = value.strip()
        levels = {"debug", "info", "warning", "error"}
        return word.upper() if word.lower() in levels else word.lower()

    @property
    def checkpoints_dir(self) -> Path:
        """Per-job checkpoints: hidden, so never listed as a model name."""
        return self.models_dir / ".checkpoints"

    def abandoned_after(self) -> int:
        """Upper bound (s) from a worker's death to its job being re-queued or failed.

        Heartbeat TTL (monitoring interval + grace) plus one clean-up period; the clean-up runs
        in idle workers between blocking dequeues (every ``worker_ttl - 15`` s at most), so at
        least one worker must be idle or (re)started for the bound to hold.
        """
        wake = max(1, self.worker_ttl - 15)
        return (
            self.job_monitoring_interval
            + self.heartbeat_grace
            + max(self.maintenance_interval, wake)
        )
