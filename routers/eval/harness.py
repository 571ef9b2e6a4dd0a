"""Run a router over recorded tasks through the real engine, and grade it.

Every task is one run of the router's pipeline (input ``question``), recorded in the store
like any other, so every number of a report traces back to the runs behind it. The models
are served by :class:`~agents.models.RecordedClient` from the dataset's recorded responses:
a model call of the router gets the sample its request asks for (``ChatRequest.sample``).

Grading, per task, from the router's output and the model calls its run recorded:

* when the output names one chosen model (``chosen``, as the baselines do), the task's
  score is the recorded score of the sample of that model the run received;
* otherwise, with a gold answer, ``answer`` is compared with it (case and surrounding
  space ignored);
* otherwise the score of a received sample whose extracted answer equals ``answer``; else 0.

Cost is the recorded cost of every model call the run made (or its tokens at the dataset's
prices), from the dataset, not from the registry: a source such as RouterBench records cost
per call but no tokens. A router's extra outputs are summarised when present: ``mode``
(share of tasks per mode) and ``sigma`` (agreement-but-wrong: σ = 0 and wrong).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from agents.models import ModelHub, ModelRegistry, RecordedClient
from agents.models.recorded import RecordedSet
from agents.models.registry import ProviderConfig
from orch import Pipeline, PipelineBuilder, arun
from traces import ArtifactStore, EffectRecord
from traces.runview import load_run_view

from .dataset import Dataset, Task
from .journal import Journal
from .metrics import Point

__all__ = [
    "Describe",
    "EvalReport",
    "Grader",
    "TaskResult",
    "evaluate",
    "grade",
    "eval_tasks",
    "evaluated_set",
    "grade_last_call",
    "graded",
    "graded_output",
    "recorded_hub",
    "router_pipeline",
    "task_seed",
]

PROVIDER = "recorded"

Grader = Callable[[Task, Any, list[tuple[str, int]]], float]
"""(task, graded output, model calls as (model, sample index)) -> score in [0, 1]."""
Describe = Callable[[Task, Any], dict[str, Any]]


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


@dataclass(frozen=True)
class TaskResult:
    task: str
    run_id: str
    root_hash: str | None
    ok: bool
    score: float
    cost_usd: float
    calls: list[tuple[str, int]]
    """(model, sample index) of every model call, in call order."""
    answer: str | None
    chosen: list[str]
    mode: str | None
    sigma: float | None
    seconds: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """What the evaluation's ``describe`` hook took from the output (e.g. the agents a
    TCAR route chose and the gold set), for measures the harness does not know."""


@dataclass
class EvalReport:
    dataset: str
    split: str
    router: str
    results: list[TaskResult] = field(default_factory=list)
    resumed: int = 0
    """Tasks whose result came from the journal, or (through an executor) whose finished run
    was found in the store: nothing was run for them."""
    retried: int = 0
    """Through an executor: tasks whose run was interrupted (a worker killed) and resumed."""
    batch_id: str | None = None
    """Through an executor: the batch that holds the runs (``BATCH-INDEX``)."""
    notices: list[str] = field(default_factory=list)
    """Through an executor: warnings from the processes that ran the tasks (a store's
    retries, leases taken over from a dead worker)."""

    @property
    def tasks(self) -> int:
        return len(self.results)

    @property
    def accuracy(self) -> float:
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)

    @property
    def cost_per_task(self) -> float:
        return self.cost_usd / len(self.results) if self.results else 0.0

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    def mode_shares(self) -> dict[str, float]:
        modes = Counter(r.mode for r in self.results if r.mode is not None)
        n = len(self.results)
        return {m: c / n for m, c in sorted(modes.items())} if n else {}

    def agreement_but_wrong(self) -> float | None:
        """Share of tasks where the probes agreed (σ = 0) and the answer was wrong."""
        with_sigma = [r for r in self.results if r.sigma is not None]
        if not with_sigma:
            return None
        bad = sum(1 for r in with_sigma if r.sigma == 0 and r.score < 1.0)
        return bad / len(self.results)

    def point(self) -> Point:
        return Point(self.cost_per_task, self.accuracy, self.router)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "router": self.router,
            "tasks": self.tasks,
            "failed": self.failed,
            "accuracy": round(self.accuracy, 6),
            "cost_usd": round(self.cost_usd, 8),
            "cost_per_task_usd": round(self.cost_per_task, 8),
            "modes": {k: round(v, 6) for k, v in self.mode_shares().items()},
            "agreement_but_wrong": self.agreement_but_wrong(),
            "seconds": round(sum(r.seconds for r in self.results), 3),
        }


def router_pipeline(agent: Any, name: str | None = None, **bound: Any) -> Pipeline:
    """The form :func:`evaluate` takes for one routing agent: a pipeline (named ``name``,
    default the agent's) with input ``question``, one node ``route`` (``bound`` gives its
    other inputs, e.g. a state version) and output ``answer``."""
    p = PipelineBuilder(name or agent.name)
    p.output("answer", p.node("route", agent, question=p.input("question", str), **bound))
    return p.build()


def task_seed(seed: int, task_id: str) -> int:
    """The run seed of a task: a hash of (evaluation seed, task id), so that a seeded router
    (the random baseline, AMRO-S) draws afresh for every task, yet the same on every run."""
    digest = hashlib.sha256(f"{seed}\x00{task_id}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def _calls(effects: list[EffectRecord], store: ArtifactStore) -> list[tuple[str, int]]:
    out = []
    for e in effects:
        if e.kind != "model":
            continue
        request = store.get_value(e.request)
        sample = request.get("sample", 0) if isinstance(request, Mapping) else 0
        out.append((e.target, int(sample)))
    return out


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().split())


def grade(task: Task, output: Any, calls: list[tuple[str, int]]) -> float:
    """The task's score for ``output`` given the model calls made (see the module doc)."""
    chosen = list(getattr(output, "chosen", None) or [])
    answer = getattr(output, "answer", None)
    if len(chosen) == 1:
        model = chosen[0]
        samples = task.responses.get(model) or []
        used = [i for m, i in calls if m == model]
        if samples:
            sample = samples[(used[-1] if used else 0) % len(samples)]
            if sample.score is not None:
                return sample.score
    if answer is None:
        return 0.0
    if task.gold is not None:
        return 1.0 if _norm(str(answer)) == _norm(task.gold) else 0.0
    for model, index in calls:
        samples = task.responses.get(model) or []
        if samples:
            s = samples[index % len(samples)]
            if s.answer is not None and _norm(s.answer) == _norm(str(answer)):
                return s.score or 0.0
    return 0.0


