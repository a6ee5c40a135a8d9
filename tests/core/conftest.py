"""Fixtures for the CNN-library tests (core-layers)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture()
def umask() -> Iterator[None]:
    """Restores the process umask the test changes."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
