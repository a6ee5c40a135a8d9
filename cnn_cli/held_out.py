"""The test split of the data set a model version was trained on, when it is at hand.

A version records its data set in ``model.json`` (``dataset``: the training spec's reference,
an uploaded one pinned to name, version and content id; see `core.datasets.DatasetRef`). The
bundled sets load from installed packages; ``npz``/``folder`` files and uploaded sets from the
data directory (``--data-dir``, ``CNN_DATA_DIR``). Anything missing is a reason, not an error:
`cnn inspect` then draws everything but the top patches and says why on the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.artifacts import ModelMeta
    from core.inspection.report import TestImages


def _describe(dataset: dict[str, Any]) -> str:
    name = dataset.get("name") or dataset.get("id") or "?"
    if dataset.get("version"):
        name = f"{name}:{dataset['version']}"
    if dataset.get("path"):
        name = f"{name} {dataset['path']}"
    return str(name)


def load_test_images(meta: ModelMeta, data_dir: Path) -> tuple[TestImages | None, str]:
    """(the test images, "") or (None, why there are none), for the data set ``meta`` names.

    Only the test split is kept; the uint8 images stay at the data set's size (the inspection
    brings each batch to the model's input as it streams through).
    """
    from pydantic import ValidationError

    from core.datasets import DatasetRef, load_dataset
    from core.datastore import DataStore
    from core.errors import DatasetError, SpecError
    from core.inspection.report import TestImages
    from core.stored_datasets import load_stored_dataset
    from jobs.datasets import find_stored

    if meta.dataset is None:
        return None, "the model version does not record its data set (imported or hand-made)"
    what = _describe(meta.dataset)
    try:
        ref = DatasetRef.model_validate(meta.dataset)
    except ValidationError:
        return None, f"the model's data set reference {meta.dataset} is not valid"
    try:
        if ref.is_stored:
            stored = find_stored(ref, DataStore(data_dir))
            data = load_stored_dataset(stored, meta.input.shape, meta.input.resize)
        else:
            data = load_dataset(ref, data_dir)
    except (DatasetError, SpecError, OSError) as exc:
        return None, (
            f"the data set {what} is not available here (data directory {data_dir}; "
            f"--data-dir or CNN_DATA_DIR): {exc}"
        )
    if data.x_test is None:
        return None, f"the data set {what} has no test split"
    return TestImages(data.x_test, f"{what}, {data.x_test.shape[0]:,} images"), ""
