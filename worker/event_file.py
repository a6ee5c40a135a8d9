"""A TensorBoard event file: scalars, histograms and images, written by a background thread.

Built on the ``tensorboard`` package itself (a runtime dependency, imported only when a job asks
for event files): its `EventFileWriter` owns the file format (TFRecord framing with masked
CRC-32C) and writes from a thread of its own, so the caller only builds and serialises small
`Event` protobufs. We add what a training job needs on top:

- one `Event` per call carrying every value of that step (fewer records, one CRC per step);
- histograms in TensorBoard's legacy `HistogramProto` (what its histogram and distribution
  dashboards and `EventAccumulator.Histograms` read);
- images as PNG (Pillow) in `Summary.Image`;
- a ``SessionLog.START`` at the first step written, so that a job that resumes from a checkpoint
  (and so repeats steps an earlier attempt already logged) has TensorBoard drop the earlier
  attempt's points from that step on instead of drawing both;
- files 0644 and directories 0755 whatever the process umask, so a TensorBoard running as
  another user on the same volume can read them.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Buckets of a histogram (TensorBoard re-bins for display; 30 keeps an event small).
HISTOGRAM_BUCKETS = 30

#: Pending events before `EventFileWriter` blocks the caller (its default, 10, is one epoch's
#: histograms of a small model).
MAX_QUEUE = 1000

#: How often the writer thread flushes to disk, s (`close` always flushes).
FLUSH_SECS = 5.0


class EventFile:
    """One event file in `directory` (created 0755; the file 0644).

    Args:
        directory: the run's directory (``<data>/tensorboard/<job id>``).

    Raises:
        OSError: the directory or file cannot be created.
    """

    def __init__(self, directory: Path) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        _make_dirs(directory)
        # A suffix of our own finds the file the writer named (it does not say).
        suffix = f".{uuid.uuid4().hex[:12]}"
        self._writer = EventFileWriter(
            str(directory), max_queue_size=MAX_QUEUE, flush_secs=FLUSH_SECS, filename_suffix=suffix
        )
        (self.path,) = directory.glob(f"events.out.tfevents.*{suffix}")
        os.chmod(self.path, 0o644)
        self._started = False

    def _add(self, step: int, values: list[Any]) -> None:
        if not self._started:
            self._started = True
            self._writer.add_event(
                self._event_pb2.Event(
                    wall_time=time.time(),
                    step=step,
                    session_log=self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START),
                )
            )
        if values:
            summary = self._summary_pb2.Summary(value=values)
            self._writer.add_event(
                self._event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
            )

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        """One point per tag at `step` (None values are left out)."""
        Value = self._summary_pb2.Summary.Value
        self._add(
            step,
            [Value(tag=tag, simple_value=float(v)) for tag, v in values.items() if v is not None],
        )

    def histograms(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """One histogram per tag of the array's values at `step` (non-finite values skipped)."""
        Value = self._summary_pb2.Summary.Value
        self._add(step, [Value(tag=tag, histo=self._histogram(a)) for tag, a in arrays.items()])

    def _histogram(self, array: np.ndarray) -> Any:
        values = np.asarray(array, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        proto = self._summary_pb2.HistogramProto
        if values.size == 0:
            return proto()
        counts, edges = np.histogram(values, bins=HISTOGRAM_BUCKETS)
        return proto(
            min=float(values.min()),
            max=float(values.max()),
            num=float(values.size),
            sum=float(values.sum()),
            sum_squares=float(np.dot(values, values)),
            bucket_limit=[float(e) for e in edges[1:]],  # right edges; the last one is max
            bucket=[float(c) for c in counts],
        )

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """One PNG per tag at `step`; each image is (H, W, 3) or (H, W) uint8."""
        from PIL import Image

        Value = self._summary_pb2.Summary.Value
        values = []
        for tag, pixels in images.items():
            if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
                raise ValueError(
                    f"image {tag!r}: need (H, W[, 3]) uint8, got {pixels.shape} {pixels.dtype}"
                )
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            image = self._summary_pb2.Summary.Image(
                height=int(pixels.shape[0]),
                width=int(pixels.shape[1]),
                colorspace=3 if pixels.ndim == 3 else 1,
                encoded_image_string=buffer.getvalue(),
            )
            values.append(Value(tag=tag, image=image))
        self._add(step, values)

    def flush(self) -> None:
        """Wait until everything added so far is on disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close (idempotent)."""
        self._writer.close()


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing parents 0755 (an explicit chmod: the umask may differ)."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        os.chmod(path, 0o755)
