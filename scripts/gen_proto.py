#!/usr/bin/env python
"""Generate the protobuf/gRPC Python stubs from proto/**/*.proto (the only way to make them).

Usage (from anywhere; paths are relative to the repository root):
    python scripts/gen_proto.py            # regenerate proto/**/*_pb2.py, *_pb2.pyi, *_pb2_grpc.py
    python scripts/gen_proto.py --check    # regenerate into a temp dir; exit 1 naming stale files

The sources are compiled with `-I .` from the repository root, so generated modules import
each other as `proto.inference.model_config_pb2` and are used as
`from proto.cnn.v1 import classifier_pb2` without any post-processing.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_GLOBS = ("proto/cnn/v1/*.proto", "proto/inference/*.proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def sources(root: Path = ROOT) -> list[Path]:
    """The .proto files, relative to `root`, in a stable order."""
    found: list[Path] = []
    for pattern in SOURCE_GLOBS:
        found.extend(sorted(p.relative_to(root) for p in root.glob(pattern)))
    return found


def generate(out_dir: Path, root: Path = ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) writing stubs under `out_dir`; return the generated paths.

    Raises:
        RuntimeError: protoc failed (its stderr is included).
    """
    protos = [str(p) for p in sources(root)]
    if not protos:
        raise RuntimeError(f"no .proto files under {root}/proto")
    out = str(out_dir)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        ".",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({' '.join(cmd)}):\n{result.stderr}")
    return sorted(
        p.relative_to(out_dir)
        for p in out_dir.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    )


def existing_generated(root: Path = ROOT) -> list[Path]:
    """Generated files currently committed under proto/."""
    return sorted(
        p.relative_to(root)
        for p in (root / "proto").rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    )


def check(root: Path = ROOT) -> list[str]:
    """Problems with the committed stubs (missing, stale or orphaned); empty when up to date."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as tmp:
        fresh = generate(Path(tmp), root)
        for rel in fresh:
            committed = root / rel
            if not committed.exists():
                problems.append(f"missing: {rel}")
            elif not filecmp.cmp(committed, Path(tmp) / rel, shallow=False):
                problems.append(f"stale: {rel}")
        for rel in existing_generated(root):
            if rel not in fresh:
                problems.append(f"orphaned (no .proto source): {rel}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="verify the committed stubs are up to date"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run: python scripts/gen_proto.py", file=sys.stderr)
            return 1
        print("proto stubs are up to date")
        return 0
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as tmp:
        fresh = generate(Path(tmp))
        for rel in existing_generated():
            if rel not in fresh:
                (ROOT / rel).unlink()
        for rel in fresh:
            shutil.copyfile(Path(tmp) / rel, ROOT / rel)
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
