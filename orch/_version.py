"""The package version, in a module of its own so that any module may import it without
importing the package face (``orch/__init__``), which would make an import cycle."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
