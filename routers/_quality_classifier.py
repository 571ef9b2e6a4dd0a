"""The classifier router: one logistic regression per model on the query's embedding.

RouteLLM's classifier routers predict, from the query alone, whether a model answers it
well. Ours fits, for each model, an L2-regularised logistic regression (scikit-learn, lbfgs)
on the embedded training queries, and serves q̂_m = σ(x·w_m + b_m) from plain arrays
(``weight``: features x models, ``bias``: models, float32), so loading the state never runs
code and scoring is one matrix product.

*Our choice* for quality that is not 0 or 1: soft labels through sample weights. Each
example enters the fit twice, as a positive with weight q and as a negative with weight
1 - q (the zero weights dropped), which is the logistic loss against the target q; with 0/1
quality it is the plain fit. A model that is right on every example (or wrong on every one)
gets zero weights and the bias log((Σq + ½) / (Σ(1 - q) + ½)).

Training is deterministic: the examples are sorted (:func:`routers._quality.quality_table`),
lbfgs has no randomness, and BLAS runs on one thread during the fit, as thread count changes
the last bits of a fitted weight and so the state's hash. This module must never pickle a
fitted estimator: only its coefficients are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from routers._arrays import ArrayData
from routers._embed import Embedder, Features
from routers._quality import (
    QualityState,
    quality_embedder,
    quality_table,
    register_predictor,
    sigmoid,
    state_fields,
)
from routers._state import register_state_format
from routers.baselines import KNNExample
from routers.errors import RouterStateError

__all__ = [
    "CLASSIFIER_ROUTER_FORMAT",
    "ClassifierRouterState",
    "ClassifierTraining",
    "train_classifier_router",
]

CLASSIFIER_ROUTER_FORMAT = "orch.classifier-router/1"


class ClassifierTraining(BaseModel):
    """How a classifier router is trained; recorded in its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    c: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Inverse regularisation strength of each logistic regression."""
    max_iter: int = Field(default=2000, ge=10)
    sentence: bool | None = None
    """The default embedder's choice: wordllama (None: when installed) or TF-IDF."""


class ClassifierRouterState(QualityState):
    """A trained classifier router (versioned like all router state)."""

    format: Literal["orch.classifier-router/1"] = "orch.classifier-router/1"
    config: ClassifierTraining
    weight: ArrayData
    """(features, models) float32."""
    bias: ArrayData
    """(models,) float32."""


class _Served:
    def __init__(self, state: ClassifierRouterState, embedder: Embedder) -> None:
        self.weight = np.array(state.weight.to_numpy(), dtype=np.float64)
        self.bias = np.array(state.bias.to_numpy(), dtype=np.float64)
        m = len(state.models)
        if self.weight.shape != (embedder.dim, m) or self.bias.shape != (m,):
            raise RouterStateError(
                f"classifier router weights have shape {self.weight.shape} for {m} models and "
                f"{embedder.dim} features; fix: the state is damaged, retrain it"
            )

    def quality(self, features: Features) -> NDArray[np.float64]:
        return sigmoid(np.asarray(features @ self.weight, dtype=np.float64) + self.bias)


def _fit_column(features: Features, target: NDArray[np.float64], c: float, max_iter: int) -> Any:
    """One model's (weights, bias) fitted to soft labels ``target`` in [0, 1]."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    pos, neg = np.flatnonzero(target > 0), np.flatnonzero(target < 1)
    if len(pos) == 0 or len(neg) == 0:
        bias = math.log((math.fsum(target) + 0.5) / (math.fsum(1 - target) + 0.5))
        return np.zeros(features.shape[1]), bias
    rows = np.concatenate([pos, neg])
    x = features[rows]
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weight = np.concatenate([target[pos], 1 - target[neg]])
    model = LogisticRegression(C=c, max_iter=max_iter, solver="lbfgs")
    with threadpool_limits(limits=1):
        model.fit(x, y, sample_weight=weight)
    return model.coef_[0], float(model.intercept_[0])


def train_classifier_router(
    examples: Sequence[KNNExample | Mapping[str, Any]],
    embedder: Embedder | None = None,
    *,
    config: ClassifierTraining | None = None,
    parent: str | None = None,
) -> ClassifierRouterState:
    """Fit the classifier router on recorded ``examples`` (query, per-model quality and
    cost). The embedder defaults to :func:`~routers._quality.quality_embedder` of the
    training queries. Same data in any order and config give the same state."""
    cfg = config or ClassifierTraining()
    table = quality_table(examples)
    emb = embedder or quality_embedder(table.texts, sentence=cfg.sentence)
    features = emb.embed(table.texts)
    columns = [
        _fit_column(features, table.quality[:, j], cfg.c, cfg.max_iter)
        for j in range(len(table.models))
    ]
    weight = np.column_stack([w for w, _ in columns])
    bias = np.array([b for _, b in columns])
    return ClassifierRouterState(
        **state_fields(table, emb, parent),
        config=cfg,
        weight=ArrayData.of(weight, dtype="float32"),
        bias=ArrayData.of(bias, dtype="float32"),
    )


def _summary(state: ClassifierRouterState) -> str:
    return (
        f"classifier router over {len(state.models)} models, {state.examples} training "
        f"queries, C={state.config.c:g}, embedder {state.embedder.kind}"
    )


register_state_format(CLASSIFIER_ROUTER_FORMAT, ClassifierRouterState, _summary)
register_predictor(CLASSIFIER_ROUTER_FORMAT, _Served)
