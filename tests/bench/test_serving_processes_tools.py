"""The helpers of `bench.serving_processes` (no full benchmark): the children of a process,
the medians over rounds, the V2 request bytes it posts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from bench.serving_processes import DIGITS, LENET, child_pids, median_row


def test_child_pids_lists_the_children_of_a_process() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
            "'import sys; sys.stdin.read()'], stdin=subprocess.PIPE); print(c.pid, flush=True); "
            "sys.stdin.read(); c.stdin.close(); c.wait()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdin is not None
        child = int(parent.stdout.readline())
        assert child_pids(parent.pid) == [child]
        assert child_pids(child) == []
    finally:
        parent.communicate("", timeout=60)


def test_median_row_takes_each_figure_s_median_and_sums_failures() -> None:
    keys = ("p50_us", "p99_us", "throughput", "server_cpu_us", "client_cpu_us", "cpu_busy")
    rows = [{**dict.fromkeys(keys, float(v)), "failed": f} for v, f in ((3, 0), (1, 2), (2, 1))]
    merged = median_row(rows)
    assert all(merged[key] == 2.0 for key in keys)  # median of 3, 1, 2
    assert merged["failed"] == 3 and merged["rounds"] == rows


def test_infer_payloads_carry_one_image_of_each_model_s_input() -> None:
    code = (
        "import sys\n"
        "from bench.serving_processes import infer_payload\n"
        "from proto.inference import grpc_service_pb2 as v2\n"
        "for name in sys.argv[1:]:\n"
        "    r = v2.ModelInferRequest.FromString(infer_payload(name))\n"
        "    t = r.inputs[0]\n"
        "    print(r.model_name, t.name, t.datatype, list(t.shape), len(r.raw_input_contents[0]))\n"
    )
    # a child process: proto.inference must not share this process's protobuf pool with
    # tritonclient's stubs (other tests import those)
    out = subprocess.run(
        [sys.executable, "-c", code, LENET, DIGITS], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        f"{LENET} input FP32 [1, 1, 28, 28] {28 * 28 * np.dtype(np.float32).itemsize}",
        f"{DIGITS} input UINT8 [1, 1, 8, 8] 64",
    ]
