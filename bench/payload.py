"""What the serving benchmark sends: one digits image for Classify, to the server or the echo.

Both load generators post the same serialized request; only the method differs. The echo
servers (:mod:`bench.echo`) return the request bytes unchanged, so the two kinds of level cost
the same on the wire.
"""

from __future__ import annotations

import numpy as np

MODEL = "digits"
CLASSIFY_METHOD = "/cnn.v1.Classifier/Classify"
ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
# the two kinds of load level: the echo floor and the real server
METHODS = {"echo": ECHO_METHOD, "classify": CLASSIFY_METHOD}


def method_of(kind: str) -> str:
    """The full gRPC method a level of `kind` ("echo" or "classify") calls.

    Raises:
        ValueError: `kind` is neither.
    """
    try:
        return METHODS[kind]
    except KeyError:
        raise ValueError(f"kind: {kind!r}, expected one of {sorted(METHODS)}") from None


def classify_payload() -> bytes:
    """A serialized ClassifyRequest: one 8x8 uint8 image of the digits model, top_k=1."""
    from proto.cnn.v1 import classifier_pb2 as pb

    x = (np.arange(64, dtype=np.uint8) % 17).reshape(1, 1, 8, 8)
    request = pb.ClassifyRequest(
        model=MODEL,
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
        top_k=1,
    )
    return request.SerializeToString()
