"""A small, typed gRPC client for the `cnn.v1` Classifier and Training services.

Deadlines on every call; UNAVAILABLE is retried by gRPC itself (service-config retry policy
with exponential back-off), so a server that restarts or a brief network blip costs latency,
not an error. Calls are spread over every address the target resolves to (gRPC's round_robin
policy): `dns:///cnn.example:50051` with several A records, a Kubernetes headless Service, or
`ipv4:10.0.0.1:50051,10.0.0.2:50051` reach all the replicas, and a retry can land on another.
Results are plain dataclasses: callers never touch protobuf messages. Training jobs come back
as `jobs.views.JobView`, decoded by `jobs.proto_codec` (the codec the server encodes with), so
they read the same as the views `jobs.queue.JobQueue` gives over Redis.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from cnn_client.datasets import (
    DEFAULT_CHUNK_BYTES,
    DatasetInfo,
    Progress,
    dataset_info,
    file_sha256,
    upload_format,
    upload_requests,
)
from cnn_client.explain import ExplainResult, explain_result
from cnn_client.lifecycle import (
    ModelStatus,
    VersionPolicy,
    VersionStatus,
    decode_policy,
    decode_status,
)
from core.evaluation import ClassMetrics, EvaluationReport, Report, TopKAccuracy
from core.regression import RegressionReport, TargetMetrics
from jobs import proto_codec
from jobs.follow import DEFAULT_OUTAGE_LIMIT_S, Follower
from jobs.status import JobStatus
from jobs.views import JobView, Phase
from proto.cnn.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    datasets_pb2,
    datasets_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

ImageInput = bytes | Path | np.ndarray
#: The slowest upload rate the default Upload deadline allows for, bytes/s.
MIN_UPLOAD_BYTES_PER_S = 1024 * 1024


class CnnClientError(Exception):
    """A call failed; `code` is the gRPC status, the message says what to do about it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TlsOptions:
    """PEM files for a TLS channel; leave `root_ca` unset to trust the system roots."""

    root_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None  # overrides the name checked against the certificate

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.root_ca),
            private_key=read(self.client_key),
            certificate_chain=read(self.client_cert),
        )


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image, most probable first."""

    class_indices: list[int]
    class_names: list[str]
    probabilities: list[float]


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    version: int
    results: list[Classification]


@dataclass(frozen=True)
class LayerInfo:
    """One row of a model's layer summary.

    `receptive_field` (height, width) and `jump` (height, width) are in input pixels, `start`
    is the (row, column) centre of the first unit's field; all three are None once the layer
    sees the whole input (dense, global pooling).
    """

    index: int
    type: str
    output_shape: tuple[int, ...]
    parameters: int
    trainable_parameters: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    start: tuple[float, float] | None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: int
    versions: list[int]
    input_shape: tuple[int, int, int]
    pixel_range: tuple[float, float]
    class_names: list[str]
    metrics: dict[str, float]
    dataset: str
    created_at: str
    summary_text: str
    layers: list[LayerInfo] = field(default_factory=list)
    total_parameters: int = 0
    job_id: str = ""
    weights_sha256: str = ""
    architecture: list[dict[str, Any]] = field(default_factory=list)
    #: How the server brings encoded images of another size to `input_shape`: "stretch" or
    #: "crop" (empty from a server that does not say).
    resize: str = ""
    #: How the version did on its data set's held-out test split; None when it has no report.
    evaluation: Report | None = None
    #: "classification", or "regression" (then `class_names` is empty and the model is served
    #: by KServe V2 ModelInfer as "prediction" [N, K], one column per target name).
    task: str = "classification"
    target_names: list[str] = field(default_factory=list)
    #: The model's version policy (None from a server that does not say).
    policy: VersionPolicy | None = None
    #: Every published version the answering server process knows of, with its state.
    version_states: list[VersionStatus] = field(default_factory=list)


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX file of one version (see proto/cnn/v1/models.proto for the graph's contract)."""

    name: str
    version: int
    data: bytes
    sha256: str
    opset: int
    #: the graph's metadata_props (JSON values: cnn.input, cnn.preprocessing, ...)
    metadata: dict[str, str]


