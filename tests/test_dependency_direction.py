"""The package dependency direction from ARCHITECTURE.md, kept at run time.

``traces`` imports none of the others; ``orch`` imports ``traces`` but not ``agents`` or
``routers``. The static check over every import statement (deferred ones included, the CLI
included) is ``tests/test_import_graph.py``; this one imports every module in a fresh
interpreter and looks at what got loaded, which also catches imports made by name
(``importlib.import_module``). The one door upward is the entry-point groups: ``orch``'s
application object (``orch.cli``) loads the commands other packages register, so it is
imported last and only checked for loading no engine module it should not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

LOADS_NOTHING_ABOVE = """
import importlib, pkgutil, sys
package = importlib.import_module({package!r})
skip = {skip!r}
for m in pkgutil.walk_packages(package.__path__, {package!r} + '.'):
    if not any(m.name == s or m.name.startswith(s + '.') for s in skip):
        importlib.import_module(m.name)
bad = sorted(m for m in sys.modules if m.split('.')[0] in {above!r})
print(bad)
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize(
    ("package", "above", "skip"),
    [
        ("traces", {"orch", "agents", "routers"}, set()),
        # orch.cli's app loads plugin commands by entry point (agents', routers'): by design.
        ("orch", {"agents", "routers"}, {"orch.cli._app", "orch.cli.__main__"}),
    ],
)
def test_importing_a_package_loads_nothing_above_it(
    package: str, above: set[str], skip: set[str]
) -> None:
    code = LOADS_NOTHING_ABOVE.format(package=package, above=above, skip=skip)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
