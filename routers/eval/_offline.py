"""Choosing a router's settings on a labelled split, without runs.

Tuning a router (k of the kNN router, C of the classifier, gamma of the SW router, which λ
values or thresholds to run on test) compares many settings on the validation part of the
training split. Running each setting through the engine would spend minutes on numbers that
are only compared with each other, so these functions score settings from predictions and
the recorded outcomes directly: the same rules the routers apply (argmax of a utility, ties to
the first model in name order; strong when a score reaches a threshold), the same measures
the report uses (:mod:`routers.eval._metrics`). The figures an evaluation reports still come
from recorded runs on the test split.

* :func:`outcome_arrays`: a split's recorded quality and cost per (task, model);
* :func:`choice_points`: the (cost, quality) point of each setting's choices;
* :func:`aiq_gain`: AIQ minus the zero router's over the range :func:`~routers.eval.aiq_curve`
  uses; :func:`hull_settings`: the settings whose points make the hull (at most n, the
  ones that keep the most area);
* :func:`ranked_apgr`: a two-model score's APGR with thresholds at its own quantiles.

Pure functions of arrays: no I/O, no randomness, no runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from routers.eval._dataset import Dataset
from routers.eval._metrics import Point, aiq, apgr, ndch
from routers.eval._training import knn_examples

__all__ = [
    "Outcomes",
    "aiq_gain",
    "choice_points",
    "hull_settings",
    "outcome_arrays",
    "ranked_apgr",
]


@dataclass(frozen=True)
class Outcomes:
    """A split's tasks (those every model was scored on) as arrays, models in name order."""

    texts: list[str]
    models: list[str]
    quality: NDArray[np.float64]
    """(tasks, models) recorded score of the first sample."""
    cost: NDArray[np.float64]
    """(tasks, models) recorded cost of that call."""

    def singles(self) -> list[Point]:
        """Each model's (mean cost, mean quality) on these tasks."""
        return [
            Point(float(c), float(q), m)
            for m, q, c in zip(self.models, self.quality.mean(0), self.cost.mean(0), strict=True)
        ]


def outcome_arrays(dataset: Dataset, *, priced: bool = True) -> Outcomes:
    """The recorded outcomes of ``dataset`` (:func:`~routers.eval.knn_examples`' tasks)."""
    examples = knn_examples(dataset, priced=priced)
    if not examples:
        raise ValueError(
            f"dataset {dataset.name!r} has no task every model was scored on; fix: use a "
            "split with complete recordings (Dataset.complete())"
        )
    models = sorted(examples[0]["quality"])
    return Outcomes(
        texts=[e["query"] for e in examples],
        models=models,
        quality=np.array([[e["quality"][m] for m in models] for e in examples]),
        cost=np.array([[e["cost_usd"][m] for m in models] for e in examples]),
    )


def choice_points(
    utilities: Sequence[NDArray[np.float64]], outcomes: Outcomes, labels: Sequence[str]
) -> list[Point]:
    """One point per setting: each task's argmax utility (ties to the first model in name
    order, as the routers break them), its mean recorded cost and quality."""
    rows = np.arange(len(outcomes.texts))
    out = []
    for utility, label in zip(utilities, labels, strict=True):
        chosen = np.argmax(utility, axis=1)
        out.append(
            Point(
                float(outcomes.cost[rows, chosen].mean()),
                float(outcomes.quality[rows, chosen].mean()),
                label,
            )
        )
    return out


def aiq_gain(points: Sequence[Point], singles: Sequence[Point]) -> float:
    """AIQ of ``points`` minus the zero router's (the hull of ``singles``) over [max(cheapest
    single, the points' cheapest hull point), dearest single]; -inf when that range is empty."""
    costs = [p.cost for p in singles]
    lo, hi = max(min(costs), ndch(points)[0].cost), max(costs)
    if lo >= hi:
        return float("-inf")
    return aiq(points, (lo, hi)) - aiq(ndch(singles), (lo, hi))


def hull_settings(points: Sequence[Point], at_most: int) -> list[int]:
    """Indices of the settings whose points are vertices of the hull (the first setting of
    each distinct vertex), cheapest first; with more than ``at_most``, the interior vertex
    whose loss costs the least area under the hull is dropped, one at a time (the cheapest
    and the dearest are kept; ties drop the cheaper)."""
    if at_most < 1:
        raise ValueError(f"at_most is {at_most}; fix: use at_most >= 1")
    hull = ndch(points)
    index = [
        next(i for i, p in enumerate(points) if (p.cost, p.quality) == (v.cost, v.quality))
        for v in hull
    ]
    if at_most == 1:
        return index[-1:]
    keep = list(range(len(hull)))
    span = (hull[0].cost, hull[-1].cost)
    while len(keep) > at_most:
        areas = [(aiq([hull[i] for i in keep if i != j], span), -j) for j in keep[1:-1]]
        _, drop = max(areas)
        keep.remove(-drop)
    return [index[i] for i in keep]


def ranked_apgr(
    scores: NDArray[np.float64],
    strong_quality: NDArray[np.float64],
    weak_quality: NDArray[np.float64],
    shares: Sequence[float],
) -> float:
    """APGR of sending the tasks with the highest ``scores`` to the strong model, at each
    of ``shares`` (thresholds at the scores' own quantiles), plus the all-weak and
    all-strong ends: how well the score ranks tasks, for choosing a setting."""
    qs, qw = float(strong_quality.mean()), float(weak_quality.mean())
    if qs == qw:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    n = len(scores)
    curve = [(0.0, qw), (1.0, qs)]
    for share in shares:
        k = round(share * n)
        strong = np.zeros(n, dtype=bool)
        strong[order[:k]] = True
        curve.append((k / n, float(np.where(strong, strong_quality, weak_quality).mean())))
    return apgr(curve, qw, qs)