def grade_last_call(task: Task, output: Any, calls: list[tuple[str, int]]) -> float:
    """A grader for routers whose answer is the last model call's (a layered AMRO-S route,
    a router that returns no ``chosen``): the recorded score of that call's sample."""
    if not calls:
        return 0.0
    model, index = calls[-1]
    samples = task.responses.get(model) or []
    if not samples:
        return 0.0
    return samples[index % len(samples)].score or 0.0


def _task_cost(dataset: Dataset, task: Task, calls: list[tuple[str, int]]) -> float:
    total = 0.0
    for model, index in calls:
        samples = task.responses.get(model) or []
        if samples:
            total += dataset.cost(model, samples[index % len(samples)]) or 0.0
    return total


def graded(
    dataset: Dataset,
    task: Task,
    store: ArtifactStore,
    run_id: str,
    root_hash: str | None,
    out: Any,
    *,
    ok: bool,
    error: str | None,
    seconds: float | None,
    grader: Grader | None = None,
    describe: Describe | None = None,
) -> TaskResult:
    """The result of ``task`` from its run: ``out`` is the graded output (None when the run
    failed, or made none), ``ok`` the run's success, and the model calls are read from the
    run's record in ``store`` (none when there is no run: ``root_hash`` None, ``error`` why).
    ``seconds`` None takes the run's duration from its head."""
    calls: list[tuple[str, int]] = []
    if root_hash is not None:
        view = load_run_view(store, run_id)
        calls = _calls([e for s in view.steps.values() for e in s.effects], store)
        if seconds is None and view.head.finished_at is not None:
            seconds = view.head.finished_at - view.head.started_at
    score = (grader or grade)(task, out, calls) if out is not None else 0.0
    sigma = getattr(out, "sigma", None)
    answer = getattr(out, "answer", None)
    return TaskResult(
        task=task.id,
        run_id=run_id,
        root_hash=root_hash,
        ok=ok,
        score=score,
        cost_usd=_task_cost(dataset, task, calls),
        calls=calls,
        answer=None if answer is None else str(answer),
        chosen=list(getattr(out, "chosen", None) or []),
        mode=getattr(out, "mode", None),
        sigma=float(sigma) if isinstance(sigma, int | float) else None,
        seconds=seconds or 0.0,
        error=error,
        details=describe(task, out) if describe is not None and out is not None else {},
    )


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


