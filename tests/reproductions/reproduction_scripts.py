"""Test helper: import a reproduction script (``reproductions/NAME.py``) as a module, the
way ``example_modules.load_example`` imports an example. Imported by name from the tests of
this folder (pytest puts a test's folder on ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["REPRODUCTIONS", "load_script"]

REPRODUCTIONS = Path(__file__).resolve().parents[2] / "reproductions"


def load_script(name: str) -> ModuleType:
    """Import ``reproductions/NAME.py`` as a fresh module named ``reproduction_NAME``."""
    as_name = f"reproduction_{name}"
    spec = importlib.util.spec_from_file_location(as_name, REPRODUCTIONS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module
    spec.loader.exec_module(module)
    return module
