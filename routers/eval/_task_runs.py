"""The runs of an evaluation's tasks: one batch with fixed run ids, found again in the store.

An evaluation's tasks are the inputs of one batch (:mod:`orch.batch`): task ``i`` runs with
the seed :func:`task_seed` gives it, under the run id ``BATCH-i``, where the batch id
(:func:`eval_batch_id`) names the evaluation: the dataset's name and content, the pipeline's
spec hash, the task ids and the seed. So the same evaluation started again, in this process
or on a cluster, finds its finished runs in the store and resumes the interrupted ones (a
killed process's) from their finished steps: that is how an evaluation resumes, and the only
way. :func:`next_unused` gives the next unused id (``BATCH-f2``, ...) to run it afresh.

Two placements, the same run ids, seeds and root hashes:

* a pipeline named by a target (``FILE.py[:NAME]``) runs as a :class:`~orch.batch.BatchSpec`
  through an :class:`~orch.batch.Executor` (:func:`run_batch`): a
  :class:`~orch.batch.LocalExecutor` in this process, or the workers of a Dask cluster;
* a pipeline built in Python cannot be imported by another process, so :func:`run_here`
  finds, resumes or makes each task's run in this process with :func:`orch.arun`, under the
  ids and input fingerprints (``batch_key``) the batch would give it, following the batch's
  attempts (``BATCH-i``, ``BATCH-i.r2``, ...), with no source files recorded: there is no
  file to record.

This module never grades (:mod:`routers.eval._harness` does), never makes services, and never
computes anything a record hashes (the engine does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from orch import Pipeline
from orch.batch import (
    BatchItem,
    BatchSpec,
    Executor,
    ItemResult,
    Progress,
    find_or_run,
)
from routers.eval._dataset import Dataset, Task
from traces import ArtifactStore, canonical_bytes, collecting, digest

__all__ = [
    "TaskRuns",
    "eval_batch_id",
    "next_unused",
    "run_batch",
    "run_here",
    "task_items",
    "task_run_id",
    "task_seed",
]


def task_seed(seed: int, task_id: str) -> int:
    """The run seed of a task: a hash of (evaluation seed, task id), so that a seeded router
    (the random baseline, AMRO-S) draws afresh for every task, yet the same on every run."""
    h = hashlib.sha256(f"{seed}\x00{task_id}".encode()).digest()
    return int.from_bytes(h[:7], "big")


def eval_batch_id(
    dataset: Dataset, dataset_digest: str, spec_hash: str, tasks: Sequence[Task], seed: int
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


def task_run_id(batch_id: str, index: int, count: int) -> str:
    """The first run id of task ``index`` of ``count``: ``BATCH-INDEX`` with the index padded
    to five digits or more, as :meth:`~orch.batch.BatchSpec.create` names an input's run."""
    return f"{batch_id}-{index:0{max(5, len(str(count - 1)))}d}"


def next_unused(base: str, store: ArtifactStore, count: int) -> str:
    """``base``, or the first of ``base-f2``, ``base-f3``... whose first task has no run in
    ``store``: a batch id that runs every task afresh."""
    batch_id, n = base, 1
    while store.read_run_head(task_run_id(batch_id, 0, count)) is not None:
        n += 1
        batch_id = f"{base}-f{n}"
    return batch_id


def task_items(batch_id: str, spec_hash: str, tasks: Sequence[Task], seed: int) -> list[BatchItem]:
    """The tasks as a batch's inputs: each one's run id, inputs, seed and fingerprint, as
    :meth:`~orch.batch.BatchSpec.create` makes them for the same pipeline and seeds."""
    items = []
    for i, task in enumerate(tasks):
        inputs = {"question": task.question}
        run_seed = task_seed(seed, task.id)
        key = digest(canonical_bytes({"spec_hash": spec_hash, "inputs": inputs, "seed": run_seed}))
        items.append(BatchItem(i, task_run_id(batch_id, i, len(tasks)), inputs, run_seed, key))
    return items


@dataclass(frozen=True)
class TaskRuns:
    """Every task's run (in task order) and the warnings of the processes that made them."""

    batch_id: str
    items: tuple[ItemResult, ...]
    notices: tuple[str, ...] = ()

    @property
    def found(self) -> int:
        """Tasks whose finished run was already in the store: nothing ran for them."""
        return sum(1 for r in self.items if r.from_store)

    @property
    def retried(self) -> int:
        """Tasks whose run was interrupted (a process killed) and resumed."""
        return sum(1 for r in self.items if r.retried)


async def run_batch(
    executor: Executor, batch: BatchSpec, progress: Progress | None = None
) -> TaskRuns:
    """The batch's runs, placed by ``executor`` (which finds and resumes them itself)."""
    result = await executor.run_batch(batch, progress=progress)
    return TaskRuns(batch.batch_id, result.items, result.notices)


async def run_here(
    pipeline: Pipeline,
    batch_id: str,
    items: Sequence[BatchItem],
    store: ArtifactStore,
    services: Mapping[str, Any],
    *,
    origins: Sequence[Mapping[str, Any]],
    parallel: int,
    progress: Progress | None = None,
) -> TaskRuns:
    """Each item of batch ``batch_id`` run here (found, resumed or made), ``parallel`` at a
    time; ``origins[i]`` is recorded with item ``i``'s run, besides the batch's own fields.
    An exception of one item (a run refused) is raised once the other items have ended, so
    that a rerun finds them done; with several, the first item's."""
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    results: list[ItemResult | None] = [None] * len(items)
    raised: list[tuple[int, Exception]] = []
    limiter = anyio.CapacityLimiter(parallel)
    done = 0

    async def one(item: BatchItem) -> None:
        nonlocal done
        async with limiter:
            try:
                results[item.index] = await find_or_run(
                    pipeline,
                    store,
                    services,
                    batch_id,
                    item,
                    origin=origins[item.index],
                    refused_fix="pass fresh=True to run the evaluation under a new id, or use "
                    "another store",
                )
            except Exception as exc:
                raised.append((item.index, exc))
                return
        done += 1
        if progress is not None:
            progress(done, len(items))

    with collecting() as notices:
        async with anyio.create_task_group() as tg:
            for item in items:
                tg.start_soon(one, item)
    if raised:
        raise min(raised, key=lambda r: r[0])[1]
    return TaskRuns(batch_id, tuple(r for r in results if r is not None), tuple(notices))
