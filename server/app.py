"""Assemble the gRPC server: servicers, health, reflection, watcher, interceptors.

A `grpc.aio` server: every RPC handler is a coroutine on one event loop (no handler threads,
no thread hand-offs per request); blocking work (Redis calls of the Training API, long forward
passes, model loading) runs in threads. `await create_server(settings)` returns
`(server, port)`; binding port 0 lets tests run many servers side by side. The returned
`Server` owns the lifecycle: `await start()`, `await drain_and_stop()`.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.datastore import DataStore
from core.repository import ModelRepository
from jobs.queue import JobQueue
from proto.cnn.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    datasets_pb2,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from server import metrics
from server.classifier_servicer import ClassifierServicer
from server.codec import Limits
from server.decoding import PixelWorkers
from server.explainer import ExplainLimits
from server.inference import InferenceService
from server.interceptors import ServiceInterceptor
from server.lifecycle import LifecycleService
from server.model import ServedModel, load_version
from server.models_servicer import ModelsServicer
from server.rate_limit import RateLimiter
from server.registry import ModelRegistry
from server.settings import Settings
from server.watcher import Loader, RepositoryWatcher

log = logging.getLogger(__name__)

CLASSIFIER_SERVICE = classifier_pb2.DESCRIPTOR.services_by_name["Classifier"].full_name
TRAINING_SERVICE = training_pb2.DESCRIPTOR.services_by_name["Training"].full_name
DATASETS_SERVICE = datasets_pb2.DESCRIPTOR.services_by_name["Datasets"].full_name
MODELS_SERVICE = models_pb2.DESCRIPTOR.services_by_name["Models"].full_name
INFERENCE_SERVICE = "inference.GRPCInferenceService"


def server_version() -> str:
    try:
        return importlib.metadata.version("cnn-service")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


class Server:
    """A configured, not yet started gRPC server plus the model machinery behind it.

    Lives on the event loop that created it; `start` and `drain_and_stop` run there.
    """

    def __init__(
        self,
        settings: Settings,
        grpc_server: grpc.aio.Server,
        registry: ModelRegistry,
        watcher: RepositoryWatcher,
        health_servicer: health.aio.HealthServicer,
        services: list[str],
        blocking: ThreadPoolExecutor,
        decoders: PixelWorkers,
    ) -> None:
        self.settings = settings
        self.grpc_server = grpc_server
        self.registry = registry
        self.watcher = watcher
        self.health = health_servicer
        self._services = services
        self._blocking = blocking
        self._decoders = decoders
        self._draining = False
        self._stopped = asyncio.Event()
        # set when new RPCs are refused: open streams answer what they read, then end
        self.stopping = asyncio.Event()
        self.on_stop: list[Callable[[], None]] = []  # closers of services added after __init__
        self._health_gate: asyncio.Task[None] | None = None
        self.metrics_port: int | None = None
        #: set once health turned SERVING (the supervisor's children report it)
        self.serving = asyncio.Event()

    def ready(self) -> bool:
        """Repository scanned at least once and not draining."""
        return self.watcher.scanned.is_set() and not self._draining

    def draining(self) -> bool:
        """True once `drain_and_stop` began."""
        return self._draining

    async def start(self) -> None:
        """Start serving; health turns SERVING after the first repository scan."""
        await self.grpc_server.start()
        self.watcher.start()
        self._health_gate = asyncio.create_task(self._serve_when_scanned(), name="health-gate")
        if self.settings.metrics_port is not None:
            self.metrics_port = metrics.serve(
                self.settings.metrics_host, self.settings.metrics_port
            )

    async def _serve_when_scanned(self) -> None:
        while not self.watcher.scanned.is_set():
            await asyncio.sleep(0.05)
            if self._draining:
                return
        for service in ("", *self._services):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.serving.set()
        log.info(
            "repository %s scanned: serving %s",
            self.settings.models_dir,
            {n: self.registry.versions(n) for n in self.registry.names()} or "no models yet",
        )

    async def drain_and_stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: health NOT_SERVING, refuse new RPCs, finish in-flight ones.

        Returns once in-flight RPCs finished (or `grace` seconds passed) and the watcher and
        the batchers stopped. Safe to call more than once.
        """
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        if self._health_gate is not None:
            self._health_gate.cancel()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("draining: health NOT_SERVING, finishing in-flight requests (grace %.1f s)", grace)
        await self.health.enter_graceful_shutdown()
        if self.settings.shutdown_delay_s > 0:
            await asyncio.sleep(self.settings.shutdown_delay_s)
        self.stopping.set()
        await self.grpc_server.stop(grace)
        await asyncio.get_running_loop().run_in_executor(self._blocking, self.watcher.stop)
        self.registry.close_all()
        self._decoders.close()
        for close in self.on_stop:
            close()
        self._blocking.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        log.info("stopped")


