"""Self-signed certificates for tests of TLS servers (made with the openssl command)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """(key, cert) of a self-signed certificate naming `name`, localhost and 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = directory / "key.pem", directory / "cert.pem"
    names = ",".join(dict.fromkeys([f"DNS:{name}", "DNS:localhost", "IP:127.0.0.1"]))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert
