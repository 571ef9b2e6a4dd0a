"""Router state learned from a dataset's training tasks: what the routers are fitted on.

Pure functions of the tasks (their recorded scores and costs), never of test tasks, each in
the form one router reads:

* :func:`knn_examples`: one kNN training example per task every model was scored on;
* :func:`ability_priors`: each model's mean score per task group, AMRO-S's ability prior;
* :func:`intent_examples`: a few labelled queries per group, AMRO-S's intent inference;
* :func:`ema_observations`: the ORCH EMA router's feedback, one observation per model and
  task, in task order (so the learned state is one version whatever order runs ended);
* :func:`holdout`: a deterministic validation part of a training split, for choosing a
  router's hyper-parameters without touching the test split.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from routers._ema import Observation
from routers._intent import LabelledExample
from routers.eval._dataset import Dataset
from routers.eval._split import unit_hash

__all__ = ["ability_priors", "ema_observations", "holdout", "intent_examples", "knn_examples"]


def _scored(
    dataset: Dataset, task_responses: Any, priced: bool = True
) -> dict[str, tuple[float, float]]:
    out = {}
    for model, samples in task_responses.items():
        if not samples or samples[0].score is None:
            continue
        cost = dataset.cost(model, samples[0])
        if cost is not None or not priced:
            out[model] = (samples[0].score, cost or 0.0)
    return out


def knn_examples(dataset: Dataset, priced: bool = True) -> list[dict[str, Any]]:
    """``{"query", "quality", "cost_usd"}`` per task with every model scored and priced
    (first sample); tasks missing a model are left out, as the kNN index needs them whole.
    ``priced=False`` keeps tasks whose cost is unknown (at cost 0), for a caller that sets
    the costs itself."""
    out = []
    for task in dataset.tasks:
        scored = _scored(dataset, task.responses, priced)
        if len(scored) == len(dataset.models):
            out.append(
                {
                    "query": task.question,
                    "quality": {m: q for m, (q, _) in scored.items()},
                    "cost_usd": {m: c for m, (_, c) in scored.items()},
                }
            )
    return out


def ability_priors(dataset: Dataset) -> dict[str, dict[str, float]]:
    """``{model: {group: mean score}}`` over every scored sample of the tasks; a task without
    a group counts under ``"general"``."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for task in dataset.tasks:
        group = task.group or "general"
        for model, samples in task.responses.items():
            sums[model][group] += [s.score for s in samples if s.score is not None]
    return {
        m: {g: sum(v) / len(v) for g, v in sorted(groups.items()) if v}
        for m, groups in sorted(sums.items())
    }


def intent_examples(dataset: Dataset, per_group: int = 20) -> list[LabelledExample]:
    """The first ``per_group`` tasks of each group, in task order, labelled by group."""
    if per_group < 1:
        raise ValueError(f"per_group is {per_group}; fix: use per_group >= 1")
    taken: dict[str, int] = defaultdict(int)
    out = []
    for task in dataset.tasks:
        group = task.group or "general"
        if taken[group] < per_group:
            taken[group] += 1
            out.append(LabelledExample(text=task.question, task=group))
    return out


def ema_observations(dataset: Dataset) -> list[Observation]:
    """One observation per (task, model) with the first sample's score as quality and its
    cost; tasks in dataset order, models in name order."""
    out = []
    for task in dataset.tasks:
        for model, (quality, cost) in sorted(_scored(dataset, task.responses).items()):
            out.append(Observation(agent=model, ok=True, quality=quality, cost_usd=cost))
    return out


def holdout(dataset: Dataset, fraction: float = 0.25, salt: str = "val") -> tuple[Dataset, Dataset]:
    """(fit, validation): ``fraction`` of the tasks by a hash of their id, the rest to fit."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction is {fraction}; fix: use 0 < fraction < 1")
    val = [t for t in dataset.tasks if unit_hash(t.id, salt) < fraction]
    fit = [t for t in dataset.tasks if unit_hash(t.id, salt) >= fraction]
    return dataset.model_copy(update={"tasks": fit}), dataset.model_copy(update={"tasks": val})
