"""The server of a running stack behind TLS with a bearer token (docker/compose.tls.yml).

docker/compose-suite.sh runs this file in a second stage, after restarting the server with the
TLS override, with CNN_IT_TLS_CA (the CA to trust) and CNN_IT_TOKEN set; without them there is
no TLS stack to talk to and the tests are skipped. That the server's container became healthy
at all is checked by the script (its health check has to speak TLS).
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from cnn_client import CnnClient
from cnn_client.client import CnnClientError, TlsOptions

CA = os.environ.get("CNN_IT_TLS_CA", "")
TOKEN = os.environ.get("CNN_IT_TOKEN", "")
ADDRESS = os.environ.get("CNN_IT_GRPC_ADDRESS", "")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (CA and TOKEN and ADDRESS), reason="no TLS stack named (CNN_IT_TLS_CA)"),
]


def test_a_client_with_the_ca_and_the_token_is_served() -> None:
    with CnnClient(ADDRESS, token=TOKEN, tls=TlsOptions(root_ca=Path(CA)), retries=1) as client:
        assert isinstance(client.list_models(timeout=60), dict)


def test_a_client_without_the_token_is_refused() -> None:
    with (
        CnnClient(ADDRESS, tls=TlsOptions(root_ca=Path(CA)), retries=1) as client,
        pytest.raises(CnnClientError) as info,
    ):
        client.list_models(timeout=60)
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_plaintext_client_gets_no_answer() -> None:
    with (
        CnnClient(ADDRESS, token=TOKEN, retries=1) as client,
        pytest.raises(CnnClientError) as info,
    ):
        client.list_models(timeout=10)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