def graded_output(pipeline: Pipeline, output: str | None) -> str:
    """The name of the output an evaluation grades (``output``, or the pipeline's only one),
    after checking the pipeline takes the task's ``question``; a ValueError with the fix."""
    if "question" not in pipeline.inputs:
        raise ValueError(
            f"pipeline {pipeline.name!r} has no input 'question' (inputs: "
            f"{', '.join(pipeline.inputs) or 'none'}); fix: the router under evaluation takes "
            "the task's question as its input 'question'"
        )
    outputs = list(pipeline.outputs)
    name = output or (outputs[0] if len(outputs) == 1 else None)
    if name is None or name not in outputs:
        raise ValueError(
            f"pipeline {pipeline.name!r}: say which output to grade (outputs: "
            f"{', '.join(outputs) or 'none'}); fix: pass output=NAME"
        )
    return name


async def evaluate(
    pipeline: Pipeline,
    dataset: Dataset,
    store: ArtifactStore,
    *,
    output: str | None = None,
    split: str = "test",
    limit: int | None = None,
    parallel: int = 4,
    seed: int = 0,
    services: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    grader: Grader | None = None,
    describe: Describe | None = None,
    journal: str | os.PathLike[str] | None = None,
    fresh: bool = False,
) -> EvalReport:
    """Run ``pipeline`` once per task of ``dataset``'s ``split`` and grade each run.

    ``output`` names the pipeline output to grade (default: its only output). Runs are
    made ``parallel`` at a time; results come back in task order whatever order they end.
    Each task's run seed is :func:`task_seed` of ``seed`` and the task id. ``grader``
    replaces :func:`grade` (same arguments: the task, the graded output, the model calls);
    ``describe`` (task, output) returns JSON-able details kept with each result.

    With ``journal`` (a file path) the evaluation is resumable: each finished task is
    appended to the journal as it ends, and a rerun with the same journal skips the tasks
    found there whose runs are in ``store`` (see :mod:`routers.eval.journal`); ``fresh``
    starts the journal over.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    name = graded_output(pipeline, output)
    tasks = eval_tasks(dataset, split, limit)
    # Served from the evaluated tasks only: a source can hold the same question in two
    # splits with other recordings (RouterBench), and a prompt finds its item by its text.
    hub = recorded_hub(dataset, evaluated_set(dataset, tasks))
    run_services = {"models": hub, **dict(services or {})}
    results: list[TaskResult | None] = [None] * len(tasks)
    limiter = anyio.CapacityLimiter(parallel)
    done = [0]
    log: Journal | None = None
    if journal is not None:
        log = Journal(
            journal,
            {
                "dataset": dataset.name,
                "split": split,
                "limit": limit,
                "pipeline": pipeline.name,
                "spec_hash": pipeline.spec_hash,
                "output": name,
                "seed": seed,
            },
        ).open(fresh=fresh)
        for i, task in enumerate(tasks):
            row = log.done.get(task.id)
            if row is None:
                continue
            if store.read_run_head(row["run_id"]) is None:
                log.forget(task.id)  # its run is not in this store: run the task again
                continue
            results[i] = TaskResult(**{**row, "calls": [tuple(c) for c in row["calls"]]})
            done[0] += 1
    resumed = done[0]

    async def one(i: int, task: Task) -> None:
        async with limiter:
            started = time.perf_counter()
            run = await arun(
                pipeline,
                {"question": task.question},
                store=store,
                seed=task_seed(seed, task.id),
                services=run_services,
                origin={"eval": f"{dataset.name}/{task.id}"},
            )
            seconds = time.perf_counter() - started
        result = results[i] = graded(
            dataset,
            task,
            store,
            run.run_id,
            run.root_hash,
            run.outputs.get(name) if run.ok else None,
            ok=run.ok,
            error=None if run.ok or run.error is None else run.error.message,
            seconds=seconds,
            grader=grader,
            describe=describe,
        )
        if log is not None:
            log.append(asdict(result))
        done[0] += 1
        if progress is not None:
            progress(done[0], len(tasks))

    if progress is not None and resumed:
        progress(resumed, len(tasks))
    try:
        async with anyio.create_task_group() as tg:
            for i, task in enumerate(tasks):
                if results[i] is None:
                    tg.start_soon(one, i, task)
    finally:
        if log is not None:
            log.close()
    report = EvalReport(dataset=dataset.name, split=split, router=pipeline.name, resumed=resumed)
    report.results = [r for r in results if r is not None]
    return report
