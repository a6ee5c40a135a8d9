"""The product packages import each other without cycles.

The graph is read from the source with `ast`, not by importing anything: an edge A -> B for
every ``import``/``from ... import`` in module A that names module B of a product package,
whether it sits at module level or inside a function (a deferred import still ties the two
modules together; it only hides the cycle until the function runs). Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = ("core", "server", "worker", "cnn_cli", "cnn_client", "jobs", "bench")

Graph = dict[str, set[str]]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages that exist in root."""
    modules: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, at any depth, except under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _is_type_checking_block(node):
            assert isinstance(node, ast.If)
            children = list(node.orelse)
        stack.extend(children)


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    """The longest dotted prefix of `name` that is a product module (``a.b.c`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> set[str]:
    if isinstance(node, ast.Import):
        found = (_known_prefix(alias.name, modules) for alias in node.names)
        return {name for name in found if name}
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    out: set[str] = set()
    for alias in node.names:
        # `from pkg import name`: name is a submodule or an attribute of pkg.
        target = _known_prefix(f"{base}.{alias.name}", modules) or _known_prefix(base, modules)
        if target:
            out.add(target)
    return out


def import_graph(root: Path, packages: Iterable[str] = PRODUCT_PACKAGES) -> Graph:
    """Module -> the product modules it imports (self-imports of a package left out)."""
    modules = module_files(root, packages)
    graph: Graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _import_nodes(tree):
            edges |= _targets(node, module, is_package, modules)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as a path
    ``[a, b, ..., a]``."""
    return [_cycle_in(graph, component) for component in strongly_connected(graph)]


def strongly_connected(graph: Graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative so that a deep graph does not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def _cycle_in(graph: Graph, component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_product_packages_have_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    report = [
        f"{' -> '.join(_cycle_in(graph, component))}  (modules in this knot: "
        f"{', '.join(sorted(component))})"
        for component in strongly_connected(graph)
    ]
    assert not report, "import cycles:\n" + "\n".join(report)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/a.py", "from pkg.b import thing\n")
    _write(tmp_path, "pkg/b.py", "def thing():\n    from pkg import a\n    return a\n")
    _write(tmp_path, "pkg/c.py", "import pkg.a\n")
    cycles = find_cycles(import_graph(tmp_path, ["pkg"]))
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"]]


def test_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """``from . import b`` is an edge; an import under ``if TYPE_CHECKING:`` is not."""
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/sub/__init__.py", "")
    _write(tmp_path, "pkg/sub/a.py", "from . import b\nfrom ..top import x\n")
    _write(
        tmp_path,
        "pkg/sub/b.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import a\n",
    )
    _write(tmp_path, "pkg/top.py", "x = 1\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.sub.a"] == {"pkg.sub.b", "pkg.top"}
    assert graph["pkg.sub.b"] == set()
    assert find_cycles(graph) == []


def test_a_longer_cycle_is_printed_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/a.py", "import pkg.b\n")
    _write(tmp_path, "pkg/b.py", "import pkg.c\n")
    _write(tmp_path, "pkg/c.py", "import pkg.a\n")
    assert find_cycles(import_graph(tmp_path, ["pkg"])) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
