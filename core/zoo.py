"""Reference architectures as JSON-able specs (benchmarks, tests and examples share them)."""

from __future__ import annotations

from typing import Any

Architecture = list[dict[str, Any]]


def lenet5(classes: int = 10) -> Architecture:
    """LeNet-5 for 1×28×28: conv6@5×5 pad 2, pool, conv16@5×5, pool, dense 120, 84, classes."""
    return [
        {"type": "conv2d", "filters": 6, "kernel_size": 5, "padding": 2},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 16, "kernel_size": 5},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 120},
        {"type": "relu"},
        {"type": "dense", "units": 84},
        {"type": "relu"},
        {"type": "dense", "units": classes},
    ]


def vgg_small(classes: int = 10) -> Architecture:
    """Small VGG for 3×32×32: conv32, conv32, pool, conv64, conv64, pool, dense 256, classes.

    Every convolution is 3×3 with padding 1 and followed by ReLU.
    """
    return [
        {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 256},
        {"type": "relu"},
        {"type": "dense", "units": classes},
    ]


def digits_cnn(classes: int = 10) -> Architecture:
    """Small CNN for 1×8×8 digits: conv8@3×3 same, pool, dense classes (trains in seconds)."""
    return [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": classes},
    ]
