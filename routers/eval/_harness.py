"""Evaluate a router over recorded tasks through the real engine, and grade it.

:func:`evaluate` is the one entry point. Every task is one run of the router's pipeline
(input ``question``), recorded in the store like any other, so every number of a report
traces back to the runs behind it. The models are served by
:class:`~agents.models.RecordedClient` from the dataset's recorded responses
(:mod:`routers.eval.eval_services`): a model call of the router gets the sample its request
asks for (``ChatRequest.sample``). The tasks are one batch with fixed run ids
(:mod:`routers.eval._task_runs`), made in this process by default or placed by an
:class:`~orch.batch.Executor` (a Dask cluster's workers); the same evaluation run again finds
its finished runs in the store and resumes the interrupted ones.

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

This module grades from records; it never prints, and never decides where runs execute
beyond choosing the executor it is given (or this process).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from orch import Pipeline, PipelineBuilder, load_pipeline
from orch.batch import (
    BatchSpec,
    Executor,
    ItemResult,
    LocalExecutor,
    Progress,
    absolute_store_location,
)
from routers.eval._dataset import Dataset, Task
from routers.eval._metrics import Point
from routers.eval._task_runs import (
    TaskRuns,
    eval_batch_id,
    next_unused,
    run_batch,
    run_here,
    task_items,
    task_seed,
)
from routers.eval.eval_services import (
    TARGET,
    EvalData,
    eval_data,
    eval_tasks,
    evaluated_set,
    recorded_hub,
)
from traces import ArtifactStore, EffectRecord, load_run_view, open_store

__all__ = [
    "Describe",
    "EvalReport",
    "Grader",
    "TaskResult",
    "evaluate",
    "grade",
    "grade_last_call",
    "graded",
    "graded_output",
    "router_pipeline",
]

Grader = Callable[[Task, Any, list[tuple[str, int]]], float]
"""(task, graded output, model calls as (model, sample index)) -> score in [0, 1]."""
Describe = Callable[[Task, Any], dict[str, Any]]


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
    """Tasks whose finished run was found in the store (an earlier start of the same
    evaluation): nothing was run for them."""
    retried: int = 0
    """Tasks whose run was interrupted (a process killed) and resumed from its finished steps."""
    batch_id: str | None = None
    """The batch that names the runs: task ``i``'s first run is ``BATCH-i`` (zero-padded)."""
    notices: list[str] = field(default_factory=list)
    """Warnings from the processes that ran the tasks (a store's retries, leases taken over
    from a dead worker)."""

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
    pipeline: Pipeline | str,
    dataset: Dataset | str,
    store: ArtifactStore | str | None = None,
    *,
    executor: Executor | None = None,
    params: Mapping[str, Any] | None = None,
    data: str | Path | None = None,
    output: str | None = None,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    parallel: int = 4,
    services: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    grader: Grader | None = None,
    describe: Describe | None = None,
    fresh: bool = False,
) -> EvalReport:
    """Run ``pipeline`` once per task of ``dataset``'s ``split`` and grade each run.

    What is evaluated: ``pipeline`` is a built :class:`~orch.Pipeline` or a target
    ``FILE.py[:NAME]`` (a function called with ``params``); ``dataset`` a
    :class:`~routers.eval.Dataset`, a dataset name (read from ``data``, default the data
    root) or an ``orch.eval-dataset`` file; the first ``limit`` tasks of ``split`` (or
    ``all``); each task's run seed is :func:`~routers.eval._task_runs.task_seed` of ``seed``
    and the task id. ``output`` names the pipeline output to grade (default: its only one).

    Where: ``store`` is an open store or a location (opened here, and closed after). Without
    ``executor`` the runs are made in this process, ``parallel`` at a time, with the recorded
    models plus ``services`` (objects agents reach with ``ctx.service``). With one (a
    :class:`~orch.batch.LocalExecutor`, a Dask executor) the tasks are a batch it places:
    then ``pipeline`` must be a target, ``dataset`` a name or file, and ``store`` a location,
    since every worker imports, loads and opens them itself; ``services`` cannot be sent.

    Resuming: the runs have fixed ids named by the evaluation (see
    :mod:`routers.eval._task_runs`), so the same evaluation started again with the same store
    finds its finished runs (``resumed``) and resumes its interrupted ones (``retried``).
    ``fresh`` runs every task again under the next unused id; so does an evaluation given
    ``services``, which are objects its name cannot include.

    Grading: ``grader`` replaces :func:`grade` (same arguments: the task, the graded output,
    the model calls); ``describe`` (task, output) returns JSON-able details kept with each
    result. Results come back in task order whatever order the runs end. ``progress`` is
    called with (tasks done, tasks) as they end.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    pipe = _pipeline(pipeline, params)
    name = graded_output(pipe, output)
    source = eval_data(dataset, data, split, limit)
    tasks = eval_tasks(source.dataset, split, limit)
    if executor is not None:
        _check_placeable(pipeline, source, store, services)
    base = eval_batch_id(source.dataset, source.digest, pipe.spec_hash, tasks, seed)
    with _opened(store) as st:
        # Service objects are not part of the evaluation's name: runs found under it may
        # have been served others, so an evaluation given some never resumes.
        batch_id = next_unused(base, st, len(tasks)) if fresh or services else base
        if executor is None:
            here = {"models": recorded_hub(source.dataset, evaluated_set(source.dataset, tasks))}
            here |= dict(services or {})
            if isinstance(pipeline, Pipeline):
                runs = await _run_built(
                    pipe, batch_id, tasks, source, st, here, seed, parallel, progress
                )
                return _report(pipe, name, source.dataset, split, tasks, st, runs, grader, describe)
            executor = LocalExecutor(parallel, store=st, services=here)
            location: str | None = st.location
        else:
            location = store if isinstance(store, str) else None
        batch = _batch(pipe, str(pipeline), batch_id, tasks, source, location, seed, params)
        runs = await run_batch(executor, batch, progress)
        return _report(pipe, name, source.dataset, split, tasks, st, runs, grader, describe)


def _pipeline(pipeline: Pipeline | str, params: Mapping[str, Any] | None) -> Pipeline:
    if isinstance(pipeline, Pipeline):
        if params:
            raise ValueError(
                f"params are for a pipeline target's function, and {pipeline.name!r} is built "
                "already; fix: pass FILE.py:FUNCTION with params, or build it with them"
            )
        return pipeline
    return load_pipeline(pipeline, dict(params) if params else None)


def _check_placeable(
    pipeline: Pipeline | str,
    source: EvalData,
    store: ArtifactStore | str | None,
    services: Mapping[str, Any] | None,
) -> None:
    """Refuse, before anything runs, what an executor's workers could not get."""
    if isinstance(pipeline, Pipeline):
        raise TypeError(
            f"pipeline {pipeline.name!r} is built in this process, and an executor's workers "
            "import the pipeline themselves; fix: pass its target FILE.py[:NAME], or no executor"
        )
    if source.services_params is None:
        raise ValueError(
            f"dataset {source.dataset.name!r} is an object in this process, and an executor's "
            "workers load the dataset themselves; fix: pass its name or an orch.eval-dataset "
            "file (Dataset.save writes one), or no executor"
        )
    if services:
        raise ValueError(
            f"services {', '.join(sorted(services))} are objects in this process and cannot "
            "be sent to an executor's workers; fix: evaluate without an executor"
        )
    if not isinstance(store, str | None):
        raise TypeError(
            f"store {store.location} is open in this process, and every worker opens the "
            "store itself; fix: pass its location (a directory, sqlite:///FILE or a database "
            "URL)"
        )
    if absolute_store_location(store) in ("memory:", "memory://"):
        raise ValueError(
            "an evaluation through an executor reads its runs back from the store, and "
            "'memory:' lives inside one process; fix: give a directory, sqlite:///FILE or a "
            "database URL as the store"
        )


