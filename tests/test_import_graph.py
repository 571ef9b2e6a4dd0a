"""No import cycle between modules (deferred imports included), no upward import between
packages (the CLI included), and no private module used across packages: checked over the
source by ``tests/import_graph.py`` (also a script: ``python tests/import_graph.py``)."""

from __future__ import annotations

from pathlib import Path

import import_graph

TREE = {
    "low/__init__.py": "from low._core import value\n",
    "low/_core.py": "value = 1\n",
    "high/__init__.py": "",
    "high/a.py": "import high.b\n",
    # A deferred import still closes the cycle.
    "high/b.py": "def later():\n    from high import a\n",
    "high/c.py": "from low._core import value\n",
    "low/up.py": "from high import c\n",
    "high/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import high.e\n",
    "high/e.py": "import high.d\n",
}


def _tree(root: Path) -> import_graph.ImportGraph:
    for name, text in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return import_graph.build(root, ("low", "high"))


def test_the_checker_finds_each_kind_of_problem(tmp_path: Path) -> None:
    graph = _tree(tmp_path)
    (cycle,) = import_graph.cycles(graph)  # d <-> e is under TYPE_CHECKING: not a cycle
    assert "['high.a', 'high.b']" in cycle and "high/b.py:2" in cycle
    problems = import_graph.boundary_problems(graph)
    assert any("upward import: low.up imports high.c" in p for p in problems), problems
    assert any("high.c imports low._core, a private module of low" in p for p in problems)
    assert len(problems) == 3, problems  # low.up imports high.c and so high/__init__ too


def test_orch_has_no_import_cycle() -> None:
    assert import_graph.cycles(import_graph.build()) == []


def test_packages_import_downward_through_public_faces() -> None:
    assert import_graph.boundary_problems(import_graph.build()) == []
