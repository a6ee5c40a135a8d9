"""The container health check (docker/grpc_health_check.py) against real servers.

It must report the server healthy however the server listens: plaintext, or TLS (the compose
TLS override), with a bearer token required for everything but health.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.server.models import TrainedArtifact, publish_copy
from tests.support.tls import self_signed

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "grpc_health_check.py"


def _check(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CNN_TLS", "CNN_HEALTH"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT), address, "--timeout", "60"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_health_check_reports_a_plaintext_server_serving(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    publish_copy(tmp_path / "models", "digits", digits_artifact.path)
    server = server_factory(tmp_path / "models")
    result = _check(server.address, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("SERVING")


def test_health_check_speaks_tls_when_the_server_does(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    publish_copy(tmp_path / "models", "digits", digits_artifact.path)
    key, cert = self_signed(tmp_path)
    tls = {"CNN_TLS_CERT": str(cert), "CNN_TLS_KEY": str(key)}
    server = server_factory(tmp_path / "models", {**tls, "CNN_AUTH_TOKEN": "t0ken"})

    # The same environment as the server's container: the check connects with TLS.
    result = _check(server.address, tls)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("SERVING")

    # A check that does not know the server has TLS cannot be healthy (what the issue saw).
    plaintext = _check(server.address, {})
    assert plaintext.returncode == 1
    assert "UNAVAILABLE" in plaintext.stderr
