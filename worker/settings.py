"""Worker settings: one typed object read from the environment (12-factor).

Every setting has a default that works on a developer machine; `WorkerSettings.from_env()` is the
only place that reads ``os.environ``. The same object is used by the worker process, the work
horses it forks and the `cnn train` client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable has a value that cannot be used; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum}, got {value}")
    return value


WARMUP_MODES = ("block", "background", "off")

# (environment variable, default, meaning): the README's settings table is generated from this.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = (
    ("CNN_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding the queue, job state, progress"),
    (
        "CNN_MODELS_DIR",
        "./models",
        "model repository root (<name>/<version>/); checkpoints "
        "go to <root>/.checkpoints/<job id>/",
    ),
    ("CNN_DATA_DIR", "./data", "data volume for npz/folder data sets"),
    ("CNN_QUEUES", "training", "comma-separated queues the worker listens on, in priority order"),
    (
        "NUMBA_CACHE_DIR",
        "(numba default: __pycache__)",
        "shared Numba compile cache; warmed at worker start",
    ),
    ("CNN_WORKER_NAME", "(random)", "RQ worker name (unique per Redis)"),
    ("CNN_WARMUP", "block", "compile-cache warm-up at start: block | background | off"),
    ("CNN_WARMUP_TIMEOUT", "600", "seconds the warm-up subprocess may take"),
    ("CNN_JOB_TIMEOUT", "3600", "default job timeout in s (a spec's timeout_s overrides it)"),
    (
        "CNN_JOB_RETRIES",
        "2",
        "re-runs of a job whose work horse/worker died (errors and timeouts are not retried)",
    ),
    ("CNN_RESULT_TTL", "604800", "seconds finished/failed job records are kept"),
    ("CNN_JOB_MONITORING_INTERVAL", "10", "s between the worker's heartbeats while a job runs"),
    ("CNN_HEARTBEAT_GRACE", "30", "s after a missed heartbeat before a running job is abandoned"),
    ("CNN_MAINTENANCE_INTERVAL", "30", "s between registry clean-ups (re-queue of abandoned jobs)"),
    ("CNN_WORKER_TTL", "60", "worker key TTL; an idle worker wakes every TTL-15 s"),
    ("CNN_PROGRESS_INTERVAL", "0.5", "minimum s between progress writes to job.meta"),
    ("CNN_LOG_LEVEL", "INFO", "worker log level"),
)


@dataclass(frozen=True)
class WorkerSettings:
    """Settings of the worker, its work horses and the `cnn train` client.

    Attributes mirror `SETTINGS_DOC`; times are in seconds.
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    queues: tuple[str, ...] = ("training",)
    numba_cache_dir: Path | None = None
    worker_name: str | None = None
    warmup: str = "block"
    warmup_timeout: float = 600.0
    job_timeout: int = 3600
    job_retries: int = 2
    result_ttl: int = 7 * 24 * 3600
    job_monitoring_interval: int = 10
    heartbeat_grace: int = 30
    maintenance_interval: int = 30
    worker_ttl: int = 60
    progress_interval: float = 0.5
    log_level: str = "INFO"

    @property
    def queue(self) -> str:
        """The queue `cnn train submit` enqueues on (the first of `queues`)."""
        return self.queues[0]

    @property
    def checkpoints_dir(self) -> Path:
        """Per-job checkpoints: hidden, so never listed as a model name."""
        return self.models_dir / ".checkpoints"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read the settings from `env` (default ``os.environ``).

        Raises:
            SettingsError: a variable is malformed; the message names it and the limit.
        """
        env = os.environ if env is None else env
        queues = tuple(q.strip() for q in env.get("CNN_QUEUES", "training").split(",") if q.strip())
        if not queues:
            raise SettingsError("CNN_QUEUES: at least one queue name is required")
        warmup = env.get("CNN_WARMUP", "block").strip().lower() or "block"
        if warmup not in WARMUP_MODES:
            raise SettingsError(f"CNN_WARMUP: expected one of {WARMUP_MODES}, got {warmup!r}")
        worker_ttl = _int(env, "CNN_WORKER_TTL", 60, minimum=16)
        cache = env.get("NUMBA_CACHE_DIR", "").strip()
        return cls(
            redis_url=env.get("CNN_REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0",
            models_dir=Path(env.get("CNN_MODELS_DIR", "").strip() or "models"),
            data_dir=Path(env.get("CNN_DATA_DIR", "").strip() or "data"),
            queues=queues,
            numba_cache_dir=Path(cache) if cache else None,
            worker_name=env.get("CNN_WORKER_NAME", "").strip() or None,
            warmup=warmup,
            warmup_timeout=_float(env, "CNN_WARMUP_TIMEOUT", 600.0, minimum=1.0),
            job_timeout=_int(env, "CNN_JOB_TIMEOUT", 3600, minimum=1),
            job_retries=_int(env, "CNN_JOB_RETRIES", 2, minimum=0),
            result_ttl=_int(env, "CNN_RESULT_TTL", 7 * 24 * 3600, minimum=1),
            job_monitoring_interval=_int(env, "CNN_JOB_MONITORING_INTERVAL", 10, minimum=1),
            heartbeat_grace=_int(env, "CNN_HEARTBEAT_GRACE", 30, minimum=1),
            maintenance_interval=_int(env, "CNN_MAINTENANCE_INTERVAL", 30, minimum=1),
            worker_ttl=worker_ttl,
            progress_interval=_float(env, "CNN_PROGRESS_INTERVAL", 0.5, minimum=0.0),
            log_level=env.get("CNN_LOG_LEVEL", "INFO").strip().upper() or "INFO",
        )

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