@contextmanager
def _opened(store: ArtifactStore | str | None) -> Iterator[ArtifactStore]:
    if isinstance(store, ArtifactStore):
        yield store
        return
    with open_store(store) as st:
        yield st


async def _run_built(
    pipe: Pipeline,
    batch_id: str,
    tasks: list[Task],
    source: EvalData,
    store: ArtifactStore,
    services: Mapping[str, Any],
    seed: int,
    parallel: int,
    progress: Progress | None,
) -> TaskRuns:
    """The runs of a pipeline built in this process, made here (no executor can import it)."""
    items = task_items(batch_id, pipe.spec_hash, tasks, seed)
    origins = [{"eval": f"{source.dataset.name}/{t.id}"} for t in tasks]
    return await run_here(
        pipe,
        batch_id,
        items,
        store,
        services,
        origins=origins,
        parallel=parallel,
        progress=progress,
    )


def _batch(
    pipe: Pipeline,
    target: str,
    batch_id: str,
    tasks: list[Task],
    source: EvalData,
    store: str | None,
    seed: int,
    params: Mapping[str, Any] | None,
) -> BatchSpec:
    """The tasks as a batch of the pipeline ``target``: its workers make the recorded models
    from the dataset's name and digest (:mod:`routers.eval.eval_services`)."""
    return BatchSpec.create(
        target,
        [{"question": t.question} for t in tasks],
        store=store,
        services=None if source.services_params is None else TARGET,
        services_params=source.services_params,
        seeds=[task_seed(seed, t.id) for t in tasks],
        batch_id=batch_id,
        params=params,
    )


def _report(
    pipe: Pipeline,
    name: str,
    dataset: Dataset,
    split: str,
    tasks: list[Task],
    store: ArtifactStore,
    runs: TaskRuns,
    grader: Grader | None,
    describe: Describe | None,
) -> EvalReport:
    """Every task graded from its run's output (as recorded: JSON, validated back into the
    output's type) and the model calls its record holds."""
    kind = TypeAdapter(pipe.output_type(name))
    return EvalReport(
        dataset=dataset.name,
        split=split,
        router=pipe.name,
        results=[
            _graded(dataset, tasks[item.index], store, item, name, kind, grader, describe)
            for item in runs.items
        ],
        resumed=runs.found,
        retried=runs.retried,
        batch_id=runs.batch_id,
        notices=list(runs.notices),
    )


def _graded(
    dataset: Dataset,
    task: Task,
    store: ArtifactStore,
    item: ItemResult,
    name: str,
    kind: TypeAdapter[Any],
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
