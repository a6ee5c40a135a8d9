"""Where a training job's TensorBoard event files live: one contract for worker, server and CLI.

A job whose spec asks for them (``"tensorboard": ...``, `jobs.spec.TensorBoardOptions`) writes
its event files to ``<CNN_DATA_DIR>/tensorboard/<job id>/``. Callers are told the directory
relative to the data volume (``tensorboard/<job id>``, `jobs.views.JobView.tensorboard_dir`):
each machine mounts the volume somewhere else, and a server path is nothing a client should
see (`core.redaction`). One TensorBoard on ``<CNN_DATA_DIR>/tensorboard`` shows every job as a
run named by its id.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

#: The directory under the data volume holding one sub-directory per job.
LOG_ROOT = "tensorboard"

# RQ job ids are uuid4 strings; anything that could climb out of LOG_ROOT is refused.
_JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def log_dir(job_id: str) -> str:
    """``tensorboard/<job id>``: the job's event-file directory, relative to the data volume.

    Raises:
        ValueError: a job id that is not a plain file name (``/``, ``..``, over 128 chars).
    """
    if not _JOB_ID.fullmatch(job_id) or ".." in job_id:
        raise ValueError(f"job id {job_id!r} cannot name an event-file directory")
    return str(PurePosixPath(LOG_ROOT, job_id))


def local_path(data_dir: Path, relative: str) -> Path:
    """The absolute directory of a relative ``tensorboard/...`` path on this machine's mount
    of the data volume (``data_dir``: CNN_DATA_DIR)."""
    return (data_dir / relative).absolute()