@dataclass(frozen=True)
class ImportedModel:
    """The version an ONNX import became."""

    name: str
    version: int
    input_shape: tuple[int, int, int]
    pixel_range: tuple[float, float]
    class_names: list[str]
    layers: list[LayerInfo]
    summary_text: str
    architecture: list[dict[str, Any]]


#: Bytes per ImportModel chunk (well under the server's default max message size).
IMPORT_CHUNK_BYTES = 1024 * 1024


#: gRPC's client-side load-balancing policies a `CnnClient` accepts.
LOAD_BALANCING_POLICIES = ("round_robin", "pick_first")


def _service_config(attempts: int, load_balancing: str) -> str:
    """The channel's service config: the balancing policy and, for `attempts` > 1, the retry
    policy of both services (UNAVAILABLE only: the call did not run, or the server is going
    away; Classify, the model queries and the job queries are idempotent)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    if attempts > 1:
        policy = {
            "maxAttempts": min(attempts, 5),  # gRPC caps attempts at 5
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        services = [{"service": "cnn.v1.Classifier"}, {"service": "cnn.v1.Training"}]
        config["methodConfig"] = [{"name": services, "retryPolicy": policy}]
    return json.dumps(config)


class CnnClient:
    """Client for a cnn-service server, or for several replicas of it.

    Args:
        address: host:port of the server, or any gRPC target: `dns:///host:port` (every A
            record of the name, re-resolved when connections fail), `ipv4:h1:p1,h2:p2`.
        token: bearer token, sent as `authorization: Bearer <token>` metadata.
        tls: TLS options; None means a plaintext channel.
        timeout: default deadline per call, seconds.
        retries: attempts of a call that fails with UNAVAILABLE, 1..5 (1: no retry); the
            back-off starts at 0.1 s and doubles up to 2 s.
        load_balancing: "round_robin" (default: each call goes to the next connected
            address) or "pick_first" (one address until it fails).

    Raises:
        ValueError: `retries` or `load_balancing` out of range.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls: TlsOptions | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        load_balancing: str = "round_robin",
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not 1 <= retries <= 5:
            raise ValueError(f"retries must be 1..5 attempts (gRPC's limit), got {retries}")
        if load_balancing not in LOAD_BALANCING_POLICIES:
            raise ValueError(
                f"load_balancing must be one of {', '.join(LOAD_BALANCING_POLICIES)}, "
                f"got {load_balancing!r}"
            )
        self.address = address
        self.timeout = timeout
        options: list[tuple[str, Any]] = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config(retries, load_balancing)),
            # Connections of its own: gRPC otherwise shares them between channels to the same
            # address, and a new client would inherit another's reconnect back-off to a server
            # that was down (round_robin then fails the call at once instead of connecting).
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls is not None:
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.secure_channel(address, tls.credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._classifier = classifier_pb2_grpc.ClassifierStub(self._channel)
        self._training = training_pb2_grpc.TrainingStub(self._channel)
        self._datasets = datasets_pb2_grpc.DatasetsStub(self._channel)
        self._models = models_pb2_grpc.ModelsStub(self._channel)

    def __enter__(self) -> CnnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _client_error(exc, self.address) from None

    # -- classification ----------------------------------------------------------------------

    def classify(
        self,
        images: Sequence[ImageInput],
        *,
        model: str,
        version: int = 0,
        top_k: int = 5,
        timeout: float | None = None,
    ) -> ClassifyResult:
        """Classify images: encoded PNG/JPEG bytes, paths to such files, or arrays.

        Arrays are (C, H, W) or (H, W), uint8 or float32, in the model's pixel range.
        """
        request = classifier_pb2.ClassifyRequest(model=model, version=version, top_k=top_k)
        for image in images:
            request.images.append(_image_message(image))
        return _classify_result(self._call(self._classifier.Classify, request, timeout))

    def classify_batch(
        self,
        batch: np.ndarray,
        *,
        model: str,
        version: int = 0,
        top_k: int = 5,
        timeout: float | None = None,
    ) -> ClassifyResult:
        """Classify an (N, C, H, W) uint8 or float32 array in the model's pixel range."""
        request = classifier_pb2.ClassifyRequest(
            model=model, version=version, top_k=top_k, batch=_tensor_message(batch)
        )
        return _classify_result(self._call(self._classifier.Classify, request, timeout))

    def explain(
        self,
        image: ImageInput,
        *,
        model: str,
        version: int = 0,
        target: int | None = None,
        layers: Sequence[int] = (),
        layer_types: Sequence[str] = (),
        feature_maps: bool = True,
        want_png: bool = True,
        top_k: int = 5,
        timeout: float | None = None,
    ) -> ExplainResult:
        """Explain one image's prediction: saliency map and feature maps (numpy arrays), as
        PNG pictures too unless `want_png` is False.

        Args:
            image: encoded PNG/JPEG bytes, a path to such a file, or a (C, H, W) / (H, W)
                uint8 or float32 array in the model's pixel range.
            target: the class (or regression output) to explain; None: the predicted class.
            layers, layer_types: the layers whose feature maps to return (indices, types such
                as "conv2d"); both empty: every conv2d layer. `feature_maps=False`: none.

        Raises:
            CnnClientError: NOT_FOUND, INVALID_ARGUMENT (naming the field), RESOURCE_EXHAUSTED.
        """
        request = classifier_pb2.ExplainRequest(
            model=model,
            version=version,
            image=_image_message(image),
            layers=list(layers),
            layer_types=list(layer_types),
            skip_feature_maps=not feature_maps,
            want_png=want_png,
            top_k=top_k,
        )
        if target is not None:
            request.target = target
        return explain_result(self._call(self._classifier.Explain, request, timeout))

    def list_models(self, *, timeout: float | None = None) -> dict[str, list[int]]:
        """Loaded models: name -> loaded versions (ascending); unloaded models are left out
        (see `model_statuses`)."""
        return {m.name: m.versions for m in self.model_statuses(timeout=timeout) if m.versions}

    def model_statuses(self, *, timeout: float | None = None) -> list[ModelStatus]:
        """Every model of the repository, loaded or not, with its version policy and the
        state of each version (as the answering server process applied them)."""
        reply = self._call(self._classifier.ListModels, classifier_pb2.ListModelsRequest(), timeout)
        return [decode_status(m) for m in reply.models]

    def get_model(self, name: str, version: int = 0, *, timeout: float | None = None) -> ModelInfo:
        """Describe one model version (0: the newest loaded one)."""
        reply = self._call(
            self._classifier.GetModel,
            classifier_pb2.GetModelRequest(model=name, version=version),
            timeout,
        )
        return _model_info(reply)

    # -- models as ONNX files ------------------------------------------------------------------

    def export_model(
        self, name: str, version: int = 0, *, timeout: float | None = None
    ) -> ExportedModel:
        """One published version as ONNX bytes (0: the newest), checked against the header's
        size and sha256."""
        request = models_pb2.ExportModelRequest(model=name, version=version)
        try:
            replies = list(
                self._models.ExportModel(
                    request, timeout=timeout or self.timeout, metadata=self._metadata
                )
            )
        except grpc.RpcError as exc:
            raise _client_error(exc, self.address) from None
        if not replies or replies[0].WhichOneof("part") != "header":
            raise CnnClientError(grpc.StatusCode.DATA_LOSS, "ExportModel sent no header")
        header = replies[0].header
        data = b"".join(r.chunk for r in replies[1:])
        if len(data) != header.size_bytes or hashlib.sha256(data).hexdigest() != header.sha256:
            raise CnnClientError(
                grpc.StatusCode.DATA_LOSS,
                f"ExportModel sent {len(data)} bytes, its header announced {header.size_bytes} "
                "with another sha256",
            )
        return ExportedModel(
            header.name, header.version, data, header.sha256, header.opset, dict(header.metadata)
        )

    def import_model(
        self,
        data: bytes,
        name: str,
        *,
        class_names: Sequence[str] = (),
        pixel_range: tuple[float, float] | None = None,
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
        resize: str = "",
        timeout: float | None = None,
    ) -> ImportedModel:
        """Publish ONNX bytes as the next version of `name` (see `ImportHeader` for the
        options' defaults); raises CnnClientError(INVALID_ARGUMENT) naming refused nodes."""
        header = models_pb2.ImportHeader(
            name=name,
            class_names=list(class_names),
            pixel_range=list(pixel_range or ()),
            mean=list(mean),
            std=list(std),
            resize=resize,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )

        def messages() -> Iterator[models_pb2.ImportModelRequest]:
            yield models_pb2.ImportModelRequest(header=header)
            for start in range(0, len(data), IMPORT_CHUNK_BYTES):
                yield models_pb2.ImportModelRequest(chunk=data[start : start + IMPORT_CHUNK_BYTES])

        reply = self._call(self._models.ImportModel, messages(), timeout)
        return ImportedModel(
            name=reply.name,
            version=reply.version,
            input_shape=(reply.input.channels, reply.input.height, reply.input.width),
            pixel_range=(reply.input.pixel_min, reply.input.pixel_max),
            class_names=list(reply.class_names),
            layers=[_layer_info(layer) for layer in reply.layers],
            summary_text=reply.summary_text,
            architecture=json.loads(reply.architecture_json or "[]"),
        )

    # -- version lifecycle -------------------------------------------------------------------
    # Each call returns once the server process that answered applied the change; the other
    # processes of that server follow within its repository poll interval.

    def set_version_policy(
        self, name: str, policy: VersionPolicy | None, *, timeout: float | None = None
    ) -> ModelStatus:
        """Serve `policy`'s versions of `name` (None: the server's default, latest
        CNN_MAX_VERSIONS).

        Raises:
            CnnClientError: INVALID_ARGUMENT (N < 1, empty list, over the server's limit),
                NOT_FOUND (unknown model, unpublished version).
        """
        request = models_pb2.SetVersionPolicyRequest(model=name, use_default=policy is None)
        if policy is not None:
            request.policy.CopyFrom(policy.message())
        return decode_status(self._call(self._models.SetVersionPolicy, request, timeout))

    def get_version_policy(self, name: str, *, timeout: float | None = None) -> ModelStatus:
        """The model's state, version policy and version states."""
        request = models_pb2.GetVersionPolicyRequest(model=name)
        return decode_status(self._call(self._models.GetVersionPolicy, request, timeout))

    def load_model(self, name: str, *, timeout: float | None = None) -> ModelStatus:
        """Load an unloaded model (its policy's versions serve again)."""
        request = models_pb2.LoadModelRequest(model=name)
        return decode_status(self._call(self._models.LoadModel, request, timeout))

    def unload_model(self, name: str, *, timeout: float | None = None) -> ModelStatus:
        """Unload a model: it serves nothing, its versions stay in the repository."""
        request = models_pb2.UnloadModelRequest(model=name)
        return decode_status(self._call(self._models.UnloadModel, request, timeout))

    def delete_version(
        self, name: str, version: int, *, force: bool = False, timeout: float | None = None
    ) -> ModelStatus:
        """Delete a published version from the server's repository.

        Raises:
            CnnClientError: NOT_FOUND (no such version), FAILED_PRECONDITION (the only
                version served, or queued or running jobs start from it (`init_from`), and
                not `force`; named by a `specific` policy), UNAVAILABLE (not `force` and the
                server's job queue cannot tell which jobs use it).
        """
        request = models_pb2.DeleteVersionRequest(model=name, version=version, force=force)
        return decode_status(self._call(self._models.DeleteVersion, request, timeout))

    # -- training ----------------------------------------------------------------------------

    def submit(
        self,
        spec: dict[str, Any] | str,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> str:
        """Validate and enqueue a training spec (dict or JSON text); returns the job id.

        The request carries an idempotency key, `request_id` or a new UUID: gRPC's retries of
        this call resend it, so a retry after a lost answer gets the job the first attempt
        queued instead of a second one (see `SubmitRequest.request_id`). Pass your own to make
        retries of your own (another process, after a crash) safe too.

        Raises:
            CnnClientError: INVALID_ARGUMENT (spec or request_id rejected, naming the field),
                FAILED_PRECONDITION (`request_id` used before with another spec),
                RESOURCE_EXHAUSTED (queue full, submit rate), UNAVAILABLE.
        """
        spec_json = spec if isinstance(spec, str) else json.dumps(spec)
        request = training_pb2.SubmitRequest(
            spec_json=spec_json, request_id=request_id or str(uuid.uuid4())
        )
        return str(self._call(self._training.Submit, request, timeout).job_id)

    def get_job(self, job_id: str, *, timeout: float | None = None) -> JobView:
        """The job's current state.

        Raises:
            CnnClientError: NOT_FOUND for an unknown job; UNAVAILABLE when the server or its
                job queue cannot be reached.
        """
        reply = self._call(self._training.Get, training_pb2.GetJobRequest(job_id=job_id), timeout)
        return proto_codec.decode_job(reply)

    def watch(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
    ) -> Iterator[JobView]:
        """Yield every finished epoch, then the job's state on every change, until it ends.

        The updates come from the Training.Watch stream. When it breaks with UNAVAILABLE after
        it delivered something (the server restarted or is draining) it is opened again, with
        `jobs.follow.Follower`'s backoff, for up to `outage_limit_s`; what was already yielded
        (the epochs the new stream replays, an unchanged state) is not yielded again.

        Args:
            timeout: bounds the whole watch (default: no bound).

        Raises:
            CnnClientError: NOT_FOUND for an unknown job, UNAVAILABLE before any update or
                for longer than `outage_limit_s`, DEADLINE_EXCEEDED once `timeout` passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        follower = Follower(outage_limit_s=outage_limit_s)
        epochs_seen = 0
        delivered = False
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            stream = self._training.Watch(
                training_pb2.WatchRequest(job_id=job_id),
                timeout=remaining,
                metadata=self._metadata,
            )
            try:
                for message in stream:
                    delivered = True
                    view = proto_codec.decode_job(message)
                    epoch_end = _epoch_end(view)
                    if epoch_end is not None:
                        if epoch_end <= epochs_seen:
                            continue  # replayed by a reopened stream
                        epochs_seen = epoch_end
                    yield from follower.observe(view)
                    if follower.done:
                        return
                return  # the server ends a stream only after a final state
            except grpc.RpcError as exc:
                error = _client_error(exc, self.address)
                if exc.code() != grpc.StatusCode.UNAVAILABLE or not delivered:
                    raise error from None
                time.sleep(follower.failed(error, time.monotonic()))  # raises once too long
            finally:
                stream.cancel()

    def cancel(self, job_id: str, *, timeout: float | None = None) -> JobStatus:
        """Ask a job to stop; returns its status afterwards (CANCELLED once it stopped)."""
        reply = self._call(
            self._training.Cancel, training_pb2.CancelRequest(job_id=job_id), timeout
        )
        return proto_codec.decode_status(reply.status)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 50, timeout: float | None = None
    ) -> list[JobView]:
        """Jobs, newest first, at most `limit`, only those with `status` when given."""
        wanted = (
            proto_codec.encode_status(status) if status else training_pb2.JOB_STATUS_UNSPECIFIED
        )
        request = training_pb2.ListJobsRequest(status=wanted, limit=limit)
        reply = self._call(self._training.List, request, timeout)
        return [proto_codec.decode_job(job) for job in reply.jobs]

    # -- conversions (the only place that knows the wire layout on the client side) --------------

    # -- data sets ---------------------------------------------------------------------------

    def upload(
        self,
        path: Path | str,
        name: str,
        format: str | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_BYTES,
        on_progress: Progress | None = None,
        timeout: float | None = None,
    ) -> DatasetInfo:
        """Upload a data set file as the next version of `name`; returns the stored version.

        The file is streamed from disk `chunk_size` bytes at a time, never read whole. Its size
        and sha256 (computed in a first pass over the file) go in the header, so the server
        refuses an oversized upload before any byte is sent and checks what it received.

        Args:
            path: an .npz file or an image-folder archive (.zip, .tar, .tar.gz / .tgz).
            format: "npz", "zip", "tar" or "tar.gz"; None: from the file name's suffix.
            on_progress: called with (bytes sent, total bytes) as chunks go out.
            timeout: deadline of the whole upload, s; None: the client's timeout plus the
                time the file takes at 1 MiB/s.

        Raises:
            ValueError: an unknown format, or `chunk_size` < 1.
            FileNotFoundError: no such file.
            CnnClientError: refused by the server (the message names the file or entry and
                the reason or limit) or not reachable.
        """
        path = Path(path)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 byte, got {chunk_size}")
        header = datasets_pb2.UploadHeader(
            name=name,
            format=upload_format(path, format),
            size_bytes=path.stat().st_size,
            sha256=file_sha256(path),
            filename=path.name,
        )
        if timeout is None:
            timeout = self.timeout + header.size_bytes / MIN_UPLOAD_BYTES_PER_S
        requests = upload_requests(path, header, chunk_size, on_progress)
        try:
            reply = self._datasets.Upload(requests, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _client_error(exc, self.address) from None
        return dataset_info(reply)

    def list_datasets(self, name: str = "", *, timeout: float | None = None) -> list[DatasetInfo]:
        """Stored data set versions (only those of `name` when given), by name then version."""
        reply = self._call(
            self._datasets.List, datasets_pb2.ListDatasetsRequest(name=name), timeout
        )
        return [dataset_info(message) for message in reply.datasets]

    def get_dataset(self, ref: str, *, timeout: float | None = None) -> DatasetInfo:
        """One stored version: `ref` is "name" (the newest), "name:version" or "sha256:<hex>".

        Raises:
            CnnClientError: NOT_FOUND for an unknown reference (the message lists what is
                stored), INVALID_ARGUMENT for a malformed one.
        """
        reply = self._call(self._datasets.Get, datasets_pb2.GetDatasetRequest(dataset=ref), timeout)
        return dataset_info(reply)

    def delete_dataset(self, name: str, version: int, *, timeout: float | None = None) -> None:
        """Delete one version.

        Raises:
            CnnClientError: NOT_FOUND (no such version), FAILED_PRECONDITION (a queued or
                running job trains on it), UNAVAILABLE (the server cannot ask its job queue).
        """
        self._call(
            self._datasets.Delete,
            datasets_pb2.DeleteDatasetRequest(name=name, version=version),
            timeout,
        )


def _image_message(image: ImageInput) -> classifier_pb2.Image:
    if isinstance(image, Path):
        return classifier_pb2.Image(encoded=image.read_bytes())
    if isinstance(image, bytes | bytearray):
        return classifier_pb2.Image(encoded=bytes(image))
    if isinstance(image, np.ndarray):
        return classifier_pb2.Image(tensor=_tensor_message(image))
    raise TypeError(f"an image must be bytes, a Path or a numpy array, got {type(image).__name__}")


def _tensor_message(array: np.ndarray) -> classifier_pb2.Tensor:
    if array.dtype == np.uint8:
        dtype = classifier_pb2.DATA_TYPE_UINT8
    elif array.dtype == np.float32:
        dtype = classifier_pb2.DATA_TYPE_FLOAT32
    else:
        raise TypeError(f"array dtype must be uint8 or float32, got {array.dtype}")
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return classifier_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=data)


def _classify_result(reply: classifier_pb2.ClassifyResponse) -> ClassifyResult:
    return ClassifyResult(
        model=reply.model,
        version=reply.version,
        results=[
            Classification(
                class_indices=list(r.class_indices),
                class_names=list(r.class_names),
                probabilities=[float(p) for p in r.probabilities],
            )
            for r in reply.results
        ],
    )


def _model_info(reply: classifier_pb2.GetModelResponse) -> ModelInfo:
    spec = reply.input
    try:
        architecture = json.loads(reply.architecture_json) if reply.architecture_json else []
    except json.JSONDecodeError:
        architecture = []
    return ModelInfo(
        name=reply.name,
        version=reply.version,
        versions=list(reply.versions),
        input_shape=(spec.channels, spec.height, spec.width),
        pixel_range=(spec.pixel_min, spec.pixel_max),
        class_names=list(reply.class_names),
        metrics=dict(reply.metrics),
        dataset=reply.dataset,
        created_at=reply.created_at,
        summary_text=reply.summary_text,
        layers=[_layer_info(layer) for layer in reply.layers],
        total_parameters=reply.total_parameters,
        job_id=reply.job_id,
        weights_sha256=reply.weights_sha256,
        architecture=architecture if isinstance(architecture, list) else [],
        resize=spec.resize,
        evaluation=_evaluation(reply.evaluation) if reply.HasField("evaluation") else None,
        task=reply.task or "classification",
        target_names=list(reply.target_names),
        policy=decode_policy(reply.policy),
        version_states=[VersionStatus(s.version, s.state, s.reason) for s in reply.version_states],
    )


def _evaluation(report: classifier_pb2.EvaluationReport) -> Report:
    if report.task == "regression":
        part = report.regression
        return RegressionReport(
            split=report.split,
            samples=report.samples,
            targets=[
                TargetMetrics(name=t.name, mae=t.mae, rmse=t.rmse, r2=t.r2) for t in part.targets
            ],
            mae=part.mae,
            rmse=part.rmse,
            r2=part.r2,
        )
    return EvaluationReport(
        split=report.split,
        samples=report.samples,
        accuracy=report.accuracy,
        top_k=[TopKAccuracy(k=t.k, accuracy=t.accuracy) for t in report.top_k],
        classes=[
            ClassMetrics(
                name=c.name, precision=c.precision, recall=c.recall, f1=c.f1, support=c.support
            )
            for c in report.classes
        ],
        macro_precision=report.macro_precision,
        macro_recall=report.macro_recall,
        macro_f1=report.macro_f1,
        confusion_matrix=list(report.confusion_matrix),
        loss=report.loss,
    )


def _pair(values: Sequence[Any], kind: type[int] | type[float]) -> Any:
    return (kind(values[0]), kind(values[1])) if len(values) == 2 else None


def _layer_info(layer: classifier_pb2.LayerSummary) -> LayerInfo:
    local = not layer.global_receptive_field
    return LayerInfo(
        index=layer.index,
        type=layer.type,
        output_shape=tuple(int(d) for d in layer.output_shape),
        parameters=layer.parameters,
        trainable_parameters=layer.trainable_parameters,
        receptive_field=_pair(layer.receptive_field, int) if local else None,
        jump=_pair(layer.jump, int) if local else None,
        start=_pair(layer.start, float) if local else None,
    )


def _epoch_end(view: JobView) -> int | None:
    """The epoch a Watch message reports the end of (Watch sends one per finished epoch)."""
    p = view.progress
    if view.status is JobStatus.RUNNING and p is not None and p.phase is Phase.EVALUATING:
        return p.epoch
    return None


#: How the gRPC channel (not a server) words "no server there": refused, unknown host, TLS
#: mismatch. Messages a server sends are left alone, even if they mention a refused connection.
_UNREACHABLE = (
    "failed to connect to all addresses",  # pick_first
    "connections to all backends failing",  # round_robin
    "ssl handshake failed",
)
_UNRESOLVABLE = ("errors resolving", "dns resolution failed")


def _client_error(exc: grpc.RpcError, address: str) -> CnnClientError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    lowered = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and any(s in lowered for s in _UNRESOLVABLE):
        details = (
            f"cannot resolve the host of {address}: check the address "
            "(pass --address / set CNN_ADDRESS)"
        )
    elif code == grpc.StatusCode.UNAVAILABLE and any(s in lowered for s in _UNREACHABLE):
        details = (
            f"cannot reach a cnn-service server at {address}: is it running? "
            "(start one with `cnn serve`, or pass --address / set CNN_ADDRESS)"
        )
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        details = (
            f"the server at {address} does not offer this API ({details}): "
            "is it a cnn-service server of a matching version?"
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = f"the server at {address} did not answer in time ({details})"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        details = f"{details} (pass --token / set CNN_TOKEN)"
    return CnnClientError(code, details)
