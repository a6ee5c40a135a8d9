"""The V2 codec tests run in a pytest process of their own (`scripts/test.sh` starts it):
`server.codec_v2` imports `proto.inference`, whose message names clash with tritonclient's
copies in protobuf's default pool, and the rest of the suite imports tritonclient.

The main run leaves this directory out (tests/conftest.py); run it by naming it:
`.venv/bin/pytest tests/server_v2codec`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    """Fail with the reason, not protobuf's "duplicate symbol", when run beside tritonclient."""
    if "tritonclient" in sys.modules:
        raise pytest.UsageError(
            "tests/server_v2codec imports proto.inference, which clashes with tritonclient "
            "(imported by other tests of this run): run it in a pytest process of its own"
        )
