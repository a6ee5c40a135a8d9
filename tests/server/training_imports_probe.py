"""Run the server in this process, use every Training RPC, report which modules got imported.

``python -m tests.server.training_imports_probe REDIS_URL MODELS_DIR`` starts the server
in-process (`server.app.create_server` on 127.0.0.1:0) against the given Redis, performs Submit,
Get, List, Cancel and Watch over gRPC (no worker runs: the job stays queued until cancelled),
stops the server and prints one JSON line: the job's statuses as seen by each call and the
loaded modules that belong to `rq` or `worker`. It imports nothing from `worker` itself.
"""

from __future__ import annotations

import asyncio
import json
import sys

import grpc

from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server.app import create_server
from server.settings import Settings

SPEC = {
    "name": "probe",
    "dataset": {"name": "digits"},
    "architecture": [{"type": "flatten"}, {"type": "dense", "units": 10}],
    "epochs": 1,
}


def forbidden_modules() -> list[str]:
    """Loaded modules of the packages the server must not import."""
    return sorted(
        name
        for name in sys.modules
        if name in ("rq", "worker") or name.startswith(("rq.", "worker."))
    )


async def exercise(redis_url: str, models_dir: str) -> dict[str, object]:
    settings = Settings.from_env(
        {"CNN_REDIS_URL": redis_url, "CNN_MODELS_DIR": models_dir},
        grpc_address="127.0.0.1:0",
        shutdown_grace_s=0.0,
    )
    server, port = await create_server(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TrainingStub(channel)
            submitted = await stub.Submit(pb.SubmitRequest(spec_json=json.dumps(SPEC)), timeout=10)
            job_id = submitted.job_id
            got = await stub.Get(pb.GetJobRequest(job_id=job_id), timeout=10)
            listed = await stub.List(pb.ListJobsRequest(), timeout=10)
            cancelled = await stub.Cancel(pb.CancelRequest(job_id=job_id), timeout=10)
            watched = [m async for m in stub.Watch(pb.WatchRequest(job_id=job_id), timeout=10)]
    finally:
        await server.drain_and_stop(0)
    name = pb.JobStatus.Name
    return {
        "get": name(got.status),
        "listed": [j.job_id for j in listed.jobs] == [job_id],
        "cancel": name(cancelled.status),
        "watch": [name(m.status) for m in watched],
        "forbidden_modules": forbidden_modules(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(exercise(sys.argv[1], sys.argv[2]))), flush=True)
