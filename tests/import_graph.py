"""The import graph of orch's packages, read from the source: every import statement, at
module level or inside a function, resolved to the module it loads.

Run it as a script to print the problems (exit 1 when there are any)::

    python tests/import_graph.py

``tests/test_import_graph.py`` runs the same checks. What counts as a problem:

* an **import cycle** between modules, counting deferred imports (inside functions) as well
  as module-level ones: a deferred import that closes a cycle only hides it until the day
  someone moves it;
* an **upward import** between packages: ``traces`` ← ``orch`` ← ``agents`` ← ``routers`` ←
  ``orch_reproductions`` (the paper reproductions, a distribution of their own)
  (each may import the ones to its left only), the CLI included;
* a **private module of another package** (``orch._runtime`` from ``routers``): other packages
  use each package's public face.

Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``: those edges are counted
too, except into the importer's own ancestors, which are already being imported, unless the
statement names one (``from orch import x`` inside ``orch`` closes a cycle through
``orch/__init__``). Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("traces", "orch", "agents", "routers", "reproductions/orch_reproductions")
"""In dependency order, each may import only the ones before it; a path names a package's
folder when it is not at the top (the paper reproductions are a distribution of their own)."""


@dataclass
class ImportGraph:
    packages: tuple[str, ...]
    """The packages read, in dependency order."""
    modules: dict[str, Path] = field(default_factory=dict)
    """module name -> file (a package's name maps to its ``__init__.py``)."""
    edges: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(importer, imported) -> where (``file:line``)."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_pkg: bool) -> list[str]:
    """The module names an import statement loads (before filtering to our packages)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = importer.split(".") if is_pkg else importer.split(".")[:-1]
        if node.level > 1:
            base = base[: -(node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    # `from pkg import name` loads pkg.name when that is a module, else pkg only.
    return [module] + [f"{module}.{a.name}" for a in node.names]


def build(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> ImportGraph:
    graph = ImportGraph(packages=packages)
    for package in packages:
        base = (root / package).parent
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[_module_name(path, base)] = path
    for name, path in graph.modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in _import_nodes(tree):
            where = f"{path.relative_to(root)}:{node.lineno}"
            for target in _targets(node, name, is_pkg):
                if target not in graph.modules:
                    continue
                parts = target.split(".")
                # The packages on the way run their __init__ first.
                chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
                for loaded in chain:
                    # An ancestor is already being imported, unless named itself
                    # (`from orch import x` inside orch runs orch/__init__ if it has not).
                    if loaded == name or (loaded in ancestors and loaded != target):
                        continue
                    graph.edges.setdefault((name, loaded), []).append(where)
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def cycles(graph: ImportGraph) -> list[str]:
    g = nx.DiGraph(list(graph.edges))
    problems = []
    for component in nx.strongly_connected_components(g):
        if len(component) < 2:
            continue
        members = sorted(component)
        inside = [
            f"{a} -> {b} ({graph.edges[a, b][0]})"
            for a, b in sorted(graph.edges)
            if a in component and b in component
        ]
        problems.append(f"import cycle among {members}: " + "; ".join(inside))
    return problems


def boundary_problems(graph: ImportGraph) -> list[str]:
    rank = {p.rsplit("/", 1)[-1]: i for i, p in enumerate(graph.packages)}
    problems = []
    for (a, b), where in sorted(graph.edges.items()):
        pa, pb = _package(a), _package(b)
        if rank[pb] > rank[pa]:
            problems.append(f"upward import: {a} imports {b} ({where[0]})")
        elif pa != pb and _is_private(b):
            problems.append(f"{a} imports {b}, a private module of {pb} ({where[0]})")
    return problems


def main() -> int:
    graph = build()
    problems = cycles(graph) + boundary_problems(graph)
    for line in problems:
        print(line)
    print(
        f"{len(graph.modules)} modules, {len(graph.edges)} import edges, {len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