def _credentials(settings: Settings) -> grpc.ServerCredentials:
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("TLS needs CNN_TLS_CERT and CNN_TLS_KEY")
    key = Path(settings.tls_key).read_bytes()
    cert = Path(settings.tls_cert).read_bytes()
    ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def _loader(settings: Settings, loop: asyncio.AbstractEventLoop) -> Loader:
    def load(path: Path, name: str, version: int) -> ServedModel:
        return load_version(
            path,
            name,
            version,
            max_batch_size=settings.max_batch_size,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000.0,
            max_queue_size=settings.max_queue_size,
            loop=loop,
            inline_max_s=settings.inline_forward_ms / 1000.0,
            observe=metrics.batch_observer(name),
        )

    return load


def _job_queue(settings: Settings, server: Server, datasets: DataStore) -> JobQueue:
    """The job queue every API of this server uses (no connection is made here): Submit pins
    specs naming uploaded data sets against `datasets` (the data store the Datasets API fills)
    and warm starts against the served model repository; the deletes of data sets and model
    versions ask it which jobs use them."""
    queue = JobQueue.connect(
        settings, datasets=datasets, models=ModelRepository(settings.models_dir)
    )
    server.on_stop.append(queue.close)
    return queue


def _add_training(
    settings: Settings,
    server: Server,
    grpc_server: grpc.aio.Server,
    blocking: ThreadPoolExecutor,
    queue: JobQueue,
) -> None:
    """The Training API over `queue`; its blocking Redis calls run in the `blocking` threads."""
    from server.training_servicer import TrainingServicer

    servicer = TrainingServicer(
        queue,
        blocking=blocking,
        max_watches=settings.max_watches,
        watch_interval_s=settings.watch_interval_s,
        draining=server.draining,
        submit_limiter=RateLimiter(settings.submit_rate_per_min, settings.submit_burst),
    )
    training_pb2_grpc.add_TrainingServicer_to_server(servicer, grpc_server)


async def _add_datasets(
    settings: Settings,
    server: Server,
    grpc_server: grpc.aio.Server,
    blocking: ThreadPoolExecutor,
    store: DataStore,
    queue: JobQueue,
) -> None:
    """The Datasets API over `store` (the data store at `settings.data_dir`); what interrupted
    uploads left there is removed first (see `server.uploads.STALE_STAGING_S`)."""
    from proto.cnn.v1 import datasets_pb2_grpc
    from server.datasets_servicer import DatasetsServicer
    from server.uploads import STALE_STAGING_S, UploadService

    try:
        removed = await asyncio.get_running_loop().run_in_executor(
            blocking, store.clean_stale_staging, STALE_STAGING_S
        )
    except OSError as exc:
        log.warning("data volume %s: cannot clean stale uploads: %s", settings.data_dir, exc)
    else:
        if removed:
            log.info("data volume %s: removed %d stale upload(s)", settings.data_dir, len(removed))
    uploads = UploadService(
        store, settings.ingest_limits(), blocking, settings.max_concurrent_uploads
    )
    server.on_stop.append(uploads.close)
    servicer = DatasetsServicer(uploads, queue, blocking=blocking)
    datasets_pb2_grpc.add_DatasetsServicer_to_server(servicer, grpc_server)


