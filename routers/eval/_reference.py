"""Reference points every router is measured against: single models, the zero router, the
oracle.

* A **single model**'s point is its mean cost per task and its mean score per call (the
  mean over its recorded samples, so a model sampled several times counts as the expected
  score of one call).
* The **zero router** is the non-decreasing convex hull of the single models' points:
  what mixing models at random, with no learning, reaches at each cost.
* The **oracle** answers each task with the cheapest model whose first sample is fully
  correct (and the cheapest model when none is): the upper bound no router reaches.

Tasks a model has no recorded sample for are skipped for that model, and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routers.eval._dataset import Dataset, Sample, Task
from routers.eval._metrics import Point, ndch

__all__ = ["ModelScore", "OracleResult", "oracle", "single_models", "zero_router"]


@dataclass(frozen=True)
class ModelScore:
    model: str
    tasks: int
    """Tasks with at least one recorded sample of this model."""
    missing: int
    """Tasks without one."""
    quality: float
    """Mean score per call."""
    cost: float | None
    """Mean cost per task (one call), or None when the data gives no cost."""

    @property
    def point(self) -> Point:
        return Point(self.cost or 0.0, self.quality, self.model)


def _call_cost(dataset: Dataset, model: str, samples: Sequence[Sample]) -> float | None:
    costs = [dataset.cost(model, s) for s in samples]
    known = [c for c in costs if c is not None]
    return sum(known) / len(known) if known else None


def single_models(dataset: Dataset) -> list[ModelScore]:
    """Each model's mean score and mean cost per call over the tasks it answered."""
    out = []
    for model in dataset.models:
        scores: list[float] = []
        costs: list[float] = []
        missing = 0
        for task in dataset.tasks:
            samples = [s for s in task.responses.get(model, []) if s.score is not None]
            if not samples:
                missing += 1
                continue
            scores.append(sum(s.score or 0.0 for s in samples) / len(samples))
            cost = _call_cost(dataset, model, samples)
            if cost is not None:
                costs.append(cost)
        if not scores:
            continue
        out.append(
            ModelScore(
                model=model,
                tasks=len(scores),
                missing=missing,
                quality=sum(scores) / len(scores),
                cost=sum(costs) / len(costs) if len(costs) == len(scores) else None,
            )
        )
    return out


def zero_router(dataset: Dataset, scores: Sequence[ModelScore] | None = None) -> list[Point]:
    """The zero router's hull: random mixes of single models (``scores``: the dataset's
    :func:`single_models`, when the caller has them already)."""
    models = scores if scores is not None else single_models(dataset)
    points = [m.point for m in models if m.cost is not None]
    if not points:
        raise ValueError(f"dataset {dataset.name!r} records no cost: there is no zero router")
    return ndch(points)


@dataclass(frozen=True)
class OracleResult:
    quality: float
    cost: float
    choices: dict[str, str]
    """Task id -> the model the oracle picked."""

    @property
    def point(self) -> Point:
        return Point(self.cost, self.quality, "oracle")


def oracle(dataset: Dataset, models: Sequence[str] | None = None) -> OracleResult:
    """The cheapest fully correct model per task (first samples), among ``models``."""
    pool = list(models) if models is not None else dataset.models
    total_q = total_c = 0.0
    choices: dict[str, str] = {}
    counted = 0
    for task in dataset.tasks:
        picked = _oracle_pick(dataset, task, pool)
        if picked is None:
            continue
        model, sample, cost = picked
        counted += 1
        total_q += sample.score or 0.0
        total_c += cost
        choices[task.id] = model
    if counted == 0:
        raise ValueError(f"dataset {dataset.name!r}: no task has a scored, costed sample")
    return OracleResult(total_q / counted, total_c / counted, choices)


def _oracle_pick(
    dataset: Dataset, task: Task, pool: Sequence[str]
) -> tuple[str, Sample, float] | None:
    options: list[tuple[bool, float, str, Sample]] = []
    for model in pool:
        samples = task.responses.get(model)
        if not samples or samples[0].score is None:
            continue
        cost = dataset.cost(model, samples[0])
        if cost is None:
            continue
        # Correct first, then cheapest, then by name: a deterministic choice.
        options.append((not samples[0].correct, cost, model, samples[0]))
    if not options:
        return None
    _, cost, model, sample = min(options, key=lambda o: (o[0], o[1], o[2]))
    return model, sample, cost
