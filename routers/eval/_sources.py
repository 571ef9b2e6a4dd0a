"""Named datasets: where recorded evaluation data lives, and the registry of its adapters.

An adapter reads one source folder under the data root into a
:class:`~routers.eval._dataset.Dataset`. Adapters come from plugins: a package lists them in
the entry-point group ``orch.datasets`` (name = dataset name, target = a
:class:`DatasetAdapter`, which :func:`adapter` makes), and :func:`load_dataset` loads the
entry point of a name the first time it is asked for. :func:`adapter` also registers an
adapter in this process (for a script's own sources, or a test). The paper reproductions'
adapters (MoT, RouterBench, RouteLLM, RouterArena, CLINC150) are such a plugin, the
``orch-reproductions`` distribution in ``reproductions/``.

The data root is ``$ORCH_EVAL_DATA``, else ``shared/data`` in or beside the working
directory or one of its parents. A folder that is not there is a
:class:`~routers.errors.DataUnavailable` error, which tests and scripts turn into a skip.
This module never downloads anything, and never imports a plugin before its name is asked
for (a broken plugin must not break ``import routers.eval``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Final

from orch import find_entry_point, load_entry_point, plugin_package
from routers.errors import DatasetPluginError, DataUnavailable
from routers.eval._dataset import Dataset

__all__ = [
    "ADAPTERS",
    "DATASETS_GROUP",
    "DatasetAdapter",
    "adapter",
    "data_root",
    "dataset_names",
    "load_dataset",
    "register_adapter",
]

DATASETS_GROUP: Final = "orch.datasets"
"""The entry-point group of dataset adapters: ``name = "package.module:adapter_object"``."""

Reader = Callable[[Path], Dataset]


@dataclass(frozen=True)
class DatasetAdapter:
    """How dataset :attr:`name` is read: the function :attr:`read` turns the folder
    :attr:`folder` under the data root into a :class:`~routers.eval._dataset.Dataset`."""

    name: str
    folder: str
    """The source folder, relative to the data root."""
    read: Reader

    def __call__(self, path: Path) -> Dataset:
        return self.read(path)


ADAPTERS: dict[str, DatasetAdapter] = {}
"""The adapters registered in this process, by dataset name (plugins join when first used)."""

_FILE_HINT = "or a dataset file (orch.eval-dataset/1, see docs/eval.md)"
_PLUGIN_HINT = (
    f"named datasets come from plugins (entry-point group {DATASETS_GROUP}); the paper "
    "reproductions' datasets are installed with: pip install -e reproductions"
)


def register_adapter(made: DatasetAdapter) -> DatasetAdapter:
    """Register ``made`` under its name; registering the same adapter again does nothing."""
    known = ADAPTERS.get(made.name)
    if known is not None and known is not made:
        raise DatasetPluginError(
            f"two adapters are named {made.name!r} (reading {known.folder}/ and "
            f"{made.folder}/); fix: rename one of them"
        )
    ADAPTERS[made.name] = made
    return made


def adapter(name: str, folder: str) -> Callable[[Reader], DatasetAdapter]:
    """Decorator: ``fn(folder_path) -> Dataset`` becomes the registered
    :class:`DatasetAdapter` of dataset ``name``, reading ``folder`` under the data root.
    The decorated object is what an ``orch.datasets`` entry point names."""

    def register(fn: Reader) -> DatasetAdapter:
        return register_adapter(DatasetAdapter(name=name, folder=folder, read=fn))

    return register


def _plugins() -> list[EntryPoint]:
    return sorted(entry_points(group=DATASETS_GROUP), key=lambda ep: (ep.name, ep.value))


def dataset_names() -> list[str]:
    """Every dataset name :func:`load_dataset` knows: registered here or offered by an
    installed plugin (not loaded to list it)."""
    return sorted(set(ADAPTERS) | {ep.name for ep in _plugins()})


def _from_plugin(name: str) -> DatasetAdapter:
    """Load the ``orch.datasets`` entry point of ``name`` and register what it gives."""
    ep = find_entry_point(DATASETS_GROUP, name, what="dataset", error=DatasetPluginError)
    if ep is None:
        known = ", ".join(dataset_names()) or "none installed"
        raise DatasetPluginError(
            f"no dataset named {name!r} (datasets: {known}); fix: use one of them, {_FILE_HINT}; "
            f"{_PLUGIN_HINT}"
        )
    label = f"dataset plugin {name!r} ({ep.value}) from package {plugin_package(ep)}"
    target = load_entry_point(ep, what="dataset", error=DatasetPluginError)
    if not isinstance(target, DatasetAdapter) or target.name != name:
        given = (
            f"the adapter of {target.name!r}"
            if isinstance(target, DatasetAdapter)
            else f"a {type(target).__name__}"
        )
        raise DatasetPluginError(
            f"{label} gives {given}, not the adapter of {name!r}; fix: point the entry point "
            f"at a function decorated with routers.eval.adapter({name!r}, FOLDER)"
        )
    return register_adapter(target)


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
    """Dataset ``name`` from its source folder under the data root (its adapter registered
    here or loaded from its plugin), or from a dataset file (``*.json``)."""
    if name.endswith(".json"):
        return Dataset.load(name)
    found = ADAPTERS.get(name) or _from_plugin(name)
    path = data_root(root) / found.folder
    if not path.is_dir():
        raise DataUnavailable(
            f"dataset {name!r} reads {found.folder}/ under the data root, which is not here "
            f"({path}); fix: set ORCH_EVAL_DATA to the folder holding {found.folder}/"
        )
    return found(path)
