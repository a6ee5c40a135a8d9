"""A load-generating client process: `python -m tests.server.load_client ADDRESS OUT.json STOP`.

Sends requests back to back (own API or V2 via tritonclient, alternating per thread) until
the file STOP exists. OUT.json tells, at any moment, how many answers each model version gave
and every failure; it is rewritten atomically while the client runs (so a test can wait for
"answers from version 2") and a last time, with `"done": true`, before the client exits.
Imports no `proto.inference` (V2 uses tritonclient).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.support.limits import EVENT_LIMIT_S

IMAGES = (np.arange(4 * 64, dtype=np.uint8).reshape(4, 1, 8, 8) * 7) % 17

#: How often OUT.json is rewritten while the client runs, s. Pacing only: readers wait for
#: what the report says, never for a number of rewrites.
REPORT_INTERVAL_S = 0.1

Record = Callable[[str | None, str | None], None]


def classify_loop(address: str, stop: threading.Event, record: Record) -> None:
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    request = pb.ClassifyRequest(
        model="digits",
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(IMAGES.shape), data=IMAGES.tobytes()),
    )
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ClassifierStub(channel)
        while not stop.is_set():
            try:
                response = stub.Classify(request, timeout=EVENT_LIMIT_S)
                record(str(response.version), None)
            except grpc.RpcError as exc:
                record(None, f"{exc.code()}: {exc.details()}")


def v2_loop(address: str, stop: threading.Event, record: Record) -> None:
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    with tc.InferenceServerClient(address) as client:
        inp = tc.InferInput("input", list(IMAGES.shape), "UINT8")
        inp.set_data_from_numpy(IMAGES)
        while not stop.is_set():
            try:
                result = client.infer("digits", [inp], client_timeout=EVENT_LIMIT_S)
                record(result.get_response().model_version, None)
            except InferenceServerException as exc:
                record(None, f"{exc.status()}: {exc.message()}")


def _write_atomically(path: Path, report: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("out", type=Path, help="the report (JSON), rewritten while running")
    parser.add_argument("stop_file", type=Path, help="the client stops once this file exists")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lock = threading.Lock()
    answers: Counter[str] = Counter()
    failures: list[str] = []

    def record(version: str | None, error: str | None) -> None:
        with lock:
            if error is not None:
                failures.append(error)
            else:
                answers[str(version)] += 1

    def report(done: bool) -> dict:
        with lock:
            return {
                "answers": dict(answers),
                "failures": failures[:50],
                "failed": len(failures),
                "done": done,
            }

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=classify_loop if i % 2 == 0 else v2_loop, args=(args.address, stop, record)
        )
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    while not args.stop_file.exists():
        _write_atomically(args.out, report(done=False))
        stop.wait(REPORT_INTERVAL_S)
    stop.set()
    for t in threads:
        t.join()
    _write_atomically(args.out, report(done=True))


if __name__ == "__main__":
    main()