async def create_server(settings: Settings, *, shared_port: bool = False) -> tuple[Server, int]:
    """Build the server and bind `settings.grpc_address`; returns (server, bound port).

    Await it on the event loop that will serve: every RPC handler runs there. `shared_port`:
    one of several serving processes on the port (`server.supervisor`): bind with
    SO_REUSEPORT and tag unary answers with the `cnn-server-pid` trailing metadata.

    Raises:
        RuntimeError: the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    registry = ModelRegistry()

    def publish_loaded() -> None:
        metrics.set_loaded({n: registry.versions(n) for n in registry.names()})

    watcher = RepositoryWatcher(
        Path(settings.models_dir),
        registry,
        _loader(settings, loop),
        interval_s=settings.poll_interval_s,
        max_versions=settings.max_versions,
        max_served_versions=settings.max_served_versions,
        on_change=publish_loaded,
    )
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", int(shared_port)),
    ]
    interceptor = ServiceInterceptor(
        settings.auth_token, settings.max_inflight_bytes, tag_pid=shared_port
    )
    grpc_server = grpc.aio.server(
        interceptors=[interceptor],
        options=options,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    blocking = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="blocking")
    decoders = PixelWorkers(settings.decode_threads)
    health_servicer = health.aio.HealthServicer()
    services = [CLASSIFIER_SERVICE, INFERENCE_SERVICE, DATASETS_SERVICE, MODELS_SERVICE]
    for service in ("", *services):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    server = Server(
        settings, grpc_server, registry, watcher, health_servicer, services, blocking, decoders
    )
    datasets = DataStore(settings.data_dir)  # one store for every service of this server
    queue = _job_queue(settings, server, datasets)
    lifecycle = LifecycleService(
        Path(settings.models_dir),
        registry,
        watcher,
        blocking,
        jobs=queue,
        max_served_versions=settings.max_served_versions,
        apply_timeout_s=settings.request_timeout_s,
    )
    inference = InferenceService(registry, settings.request_timeout_s, decoders)
    limits = Limits(
        max_images_per_request=settings.max_images_per_request,
        max_image_side=settings.max_image_side,
        max_decoded_pixels=settings.max_decoded_pixels,
    )

    # The V2 stubs are imported here, inside the server process only (see server.codec_v2).
    from proto.inference import grpc_service_pb2_grpc
    from server.v2_servicer import InferenceServicer

    classifier_pb2_grpc.add_ClassifierServicer_to_server(
        ClassifierServicer(
            inference,
            limits,
            ExplainLimits.of(
                settings.max_explain_layers, settings.max_explain_bytes, settings.max_message_bytes
            ),
            RateLimiter(settings.explain_rate_per_min, settings.explain_burst),
        ),
        grpc_server,
    )
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(
            inference,
            limits,
            ready=server.ready,
            server_version=server_version(),
            max_batch_size=settings.max_batch_size,
            max_queue_delay_us=int(settings.max_queue_delay_ms * 1000),
            max_stream_inflight=settings.max_stream_inflight,
            stopping=server.stopping,
            inflight=interceptor.inflight,
            lifecycle=lifecycle,
        ),
        grpc_server,
    )
    models_pb2_grpc.add_ModelsServicer_to_server(
        ModelsServicer(Path(settings.models_dir), blocking, settings.max_import_bytes, lifecycle),
        grpc_server,
    )
    _add_training(settings, server, grpc_server, blocking, queue)
    await _add_datasets(settings, server, grpc_server, blocking, datasets, queue)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        (*services, TRAINING_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
    )
    if settings.tls_enabled:
        port = grpc_server.add_secure_port(settings.grpc_address, _credentials(settings))
    else:
        port = grpc_server.add_insecure_port(settings.grpc_address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.grpc_address}")
    return server, port
