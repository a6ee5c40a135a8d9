"""Training checkpoints: arrays in ``.npz`` + JSON state, written atomically, no pickle.

Layout of a checkpoint directory::

    checkpoint.json          {"format_version", "npz": "ckpt-<step>.npz", "npz_sha256", "state"}
    ckpt-000000123.npz       every array (model, optimizer, shuffling order, best weights)

The npz is written first (temp file, fsync, rename), then ``checkpoint.json`` is replaced the
same way: the JSON is the commit point, so a crash at any moment leaves either the previous or
the new checkpoint, never a mix. Older npz files are removed after the commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.durable import atomic_write_bytes
from core.errors import ArtifactError

CHECKPOINT_FORMAT = 1
CHECKPOINT_JSON = "checkpoint.json"


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed ``.npz`` (object arrays refused)."""
    import io

    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object; only numeric arrays are stored")
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def read_npz_bytes(data: bytes, what: str) -> dict[str, np.ndarray]:
    """Parse ``.npz`` bytes with ``allow_pickle=False``; errors -> ArtifactError naming ``what``."""
    import io
    import zipfile

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ArtifactError(f"{what}: not a readable .npz ({exc})") from exc


def save_checkpoint(directory: Path, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Atomically replace the checkpoint in ``directory``; returns the JSON path."""
    directory.mkdir(parents=True, exist_ok=True)
    step = int(state.get("global_step", 0))
    npz_name = f"ckpt-{step:09d}.npz"
    data = npz_bytes(arrays)
    atomic_write_bytes(directory / npz_name, data)
    doc = {
        "format_version": CHECKPOINT_FORMAT,
        "npz": npz_name,
        "npz_sha256": hashlib.sha256(data).hexdigest(),
        "state": state,
    }
    json_path = directory / CHECKPOINT_JSON
    atomic_write_bytes(json_path, json.dumps(doc, indent=1).encode())
    for old in directory.glob("ckpt-*.npz"):
        if old.name != npz_name:
            old.unlink(missing_ok=True)
    return json_path


def load_checkpoint(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The checkpoint in ``directory`` as (arrays, state), or None when there is none.

    Raises:
        ArtifactError: the checkpoint exists but is corrupt, truncated or of another format.
    """
    json_path = directory / CHECKPOINT_JSON
    if not json_path.is_file():
        return None
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{json_path}: unreadable checkpoint ({exc})") from exc
    found = doc.get("format_version") if isinstance(doc, dict) else None
    if found != CHECKPOINT_FORMAT:
        raise ArtifactError(
            f"{json_path}: checkpoint format_version {found!r}, expected {CHECKPOINT_FORMAT}"
        )
    npz_name = doc.get("npz")
    if not isinstance(npz_name, str) or "/" in npz_name or not isinstance(doc.get("state"), dict):
        raise ArtifactError(f"{json_path}: malformed checkpoint (npz {npz_name!r})")
    npz_path = directory / npz_name
    try:
        data = npz_path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{npz_path}: checkpoint arrays missing ({exc.strerror})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != doc.get("npz_sha256"):
        raise ArtifactError(
            f"{npz_path}: sha256 {digest} does not match {doc.get('npz_sha256')} recorded in "
            f"{CHECKPOINT_JSON} (corrupt or truncated checkpoint)"
        )
    return read_npz_bytes(data, str(npz_path)), doc["state"]


def clear_checkpoint(directory: Path) -> None:
    """Remove the checkpoint files from ``directory`` (leaves the directory)."""
    (directory / CHECKPOINT_JSON).unlink(missing_ok=True)
    for old in directory.glob("ckpt-*.npz"):
        old.unlink(missing_ok=True)
