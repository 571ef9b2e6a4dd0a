"""The package dependency direction from ARCHITECTURE.md, kept by a test.

``traces`` imports none of the others; ``orch`` imports ``traces`` but not ``agents`` or
``routers`` (only ``orch.cli`` and plugin loading may reach across); nothing imports upward
in a cycle. Checked two ways: statically over every module's imports, and by importing every
``traces`` module in a fresh interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN = {
    "traces": {"orch", "agents", "routers"},
    "orch": {"agents", "routers"},
}
# Modules allowed to wire packages together.
EXEMPT = {
    "orch/cli.py",
    "orch/cli_eval.py",
    "orch/cli_report.py",
    "orch/cli_tools.py",
    "orch/plugins.py",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in EXEMPT:
            continue
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{rel} imports {sorted(bad)}")
    assert not offenders, offenders


def test_traces_loads_nothing_from_the_engine() -> None:
    code = (
        "import importlib, pkgutil, sys, traces\n"
        "for m in pkgutil.walk_packages(traces.__path__, 'traces.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'orch', 'agents', 'routers'})\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
