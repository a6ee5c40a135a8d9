"""Project layout: benchmarks live in the top-level `bench/` package, which is not shipped.

The packages the wheel ships (pyproject's `packages.find`) carry no benchmark module and import
none; each checker is also shown to find a violation in a made-up package.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wheel_patterns() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(pyproject["tool"]["setuptools"]["packages"]["find"]["include"])


def _shipped_packages(root: Path, patterns: list[str]) -> list[Path]:
    """Top-level package directories under `root` that the wheel's include patterns select."""
    return sorted(
        path
        for path in root.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in patterns)
    )


def _imported_modules(source: str) -> set[str]:
    """Absolute module names a Python source imports (`import a.b`, `from a.b import c`)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def benchmark_imports(package: Path) -> list[str]:
    """`file: module` for every import in `package` of a module with "bench" in its path."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for module in sorted(_imported_modules(path.read_text())):
            if any("bench" in part for part in module.split(".")):
                found.append(f"{path.relative_to(package.parent)}: {module}")
    return found


def benchmark_modules(package: Path) -> list[str]:
    """Files and directories in `package` whose name contains "bench"."""
    return [
        str(path.relative_to(package.parent))
        for path in sorted(package.rglob("*"))
        if "bench" in path.name and "__pycache__" not in path.parts
    ]


def test_the_wheel_ships_the_product_packages_and_not_bench() -> None:
    patterns = _wheel_patterns()
    shipped = {path.name for path in _shipped_packages(ROOT, patterns)}
    assert {"core", "server", "worker", "cnn_client", "cnn_cli", "proto"} <= shipped
    assert (ROOT / "bench" / "__init__.py").is_file()
    assert not any(fnmatch.fnmatchcase("bench", pattern) for pattern in patterns)


def test_product_packages_import_no_benchmark() -> None:
    found = [
        hit
        for package in _shipped_packages(ROOT, _wheel_patterns())
        for hit in benchmark_imports(package)
    ]
    assert found == []


def test_product_packages_contain_no_benchmark_module() -> None:
    found = [
        name
        for package in _shipped_packages(ROOT, _wheel_patterns())
        for name in benchmark_modules(package)
    ]
    assert found == []


def test_checkers_find_a_benchmark_module_and_its_imports(tmp_path: Path) -> None:
    package = tmp_path / "product"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bench.py").write_text("import numpy\n")
    (package / "sub" / "user.py").write_text(
        "import bench.serving\nfrom product.bench import run\nfrom . import bench\nimport os\n"
    )
    assert benchmark_modules(package) == ["product/bench.py"]
    # relative imports are not resolved: `from . import bench` is caught by the module name
    assert benchmark_imports(package) == [
        "product/sub/user.py: bench.serving",
        "product/sub/user.py: product.bench",
    ]
    assert _shipped_packages(tmp_path, ["prod*"]) == [package]
