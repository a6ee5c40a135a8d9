"""A TensorBoard event file: scalars, histograms and images, written by a background thread.

Built on the ``tensorboard`` package itself (a runtime dependency, imported only when a job asks
for event files): its `EventFileWriter` owns the file format (TFRecord framing with masked
CRC-32C) and writes from a thread of its own, so the caller only builds and serialises small
`Event` protobufs. We add what a training job needs on top:

- one `Event` per call carrying every value of that step (fewer records, one CRC per step),
  handed to the writer thread in batches (`HANDOFF_S`) rather than one thread wake-up per step;
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

import math
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ShapeError
from core.pictures import to_png

#: Buckets of a histogram (TensorBoard re-bins for display; 30 keeps an event small).
HISTOGRAM_BUCKETS = 30

#: Pending events before `EventFileWriter` blocks the caller (its default, 10, is one epoch's
#: histograms of a small model).
MAX_QUEUE = 1000

#: How often the writer thread flushes to disk, s (`close` always flushes).
FLUSH_SECS = 5.0

#: Scalars wait this long in the training thread before the writer thread gets them, s (so
#: TensorBoard lags the run by at most about HANDOFF_S + FLUSH_SECS).
HANDOFF_S = 1.0


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
        self._pending: list[Any] = []
        self._handed_at = time.monotonic()

    def _add(self, step: int, values: list[Any], *, now: bool = False) -> None:
        """Queue an event; hand the queue to the writer thread once `HANDOFF_S` has passed
        since the last hand-off, or `now`. Waking the writer thread at every training step would
        cost a thread switch (and, on a loaded machine, a wait for the GIL) per step."""
        event_pb2 = self._event_pb2
        if not self._started:
            self._started = True
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._pending.append(
                event_pb2.Event(wall_time=time.time(), step=step, session_log=start)
            )
        if values:
            summary = self._summary_pb2.Summary(value=values)
            self._pending.append(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        if now or time.monotonic() - self._handed_at >= HANDOFF_S:
            self._hand_off()

    def _hand_off(self) -> None:
        pending, self._pending = self._pending, []
        self._handed_at = time.monotonic()
        for event in pending:
            self._writer.add_event(event)

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        """One point per tag at `step` (None values are left out)."""
        Value = self._summary_pb2.Summary.Value
        self._add(
            step,
            [Value(tag=tag, simple_value=float(v)) for tag, v in values.items() if v is not None],
        )

    def histograms(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """One histogram per tag of the array's values at `step` (non-finite values skipped);
        written out at once."""
        Value = self._summary_pb2.Summary.Value
        values = [Value(tag=tag, histo=self._histogram(a)) for tag, a in arrays.items()]
        self._add(step, values, now=True)

    def _histogram(self, array: np.ndarray) -> Any:
        """`HistogramProto` of `array`: `HISTOGRAM_BUCKETS` equal buckets from min to max.

        Plain NumPy reductions and a bincount in the array's own dtype: no float64 copy and no
        BLAS call (OpenBLAS may wake its threads for a dot product, which on a loaded machine
        costs milliseconds)."""
        proto = self._summary_pb2.HistogramProto
        values = np.asarray(array).ravel()
        low, high = float(values.min(initial=np.inf)), float(values.max(initial=-np.inf))
        if not (math.isfinite(low) and math.isfinite(high)):
            values = values[np.isfinite(values)]
            if values.size == 0:
                return proto()
            low, high = float(values.min()), float(values.max())
        n = HISTOGRAM_BUCKETS if high > low else 1
        if n == 1:
            counts = np.array([values.size])
            limits = [high]
        else:
            index = ((values - low) * (n / (high - low))).astype(np.intp)
            np.minimum(index, n - 1, out=index)  # the maximum falls in the last bucket
            counts = np.bincount(index, minlength=n)
            limits = [low + (high - low) * (k + 1) / n for k in range(n - 1)] + [high]
        return proto(
            min=low,
            max=high,
            num=float(values.size),
            sum=float(values.sum(dtype=np.float64)),
            sum_squares=float(np.square(values, dtype=np.float64).sum()),
            bucket_limit=limits,
            bucket=[float(c) for c in counts],
        )

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """One PNG per tag at `step`; each image is (H, W, 3) or (H, W) uint8."""
        Value = self._summary_pb2.Summary.Value
        values = []
        for tag, pixels in images.items():
            try:
                png = to_png(pixels, compress_level=1)  # fastest: written once per epoch
            except ShapeError as exc:
                raise ValueError(f"image {tag!r}: {exc}") from None
            image = self._summary_pb2.Summary.Image(
                height=png.height,
                width=png.width,
                colorspace=3 if pixels.ndim == 3 else 1,
                encoded_image_string=png.data,
            )
            values.append(Value(tag=tag, image=image))
        self._add(step, values, now=True)

    def flush(self) -> None:
        """Wait until everything added so far is on disk."""
        self._hand_off()
        self._writer.flush()

    def close(self) -> None:
        """Write out everything added and close (idempotent)."""
        if self._pending:
            self._hand_off()
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
