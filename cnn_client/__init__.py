"""Python client for cnn-service: classify, inspect models, and run training jobs over gRPC.

from cnn_client import CnnClient

with CnnClient("127.0.0.1:50051") as client:
    result = client.classify([Path("seven.png").read_bytes()], model="digits")
    print(result.results[0].class_names[0])
"""

from cnn_client.client import (
    Classification,
    ClassifyResult,
    CnnClient,
    CnnClientError,
    ExportedModel,
    ImportedModel,
    LayerInfo,
    ModelInfo,
    TlsOptions,
)
from cnn_client.datasets import DatasetInfo
from cnn_client.explain import ExplainedLayer, ExplainResult
from cnn_client.lifecycle import ModelStatus, VersionPolicy, VersionStatus
from jobs.status import JobStatus
from jobs.views import JobView

__all__ = [
    "Classification",
    "ClassifyResult",
    "CnnClient",
    "CnnClientError",
    "DatasetInfo",
    "ExplainResult",
    "ExplainedLayer",
    "ExportedModel",
    "ImportedModel",
    "JobStatus",
    "JobView",
    "LayerInfo",
    "ModelInfo",
    "ModelStatus",
    "TlsOptions",
    "VersionPolicy",
    "VersionStatus",
]
