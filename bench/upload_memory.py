"""Server memory while uploading data sets: does it stay flat whatever the upload's size?

For each size (64 MiB and 1 GiB by default) it writes an ``.npz`` to disk a block at a time
(uint8 ``x`` N×1×28×28 and uint8 ``y``, never whole in memory), starts a fresh real server
(``python -m server``) on a temporary data volume, uploads the file through ``cnn_client``
and reads the server's peak resident memory (``VmHWM`` in /proc/<pid>/status) against its idle
resident memory before the upload. Printed side by side, then the ratio
peak(largest) / peak(smallest): the target is flat, a ratio near 1.

    .venv/bin/python -m bench.upload_memory [--sizes-mib 64 1024] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from bench.processes import start_module, stop, wait_port_file

SAMPLE_BYTES = 28 * 28
BLOCK_SAMPLES = 4096  # 3 MiB of pixels per write


def write_npz(path: Path, size_bytes: int, seed: int = 0) -> int:
    """An uncompressed ``.npz`` of about ``size_bytes``: random uint8 ``x`` (N, 1, 28, 28) and
    ``y`` (N,) in 0..9, streamed to disk; returns N."""
    n = max(20, size_bytes // (SAMPLE_BYTES + 1))
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": (n, 1, 28, 28)}
            np.lib.format.write_array_header_1_0(member, header)
            for start in range(0, n, BLOCK_SAMPLES):
                count = min(BLOCK_SAMPLES, n - start)
                member.write(rng.integers(0, 256, count * SAMPLE_BYTES, dtype=np.uint8).tobytes())
        with archive.open("y.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": (n,)}
            )
            for start in range(0, n, 1 << 20):
                member.write(
                    (np.arange(start, min(n, start + (1 << 20))) % 10).astype(np.uint8).tobytes()
                )
    return n


def memory_kib(pid: int, field: str) -> int:
    """``field`` (VmRSS, VmHWM) of /proc/<pid>/status, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def measure(npz: Path, workdir: Path) -> dict[str, float]:
    """Upload ``npz`` to a fresh server; its idle RSS, peak RSS and the upload time."""
    from cnn_client import CnnClient

    (workdir / "models").mkdir(parents=True)
    port_file = workdir / "port"
    env = {
        "PATH": "/usr/bin:/bin",
        "CNN_DATA_DIR": str(workdir / "data"),
        "CNN_MODELS_DIR": str(workdir / "models"),
        "CNN_GRPC_ADDRESS": "127.0.0.1:0",
        "CNN_MAX_UPLOAD_FILES": "10000000",
        "CNN_MAX_UPLOAD_PIXELS": "100000000000",
        "CNN_LOG_LEVEL": "WARNING",
    }
    server = start_module("server", ["--port-file", str(port_file)], env)
    try:
        port = wait_port_file(port_file, server)
        with CnnClient(f"127.0.0.1:{port}", timeout=60) as client:
            client.list_datasets()  # one round trip: the server is warm
            idle = memory_kib(server.pid, "VmRSS")
            began = time.perf_counter()
            info = client.upload(npz, "bench", timeout=3600)
            seconds = time.perf_counter() - began
        peak = memory_kib(server.pid, "VmHWM")
    finally:
        stop([server])
    size = npz.stat().st_size
    assert info.size_bytes == size
    return {
        "size_mib": size / 2**20,
        "samples": info.samples,
        "seconds": seconds,
        "mb_per_s": size / 1e6 / seconds,
        "idle_mib": idle / 1024,
        "peak_mib": peak / 1024,
        "growth_mib": (peak - idle) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="upload-memory-"))
    rows = []
    try:
        for size_mib in args.sizes_mib:
            npz = root / f"x{size_mib}.npz"
            write_npz(npz, size_mib * 2**20)
            rows.append(measure(npz, root / f"run{size_mib}"))
            npz.unlink()
            shutil.rmtree(root / f"run{size_mib}", ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"{'file MiB':>9} {'samples':>9} {'upload s':>9} {'MB/s':>7} "
        f"{'idle RSS':>9} {'peak RSS':>9} {'growth':>8}   (server, MiB)"
    )
    for row in rows:
        print(
            f"{row['size_mib']:>9.0f} {row['samples']:>9,} {row['seconds']:>9.1f} "
            f"{row['mb_per_s']:>7.0f} {row['idle_mib']:>9.1f} {row['peak_mib']:>9.1f} "
            f"{row['growth_mib']:>8.1f}"
        )
    first, last = rows[0], rows[-1]
    print(
        f"peak({last['size_mib']:.0f} MiB) / peak({first['size_mib']:.0f} MiB) = "
        f"{last['peak_mib'] / first['peak_mib']:.2f}; growth ratio "
        f"{last['growth_mib'] / max(first['growth_mib'], 0.1):.2f} for "
        f"{last['size_mib'] / first['size_mib']:.0f}x the bytes"
    )


if __name__ == "__main__":
    main()
