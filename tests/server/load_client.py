"""A load-generating client process: `python -m tests.server.load_client ADDRESS OUT.json`.

Sends requests back to back (own API or V2 via tritonclient, alternating per thread) until
`--duration` seconds passed, and writes every failure plus, per model version served, the
wall-clock time it was first seen. Imports no `proto.inference` (V2 uses tritonclient).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

IMAGES = (np.arange(4 * 64, dtype=np.uint8).reshape(4, 1, 8, 8) * 7) % 17


def classify_loop(address: str, stop: float, record) -> None:  # type: ignore[no-untyped-def]
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    request = pb.ClassifyRequest(
        model="digits",
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(IMAGES.shape), data=IMAGES.tobytes()),
    )
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ClassifierStub(channel)
        while time.time() < stop:
            try:
                response = stub.Classify(request, timeout=10)
                record(str(response.version), None)
            except grpc.RpcError as exc:
                record(None, f"{exc.code()}: {exc.details()}")


def v2_loop(address: str, stop: float, record) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    with tc.InferenceServerClient(address) as client:
        inp = tc.InferInput("input", list(IMAGES.shape), "UINT8")
        inp.set_data_from_numpy(IMAGES)
        while time.time() < stop:
            try:
                result = client.infer("digits", [inp], client_timeout=10)
                record(result.get_response().model_version, None)
            except InferenceServerException as exc:
                record(None, f"{exc.status()}: {exc.message()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("out", type=Path)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lock = threading.Lock()
    first_seen: dict[str, float] = {}
    failures: list[str] = []
    counts = {"ok": 0}

    def record(version: str | None, error: str | None) -> None:
        now = time.time()
        with lock:
            if error is not None:
                failures.append(error)
            else:
                counts["ok"] += 1
                first_seen.setdefault(str(version), now)

    stop = time.time() + args.duration
    threads = [
        threading.Thread(
            target=classify_loop if i % 2 == 0 else v2_loop, args=(args.address, stop, record)
        )
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    args.out.write_text(
        json.dumps(
            {
                "ok": counts["ok"],
                "failures": failures[:50],
                "failed": len(failures),
                "first_seen": first_seen,
            }
        )
    )


if __name__ == "__main__":
    main()
