"""Server settings: one typed object, read from `CNN_*` environment variables (12-factor)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.datasets import MAX_CLASSES
from core.ingest import IngestLimits
from core.settings import SettingsError, redact_url, settings_table
from jobs.settings import QueueSettings

__all__ = ["Settings", "SettingsError", "redact_url", "settings_table"]

DEFAULT_INGEST_LIMITS = IngestLimits()
#: The setting behind each IngestLimits field a server configures (named in error messages).
INGEST_SETTINGS = {
    "max_bytes": "CNN_MAX_UPLOAD_BYTES",
    "max_files": "CNN_MAX_UPLOAD_FILES",
    "max_decoded_pixels": "CNN_MAX_UPLOAD_PIXELS",
    "max_image_side": "CNN_MAX_UPLOAD_IMAGE_SIDE",
    "max_compression_ratio": "CNN_MAX_COMPRESSION_RATIO",
    "max_classes": "CNN_MAX_DATASET_CLASSES",
}


class Settings(QueueSettings):
    """Everything the server process can be configured with.

    The job queue's settings (`jobs.settings.QueueSettings`: Redis, queue, the limits of a
    submitted job) are inherited: the Training API submits with them.

    Each field `foo_bar` is read from the environment variable `CNN_FOO_BAR`.
    """

    models_dir: Path = Field(Path("models"), description="Model repository root directory.")
    grpc_address: str = Field(
        "127.0.0.1:50051", description="host:port to listen on; port 0 picks a free port."
    )
    server_processes: int = Field(
        0,
        ge=0,
        le=256,
        description="Serving processes sharing the gRPC port (SO_REUSEPORT) under a supervisor "
        "that restarts them; 1 = one process, no supervisor; 0 = one per usable CPU core.",
    )
    server_crash_limit: int = Field(
        5,
        ge=1,
        description="Exits in a row of one serving process (without serving 30 s in between) "
        "after which the supervisor stops everything and exits 1.",
    )
    workers: int = Field(
        16,
        ge=1,
        le=1024,
        description="Threads for blocking calls (the Training API's Redis requests); RPC "
        "handlers themselves run on one asyncio event loop.",
    )
    max_concurrent_rpcs: int = Field(
        512, ge=1, description="RPCs in progress beyond which new ones get RESOURCE_EXHAUSTED."
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request/response message, bytes."
    )
    max_inflight_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Request bytes being handled at once (all RPCs together) beyond which new "
        "requests get RESOURCE_EXHAUSTED; at least max_message_bytes.",
    )
    max_stream_inflight: int = Field(
        64,
        ge=1,
        description="Requests of one ModelStreamInfer stream handled at once; the stream reads "
        "its next request when one is answered.",
    )
    max_import_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024,
        description="Largest ONNX file Models.ImportModel takes, bytes (streamed to a "
        "temporary file, then held in memory while it is checked).",
    )
    max_images_per_request: int = Field(
        256, ge=1, description="Most images one Classify / ModelInfer request may carry."
    )
    max_image_side: int = Field(
        4096, ge=1, description="Largest width or height of an encoded (PNG/JPEG) image, px."
    )
    max_decoded_pixels: int = Field(
        4 * 4096 * 4096,
        ge=1,
        description="Most pixels the encoded (PNG/JPEG) images of one request may decode to, "
        "all together, as their headers say (checked before decoding); default: four "
        "4096x4096 images.",
    )
    max_explain_layers: int = Field(
        16,
        ge=1,
        le=1024,
        description="Most layers whose feature maps one Classifier.Explain request may ask for.",
    )
    max_explain_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest Classifier.Explain response, bytes (float32 saliency and feature "
        "maps, checked from the layer shapes before computing, plus PNGs); the smaller of it "
        "and max_message_bytes applies.",
    )
    explain_rate_per_min: float = Field(
        60.0,
        ge=0.0,
        description="Classifier.Explain calls per minute one caller (client host) may make on "
        "average (each runs a backward pass and draws pictures); beyond it RESOURCE_EXHAUSTED. "
        "0 = no limit.",
    )
    explain_burst: int = Field(
        20, ge=1, description="Classifier.Explain calls one caller may make at once."
    )
    decode_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads that decode images (and check large tensors) off the event loop; "
        "at most this many requests are decoded at once, the others wait their turn.",
    )
    max_batch_size: int = Field(
        64, ge=1, description="Most images one forward pass of the dynamic batcher handles."
    )
    max_queue_delay_ms: float = Field(
        1.0,
        ge=0.0,
        description="Longest a request waits for others to join its batch (only under load), ms.",
    )
    inline_forward_ms: float = Field(
        1.0,
        ge=0.0,
        description="Forward passes expected to take at most this long run on the event loop "
        "(no thread hand-off); longer ones run in the compute thread, ms.",
    )
    max_queue_size: int = Field(
        1024, ge=1, description="Images waiting per model beyond which requests are refused."
    )
    request_timeout_s: float = Field(
        30.0, gt=0.0, description="Inference wait limit when the client sets no deadline, s."
    )
    poll_interval_s: float = Field(
        0.5, gt=0.0, description="How often the model repository is scanned for new versions, s."
    )
    max_versions: int = Field(
        2,
        ge=1,
        description="Newest versions kept loaded per model (older ones are unloaded): the "
        "version policy of a model that has none of its own (`latest CNN_MAX_VERSIONS`).",
    )
    max_served_versions: int = Field(
        16,
        ge=1,
        le=1024,
        description="Most versions of one model served at once: the limit of a version "
        "policy (`latest N`, `specific` list, `all`); at least CNN_MAX_VERSIONS.",
    )
    max_watches: int = Field(
        64,
        ge=1,
        description="Concurrent Training.Watch streams (a stream holds no thread between its "
        "polls); beyond it Watch returns RESOURCE_EXHAUSTED.",
    )
    watch_interval_s: float = Field(
        0.2, gt=0.0, le=10.0, description="How often Training.Watch polls a job's state, s."
    )
    submit_rate_per_min: float = Field(
        30.0,
        ge=0.0,
        description="Training.Submit calls per minute one caller (client host) may make on "
        "average; beyond it RESOURCE_EXHAUSTED. 0 = no limit.",
    )
    submit_burst: int = Field(
        10, ge=1, description="Training.Submit calls one caller may make at once."
    )
    # Data set uploads (cnn.v1.Datasets), mapped onto core.ingest.IngestLimits.
    max_upload_bytes: int = Field(
        DEFAULT_INGEST_LIMITS.max_bytes,
        ge=1,
        description="Largest data set upload (the .npz or archive file), bytes.",
    )
    max_upload_files: int = Field(
        DEFAULT_INGEST_LIMITS.max_files,
        ge=1,
        description="Most images in an uploaded archive (samples in an .npz).",
    )
    max_upload_pixels: int = Field(
        DEFAULT_INGEST_LIMITS.max_decoded_pixels,
        ge=1,
        description="Most pixels (H x W summed over all images) an upload may decode to.",
    )
    max_upload_image_side: int = Field(
        DEFAULT_INGEST_LIMITS.max_image_side,
        ge=1,
        description="Largest width or height of an image in an upload, px.",
    )
    max_compression_ratio: float = Field(
        DEFAULT_INGEST_LIMITS.max_compression_ratio,
        gt=1.0,
        description="Most an archive (or one zip entry) may expand, unpacked / packed bytes, "
        "beyond its first 16 MiB (a compression bomb).",
    )
    max_dataset_classes: int = Field(
        DEFAULT_INGEST_LIMITS.max_classes,
        ge=2,
        le=MAX_CLASSES,
        description="Most classes of an uploaded data set.",
    )
    max_concurrent_uploads: int = Field(
        2,
        ge=1,
        le=64,
        description="Uploads checked and stored at once (each in a thread, after its bytes "
        "arrived); the others wait their turn.",
    )
    auth_token: str | None = Field(
        None,
        description="Bearer token required in `authorization` metadata; unset = no auth.",
        json_schema_extra={"secret": True},
    )
    tls_cert: Path | None = Field(None, description="PEM server certificate (enables TLS).")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate (mTLS)."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics port; unset = off, 0 = any free."
    )
    metrics_host: str = Field("127.0.0.1", description="Interface the metrics endpoint binds.")
    shutdown_grace_s: float = Field(
        10.0, ge=0.0, description="On SIGTERM: how long in-flight requests may take to finish, s."
    )
    shutdown_delay_s: float = Field(
        0.0,
        ge=0.0,
        description="On SIGTERM: how long health reports NOT_SERVING while still serving, "
        "before new RPCs are refused (lets load balancers notice), s.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or as one JSON object per line."
    )

    @field_validator("grpc_address")
    @classmethod
    def _address_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"must be host:port with port 0..65535, got {value!r}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _inflight_holds_one_message(self) -> Settings:
        if self.max_inflight_bytes < self.max_message_bytes:
            raise ValueError(
                f"CNN_MAX_INFLIGHT_BYTES ({self.max_inflight_bytes}) must be at least "
                f"CNN_MAX_MESSAGE_BYTES ({self.max_message_bytes})"
            )
        return self

    @model_validator(mode="after")
    def _served_holds_the_default(self) -> Settings:
        if self.max_served_versions < self.max_versions:
            raise ValueError(
                f"CNN_MAX_SERVED_VERSIONS ({self.max_served_versions}) must be at least "
                f"CNN_MAX_VERSIONS ({self.max_versions})"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("CNN_TLS_CERT and CNN_TLS_KEY must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("CNN_TLS_CLIENT_CA requires CNN_TLS_CERT and CNN_TLS_KEY")
        return self

    @property
    def process_count(self) -> int:
        """Serving processes to run: CNN_SERVER_PROCESSES, 0 resolved to the usable cores."""
        if self.server_processes:
            return self.server_processes
        return len(os.sched_getaffinity(0))

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    def ingest_limits(self) -> IngestLimits:
        """The limits an uploaded data set is held to (see `INGEST_SETTINGS`)."""
        return IngestLimits(
            max_bytes=self.max_upload_bytes,
            max_files=self.max_upload_files,
            max_decoded_pixels=self.max_upload_pixels,
            max_image_side=self.max_upload_image_side,
            max_compression_ratio=self.max_compression_ratio,
            max_classes=self.max_dataset_classes,
        )
