"""The services of an evaluation's runs, made in whichever process runs them.

When ``orch eval`` runs through an executor, each worker process makes the runs' services
itself from a batch's ``services_params``: :func:`services` loads the dataset by name (or
dataset file) and data folder, once per process, and serves every model from the recorded
responses of the evaluated tasks (:func:`~routers.eval.harness.recorded_hub`), as the
in-process harness does. The client sends the digest of the
dataset it grades against; a worker whose copy of the data differs refuses, since its runs
would receive other responses than the client grades.

Workers reach this module by name (``routers.eval.eval_services:services``), so it must be
importable wherever the batch runs: orch installed, and the data at the same path.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from agents.models.recorded import RecordedSet

from .dataset import Dataset, DatasetError
from .harness import eval_tasks, evaluated_set, recorded_hub
from .sources import data_root, load_dataset

__all__ = ["TARGET", "dataset_digest", "loaded", "services", "services_params"]

TARGET = f"{__name__}:services"
"""The services target of an evaluation batch."""


def dataset_digest(dataset: Dataset) -> str:
    """``sha256:...`` of the dataset's content: the same on every machine with the same data."""
    return "sha256:" + hashlib.sha256(dataset.model_dump_json().encode()).hexdigest()


@functools.lru_cache(maxsize=4)
def loaded(dataset: str, data: str | None) -> tuple[Dataset, str]:
    """(the dataset, its digest), loaded once per process: a worker runs many chunks of one
    evaluation, and a large source takes a second to read."""
    ds = load_dataset(dataset, data)
    return ds, dataset_digest(ds)


@functools.lru_cache(maxsize=8)
def _recorded(dataset: str, data: str | None, split: str, limit: int | None) -> RecordedSet:
    ds, _ = loaded(dataset, data)
    return evaluated_set(ds, eval_tasks(ds, split, limit))


def services_params(
    dataset: str, data: str | Path | None, split: str = "all", limit: int | None = None
) -> dict[str, Any]:
    """What a worker needs to make the services: the dataset (a dataset file's path made
    absolute), the data folder as this process resolves it, the digest to check, and the
    evaluated tasks (``split``, ``limit``), whose recordings alone the models serve."""
    name = str(Path(dataset).expanduser().resolve()) if dataset.endswith(".json") else dataset
    root = None if name.endswith(".json") else str(data_root(data).resolve())
    digest = loaded(name, root)[1]
    return {"dataset": name, "data": root, "digest": digest, "split": split, "limit": limit}


def services(
    dataset: str, data: str | None, digest: str, split: str = "all", limit: int | None = None
) -> dict[str, Any]:
    """The services of an evaluation's run: its ``models`` served from the recordings of the
    evaluated tasks. Raises :class:`~routers.eval.DatasetError` when this process's copy of
    the data is not the one the evaluation grades against."""
    ds, here = loaded(dataset, data)
    if here != digest:
        raise DatasetError(
            f"dataset {dataset!r} read from {data or dataset} here has digest {here[:19]}..., "
            f"but the evaluation was made with {digest[:19]}...; fix: give every worker the "
            "same copy of the data, at the same path"
        )
    return {"models": recorded_hub(ds, _recorded(dataset, data, split, limit))}
