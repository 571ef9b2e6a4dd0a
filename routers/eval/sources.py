"""Where the recorded evaluation data lives, and the registry of dataset adapters.

The shared recordings are read from ``$ORCH_EVAL_DATA``, else ``../shared/data`` or
``shared/data`` above the working directory. An adapter turns one source folder into a
:class:`~routers.eval.dataset.Dataset`; :func:`load_dataset` finds it by name. A folder that
is not there is a :class:`DataUnavailable` error, which tests and benchmarks turn into a
skip: nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .dataset import Dataset, DatasetError

__all__ = ["ADAPTERS", "DataUnavailable", "adapter", "data_root", "load_dataset"]

Adapter = Callable[[Path], Dataset]
ADAPTERS: dict[str, tuple[str, Adapter]] = {}
"""name -> (folder under the data root, adapter)."""


class DataUnavailable(DatasetError):
    """The recorded data a dataset needs is not on this machine."""


def adapter(name: str, folder: str) -> Callable[[Adapter], Adapter]:
    """Register ``fn(folder_path) -> Dataset`` as the adapter of dataset ``name``."""

    def register(fn: Adapter) -> Adapter:
        if name in ADAPTERS:
            raise ValueError(f"two adapters are named {name!r}")
        ADAPTERS[name] = (folder, fn)
        return fn

    return register


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding the recorded data sources."""
    if root is not None:
        return Path(root)
    env = os.environ.get("ORCH_EVAL_DATA")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for base in (here, *here.parents):
        for candidate in (base / "shared" / "data", base.parent / "shared" / "data"):
            if candidate.is_dir():
                return candidate
    return here / "shared" / "data"


def load_dataset(name: str, root: str | Path | None = None) -> Dataset:
    """Dataset ``name`` from its source folder, or from a dataset file (``*.json``)."""
    from . import adapters  # noqa: F401 - registers the built-in adapters

    if name.endswith(".json"):
        return Dataset.load(name)
    if name not in ADAPTERS:
        raise DatasetError(
            f"no dataset named {name!r}; fix: use one of {', '.join(sorted(ADAPTERS))}, or a "
            "dataset file (orch.eval-dataset/1, see routers.eval.dataset)"
        )
    folder, fn = ADAPTERS[name]
    path = data_root(root) / folder
    if not path.is_dir():
        raise DataUnavailable(
            f"dataset {name!r} reads {folder}/ under the data root, which is not here "
            f"({path}); fix: set ORCH_EVAL_DATA to the folder holding {folder}/"
        )
    return fn(path)
