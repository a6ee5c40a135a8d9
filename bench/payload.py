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


V2_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
V2_STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
ECHO_STREAM_METHOD = f"/{ECHO_SERVICE}/EchoStream"


def v2_infer_payload(model: str, x: np.ndarray) -> bytes:
    """A serialized V2 ModelInferRequest for `model` carrying `x` (N, C, H, W) as raw bytes,
    uint8 as UINT8 and anything else as FP32; no id (see :func:`with_id`)."""
    from proto.inference import grpc_service_pb2 as v2

    datatype = "UINT8" if x.dtype == np.uint8 else "FP32"
    data = x if x.dtype == np.uint8 else x.astype("<f4")
    request = v2.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype=datatype, shape=list(x.shape))
    request.raw_input_contents.append(data.tobytes())
    return request.SerializeToString()


def with_id(payload: bytes, request_id: bytes) -> bytes:
    """`payload` (a serialized ModelInferRequest) with its `id` (field 3) set to `request_id`.

    Protobuf parsers keep the last occurrence of a non-repeated field, so appending the field
    sets it without re-serializing the request (ids shorter than 128 bytes).
    """
    if len(request_id) > 127:
        raise ValueError(f"request_id: {len(request_id)} bytes, at most 127")
    return payload + bytes((3 << 3 | 2, len(request_id))) + request_id
