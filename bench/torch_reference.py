"""The reference side of the benchmarks: the same nets, with the same weights, in PyTorch (CPU)
and ONNX Runtime. Both are optional (the `bench` extra); callers ask :func:`torch_version` and
:func:`have_onnxruntime` first and skip these columns when a package is missing."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bench.ours import Net
from bench.timing import Result, median_us, throughput, warm
from core.layers import Conv2D
from core.model import Sequential


def torch_version(threads: int) -> str | None:
    """PyTorch's version, its intra-op pool set to `threads`; None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return str(torch.__version__)


def have_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def torch_model(model: Sequential) -> Any:
    """An ``nn.Sequential`` computing the same logits as `model`, its weights copied over.

    Raises:
        ValueError: a layer has no equivalent here (only conv2d with symmetric padding, relu,
            maxpool2d, flatten and dense are translated).
    """
    import torch
    from torch import nn

    mods: list[nn.Module] = []
    shape: tuple[int, ...] = model.input_shape
    for cfg, layer, out_shape in zip(model.architecture, model.layers, model.shapes, strict=True):
        t = cfg["type"]
        if t == "conv2d" and isinstance(layer, Conv2D) and layer.weight is not None:
            top, bottom, left, right = layer.pads or (0, 0, 0, 0)
            if top != bottom or left != right:
                raise ValueError(f"bench: no torch equivalent for conv2d padding {layer.pads}")
            conv = nn.Conv2d(
                shape[0],
                layer.filters,
                layer.kernel,
                layer.stride,
                (top, left),
                bias=layer.bias is not None,
            )
            conv.weight.data = torch.from_numpy(layer.weight.value.copy())
            if conv.bias is not None and layer.bias is not None:
                conv.bias.data = torch.from_numpy(layer.bias.value.copy())
            m: nn.Module = conv
        elif t == "relu":
            m = nn.ReLU()
        elif t == "maxpool2d":
            m = nn.MaxPool2d(cfg["size"])
        elif t == "flatten":
            m = nn.Flatten()
        elif t == "dense":
            m = nn.Linear(int(np.prod(shape)), cfg["units"])
            params = layer.parameters()  # our dense weight is (in, out), torch's (out, in)
            m.weight.data = torch.from_numpy(params["weight"].value.T.copy())
            m.bias.data = torch.from_numpy(params["bias"].value.copy())
        else:
            raise ValueError(f"bench: no torch equivalent for {t}")
        mods.append(m)
        shape = out_shape
    return nn.Sequential(*mods)


def max_logit_diff(model: Any, net: Net, in_shape: tuple[int, int, int]) -> float:
    """Largest |torch - ours| over the logits of two random images (shared weights)."""
    import torch

    x = np.random.default_rng(5).standard_normal((2, *in_shape)).astype(np.float32)
    with torch.no_grad():
        return float(np.abs(model(torch.from_numpy(x)).numpy() - net.forward(x)).max())


def bench_torch(
    model: Any, in_shape: tuple[int, int, int], budget: float, warm_calls: int
) -> tuple[Result, Any]:
    """Training images/s at batch 64 (Adam, lr 1e-3), then batch-1 latency and batch-64
    throughput of the logits in inference mode; returns the figures and the trained model."""
    import torch

    rng = np.random.default_rng(1)
    x64 = torch.from_numpy(rng.standard_normal((64, *in_shape)).astype(np.float32))
    y64 = torch.from_numpy(rng.integers(0, 10, 64))
    x1 = x64[:1].clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x64), y64).backward()
        opt.step()

    model.train()
    warm(step, warm_calls)
    train = throughput(step, 64, budget, 5)
    res = Result(train_ips=train.images_per_s, train_cpu=train.images_per_cpu_s)
    model.eval()
    with torch.inference_mode():
        warm(lambda: model(x1), warm_calls)
        res.lat1_us = median_us(lambda: model(x1), budget / 2)
        warm(lambda: model(x64), warm_calls)
        infer = throughput(lambda: model(x64), 64, budget / 2, 5)
        res.inf64_ips, res.inf64_cpu = infer.images_per_s, infer.images_per_cpu_s
    return res, model


def bench_onnx(
    model: Any,
    in_shape: tuple[int, int, int],
    threads: int,
    budget: float,
    warm_calls: int,
    path: str,
) -> Result:
    """The torch `model` exported to ONNX at `path`, run by ONNX Runtime's CPU provider with
    `threads` intra-op threads: batch-1 latency and batch-64 throughput of the logits."""
    import onnxruntime as ort
    import torch

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros((1, *in_shape)),),
            path,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    x1 = x64[:1].copy()
    res = Result()
    warm(lambda: sess.run(None, {"x": x1}), warm_calls)
    res.lat1_us = median_us(lambda: sess.run(None, {"x": x1}), budget / 2)
    warm(lambda: sess.run(None, {"x": x64}), warm_calls)
    infer = throughput(lambda: sess.run(None, {"x": x64}), 64, budget / 2, 5)
    res.inf64_ips, res.inf64_cpu = infer.images_per_s, infer.images_per_cpu_s
    return res
