"""Evaluating a router through an executor: every task one run of a batch, graded here.

:func:`evaluate_batch` is :func:`~routers.eval.harness.evaluate` for runs placed by an
:class:`~orch.executor.Executor` (this process, or the workers of a Dask cluster): the tasks
become the inputs of one :class:`~orch.batch.BatchSpec`, each with the run seed
:func:`~routers.eval.harness.task_seed` gives it, so every task's run has the root hash the
in-process evaluation gives it. Workers make the runs' services themselves from the dataset's
name and digest (:mod:`routers.eval.eval_services`), and this process grades each task from
the run's output and the model calls its record in the shared store holds.

The batch id is derived from the dataset's digest, the pipeline's spec hash, the task ids and
the seed, so the same evaluation run again finds its finished runs in the store and resumes
the interrupted ones, with no journal; ``fresh`` takes the next unused id instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orch.batch import BatchSpec
from orch.batch_result import ItemResult
from orch.executor import Executor, Progress
from orch.loader import load_pipeline
from orch.runtime import type_adapter
from traces import ArtifactStore, canonical_bytes, digest
from traces.open import open_store

from . import eval_services
from .dataset import Dataset, Task
from .harness import (
    Describe,
    EvalReport,
    Grader,
    TaskResult,
    eval_tasks,
    graded,
    graded_output,
    task_seed,
)

__all__ = ["eval_batch_id", "evaluate_batch"]


def eval_batch_id(
    dataset: Dataset, dataset_digest: str, spec_hash: str, tasks: list[Task], seed: int
) -> str:
    """``eval-HASH``: the same for the same evaluation wherever it is made from."""
    named = {
        "dataset": dataset.name,
        "digest": dataset_digest,
        "spec_hash": spec_hash,
        "tasks": [t.id for t in tasks],
        "seed": seed,
    }
    return "eval-" + digest(canonical_bytes(named)).partition(":")[2][:12]


def _unused(spec: BatchSpec, store: ArtifactStore) -> bool:
    return store.read_run_head(spec.items[0].run_id) is None


async def evaluate_batch(
    pipeline: str,
    dataset: str,
    executor: Executor,
    *,
    data: str | Path | None = None,
    store: str | None = None,
    params: Mapping[str, Any] | None = None,
    output: str | None = None,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    grader: Grader | None = None,
    describe: Describe | None = None,
    fresh: bool = False,
) -> EvalReport:
    """Run the pipeline ``pipeline`` (``FILE.py[:NAME]``, called with ``params`` when it is a
    function) once per task of ``dataset``'s ``split`` through ``executor``, and grade each.

    ``dataset`` is a dataset name (read from ``data``, default the data root) or an
    ``orch.eval-dataset`` file; every process that runs a task reads it at the same path.
    ``store`` must be reachable by them all (a shared directory, SQLite file or database
    URL). The other arguments are :func:`~routers.eval.harness.evaluate`'s. The report's
    ``resumed`` counts tasks whose runs were already in the store, ``retried`` those whose
    run was interrupted (a worker killed) and resumed.
    """
    sparams = eval_services.services_params(dataset, data, split, limit)
    ds, ds_digest = eval_services.loaded(sparams["dataset"], sparams["data"])
    pipe = load_pipeline(pipeline, params)
    name = graded_output(pipe, output)
    tasks = eval_tasks(ds, split, limit)

    def spec(batch_id: str) -> BatchSpec:
        return BatchSpec.create(
            pipeline,
            [{"question": t.question} for t in tasks],
            store=store,
            services=eval_services.TARGET,
            services_params=sparams,
            seeds=[task_seed(seed, t.id) for t in tasks],
            batch_id=batch_id,
            params=params,
        )

    base = eval_batch_id(ds, ds_digest, pipe.spec_hash, tasks, seed)
    batch = spec(base)
    if batch.store in ("memory:", "memory://"):
        raise ValueError(
            "an evaluation through an executor reads its runs back from the store, and "
            "'memory:' lives inside one process; fix: give a directory, sqlite:///FILE or a "
            "database URL as the store"
        )
    with open_store(batch.store) as st:
        n = 1
        while fresh and not _unused(batch, st):
            n += 1
            batch = spec(f"{base}-f{n}")
        result = await executor.run_batch(batch, progress=progress)
        kind = type_adapter(pipe.output_type(name))
        results = [
            _graded(ds, tasks[item.index], st, item, name, kind, grader, describe)
            for item in result.items
        ]
    return EvalReport(
        dataset=ds.name,
        split=split,
        router=pipe.name,
        results=results,
        resumed=sum(1 for r in result.items if r.from_store),
        retried=len(result.retried),
        batch_id=batch.batch_id,
        notices=list(result.notices),
    )


def _graded(
    dataset: Dataset,
    task: Task,
    store: ArtifactStore,
    item: ItemResult,
    name: str,
    kind: Any,
    grader: Grader | None,
    describe: Describe | None,
) -> TaskResult:
    if item.root_hash is None:  # no finished run (the item's error says why)
        return graded(
            dataset, task, store, item.run_id, None, None, ok=False, error=item.error, seconds=0
        )
    out = kind.validate_python(item.outputs[name]) if name in item.outputs else None
    return graded(
        dataset,
        task,
        store,
        item.run_id,
        item.root_hash,
        out,
        ok=item.status == "ok",
        error=item.error,
        seconds=None,
        grader=grader,
        describe=describe,
    )
