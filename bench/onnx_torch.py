"""A CNN trained in PyTorch, exported with ``torch.onnx.export``, imported into a running
server over gRPC (``cnn.v1.Models/ImportModel``) and served: its answers against ONNX Runtime's
(the referee) and PyTorch's own, on the held-out digits.

    python -m bench.onnx_torch [--epochs 8]      (needs the bench extra: scripts/setup.sh --bench)

The PyTorch model takes pixels / 16 (0..1); the import tells the server the digits' pixel range
0..16 with mean 0 and std 16, so the server takes the raw 0..16 pixels its other digits models
take. Printed: accuracy of each, and the largest probability difference server vs ONNX Runtime
and server vs PyTorch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.processes import start_module, stop, wait_port_file

MODEL_NAME = "torch-digits"


def torch_cnn() -> Any:
    """Conv + BatchNorm + ReLU + MaxPool, a dilated grouped conv, Flatten, Linear, Dropout."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=2, dilation=2, groups=4),
        nn.LeakyReLU(0.1),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 10),
    )


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> Any:
    """Adam, batch 64, a fixed seed; x float32 (N, 1, 8, 8) in 0..1."""
    import torch

    torch.manual_seed(0)
    model = torch_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xs))
        total = 0.0
        for start in range(0, len(xs), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        print(f"  epoch {epoch + 1}: loss {total / len(xs):.4f}", flush=True)
    return model.eval()


def export(model: Any, path: Path) -> bytes:
    import torch

    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 8, 8),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter: plain Conv/Gemm nodes, no onnxscript needed
    )
    return path.read_bytes()


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch

    from cnn_client import CnnClient
    from core.datasets import load_digits

    torch.set_num_threads(2)
    data = load_digits()
    assert data.x_test is not None and data.y_test is not None
    x_train = data.x_train.astype(np.float32) / 16.0
    x_test_raw = data.x_test.astype(np.float32)  # what the server takes: 0..16
    x_test = x_test_raw / 16.0  # what the PyTorch / ONNX graph takes
    print(f"training the PyTorch CNN on digits ({len(x_train)} images) ...", flush=True)
    model = train(x_train, data.y_train, args.epochs)
    with torch.no_grad():
        torch_probs = softmax(model(torch.from_numpy(x_test)).numpy().astype(np.float64))

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        work = Path(tmp)
        onnx_bytes = export(model, work / "torch-digits.onnx")
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        (ort_logits,) = session.run(None, {"input": x_test})
        ort_probs = softmax(ort_logits.astype(np.float64))

        models_dir = work / "models"
        models_dir.mkdir()
        env = {
            **os.environ,
            "CNN_MODELS_DIR": str(models_dir),
            "CNN_GRPC_ADDRESS": "127.0.0.1:0",
            "CNN_POLL_INTERVAL_S": "0.2",
            "CNN_LOG_LEVEL": "WARNING",
        }
        server = start_module("server", ["--port-file", str(work / "server.port")], env=env)
        try:
            address = f"127.0.0.1:{wait_port_file(work / 'server.port', server)}"
            with CnnClient(address, timeout=120) as client:
                imported = client.import_model(
                    onnx_bytes,
                    MODEL_NAME,
                    class_names=data.class_names,
                    pixel_range=(0.0, 16.0),
                    mean=[0.0],
                    std=[16.0],
                )
                print(f"imported as {imported.name} version {imported.version}:")
                print(imported.summary_text)
                deadline = time.monotonic() + 300
                while imported.version not in client.list_models().get(MODEL_NAME, []):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not load the imported version")
                    time.sleep(0.1)
                results = [
                    r
                    for start in range(0, len(x_test_raw), 128)  # under the request limit
                    for r in client.classify_batch(
                        x_test_raw[start : start + 128], model=MODEL_NAME, top_k=10
                    ).results
                ]
        finally:
            stop([server])
    served = np.zeros_like(ort_probs)
    for row, r in zip(served, results, strict=True):
        row[r.class_indices] = r.probabilities

    y = data.y_test
    rows = [
        ("server (imported)", served),
        ("ONNX Runtime", ort_probs),
        ("PyTorch", torch_probs),
    ]
    print(f"\n{'':<20}{'accuracy':>10}{'max |p - server|':>20}")
    for name, probs in rows:
        accuracy = float((probs.argmax(axis=1) == y).mean())
        diff = float(np.abs(probs - served).max())
        print(f"{name:<20}{accuracy:>10.4f}{diff:>20.2e}")
    print(f"({len(y)} held-out digits; probabilities of all 10 classes compared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
