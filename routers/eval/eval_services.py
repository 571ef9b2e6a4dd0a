"""What an evaluation's runs are served, made in whichever process runs them.

The models of an evaluation's runs answer from the dataset's recordings of the evaluated
tasks only (:func:`recorded_hub` over :func:`evaluated_set` of :func:`eval_tasks`): a source
can hold one question in two splits, recorded differently (RouterBench has six), and a
request finds its recording by the question's text.

An evaluation through an executor sends each worker its ``services_params`` instead of the
models: :func:`services` loads the dataset by name (or dataset file) and data folder, once per
process, and makes the same hub there. The client sends the digest of the dataset it grades
against; a worker whose copy of the data differs refuses, since its runs would receive other
responses than the client grades. :func:`eval_data` is the client's side: the dataset, its
digest and those parameters.

Workers reach this module by name (``routers.eval.eval_services:services``), so it must be
importable wherever the batch runs (orch installed, the data at the same path), and must never
import the harness that grades (:mod:`routers.eval._harness` imports this module).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.models import ModelHub, ModelRegistry, ProviderConfig, RecordedClient, RecordedSet
from routers.errors import DatasetError
from routers.eval._dataset import Dataset, Task
from routers.eval._sources import data_root, load_dataset

__all__ = [
    "PROVIDER",
    "TARGET",
    "EvalData",
    "dataset_digest",
    "eval_data",
    "eval_tasks",
    "evaluated_set",
    "loaded",
    "recorded_hub",
    "services",
    "services_params",
]

PROVIDER = "recorded"
"""The provider name of every model of :func:`recorded_hub`."""

TARGET = f"{__name__}:services"
"""The services target of an evaluation batch."""


def recorded_hub(dataset: Dataset, recorded: RecordedSet | None = None) -> ModelHub:
    """A model hub whose every model is served from the dataset's recorded responses, at
    the dataset's prices when it gives them (so each run's own record shows what a call
    cost from its tokens; the harness's figures come from the dataset either way).
    ``recorded`` is the dataset's :meth:`~Dataset.to_recorded_set`, when already made."""
    models: dict[str, Any] = {}
    for m in dataset.models:
        price = dataset.prices.get(m)
        models[m] = {"provider": PROVIDER, "name": m}
        if price is not None:
            models[m] |= {
                "input_per_mtok": price.input_per_mtok,
                "output_per_mtok": price.output_per_mtok,
            }
    registry = ModelRegistry.from_dict(
        {"providers": {PROVIDER: {"kind": "recorded", "options": {"data": "-"}}}, "models": models},
        source=f"dataset {dataset.name}",
    )
    client = RecordedClient(
        PROVIDER,
        ProviderConfig(kind="recorded"),
        data=dataset.to_recorded_set() if recorded is None else recorded,
    )
    return ModelHub(registry, clients={PROVIDER: client})


def eval_tasks(dataset: Dataset, split: str, limit: int | None) -> list[Task]:
    """The tasks an evaluation of ``split`` (or ``all``) runs, the first ``limit`` of them;
    a ValueError naming the splits there are when there are none."""
    chosen = dataset.split(split) if split != "all" else dataset  # type: ignore[arg-type]
    tasks = chosen.tasks[:limit] if limit is not None else chosen.tasks
    if not tasks:
        splits = sorted({t.split for t in dataset.tasks})
        raise ValueError(
            f"dataset {dataset.name!r} has no {split} tasks (its splits: "
            f"{', '.join(splits) or 'none'}); fix: pass split= one of them, or 'all'"
        )
    return list(tasks)


def evaluated_set(dataset: Dataset, tasks: list[Task]) -> RecordedSet:
    """The recorded responses of ``tasks`` only, as the models of their runs serve them."""
    return dataset.model_copy(update={"tasks": tasks}).to_recorded_set()


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


@dataclass(frozen=True)
class EvalData:
    """The dataset an evaluation grades against, as the client holds it."""

    dataset: Dataset
    digest: str
    """:func:`dataset_digest` of the whole dataset: part of the name of the evaluation's runs."""
    services_params: dict[str, Any] | None
    """What lets a worker load the same dataset (:func:`services_params`); None for a dataset
    given as an object, which only this process has."""


def eval_data(
    dataset: Dataset | str,
    data: str | Path | None = None,
    split: str = "all",
    limit: int | None = None,
) -> EvalData:
    """The dataset named by ``dataset`` (a name read from ``data``, default the data root, or an
    ``orch.eval-dataset`` file; loaded once per process), or the object itself."""
    if isinstance(dataset, Dataset):
        return EvalData(dataset, dataset_digest(dataset), None)
    params = services_params(dataset, data, split, limit)
    ds, digest = loaded(params["dataset"], params["data"])
    return EvalData(ds, digest, params)


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
