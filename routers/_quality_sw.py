"""The similarity-weighted ranking router: RouteLLM's SW, a Bradley-Terry fit per query.

Every training query is a set of "battles": model a beats model b there with weight
q_a · (1 - q_b) (with 0/1 quality: a was right and b wrong). For a new query, each training
query's battles count with weight exp(gamma · (cos(x, x_i) - max_i cos)) (its cosine
similarity to the query, relative to the nearest one), normalised to sum to the number of
training queries; a Bradley-Terry model fitted to those weighted battles gives each model a
strength, and q̂_m is the mean probability that m beats each other model. With two models
this is the similarity-weighted win rate of the one over the other.

The state keeps the training queries' texts and quality table, and the embedder's spec: the
training embeddings are made again from the texts when the state is served (the embedders
are deterministic), so the state needs no embedding-sized arrays. Nothing is fitted ahead:
training is validating and sorting the examples.

*Our choices*: ``prior`` pseudo-battles split evenly over every ordered pair of models keep
a model with no recorded wins at a finite strength (the prototype's, /work/proto/routing);
the Bradley-Terry fit is the maximum-likelihood one, found by Newton's method
(:func:`bradley_terry`) where the prototype ran 100 MM (Zermelo) steps: the same fixed
point, reached in a few steps instead of approached slowly, which matters when every query
is one fit.

This module must never keep anything but texts and numbers in the state.
"""

from __future__ import annotations

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
from routers._served import cosines
from routers._state import register_state_format
from routers.baselines import KNNExample
from routers.errors import RouterStateError

__all__ = [
    "SW_ROUTER_FORMAT",
    "SWRouterState",
    "SWTraining",
    "bradley_terry",
    "train_sw_router",
]

SW_ROUTER_FORMAT = "orch.sw-router/1"
_CHUNK = 256


class SWTraining(BaseModel):
    """How an SW router weighs its training battles; recorded in its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    gamma: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    """gamma: how sharply similarity concentrates the weight on the nearest training queries."""
    iterations: int = Field(default=50, ge=1)
    """At most this many Newton steps of the Bradley-Terry fit (it stops when converged)."""
    prior: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Pseudo-battles per model, spread over its pairs."""
    sentence: bool | None = None
    """The default embedder's choice: wordllama (None: when installed) or TF-IDF."""


class SWRouterState(QualityState):
    """An SW router: the training queries and their quality table."""

    format: Literal["orch.sw-router/1"] = "orch.sw-router/1"
    config: SWTraining
    texts: list[str]
    """The training queries, in the table's canonical order."""
    quality: ArrayData
    """(queries, models) float32 recorded quality."""


class _Served:
    def __init__(self, state: SWRouterState, embedder: Embedder) -> None:
        q = np.array(state.quality.to_numpy(), dtype=np.float64)
        m = len(state.models)
        if q.shape != (len(state.texts), m) or not state.texts:
            raise RouterStateError(
                f"SW router quality table has shape {q.shape} for {len(state.texts)} texts and "
                f"{m} models; fix: the state is damaged, retrain it"
            )
        self.config = state.config
        self.models = m
        self.quality_table = q
        self.rows = embedder.embed(state.texts)
        # battles[i, a * m + b]: how much training query i says a beats b.
        self.battles = (q[:, :, None] * (1.0 - q[:, None, :])).reshape(len(q), m * m)

    def quality(self, features: Features) -> NDArray[np.float64]:
        n = features.shape[0]
        out = np.empty((n, self.models))
        for start in range(0, n, _CHUNK):
            out[start : start + _CHUNK] = self._rank(
                cosines(features[start : start + _CHUNK], self.rows)
            )
        return out

    def _rank(self, sims: NDArray[np.float64]) -> NDArray[np.float64]:
        cfg, m, n = self.config, self.models, self.rows.shape[0]
        weight = np.exp(cfg.gamma * (sims - sims.max(axis=1, keepdims=True)))
        weight *= n / weight.sum(axis=1, keepdims=True)
        out: NDArray[np.float64]
        if m == 1:
            out = (weight @ self.quality_table) / n
            return out
        wins = (weight @ self.battles).reshape(-1, m, m) + cfg.prior / m
        idx = np.arange(m)
        wins[:, idx, idx] = 0.0
        theta = bradley_terry(wins, cfg.iterations)
        beats = sigmoid(theta[:, :, None] - theta[:, None, :])
        out = (beats.sum(axis=2) - 0.5) / (m - 1)
        return out


def bradley_terry(wins: NDArray[np.float64], iterations: int) -> NDArray[np.float64]:
    """Bradley-Terry log-strengths (mean 0) of each stack of ``wins`` (wins[q, a, b]: a's
    weighted wins over b; positive off the diagonal), by Newton's method on the concave
    log-likelihood: at most ``iterations`` steps from equal strengths, each step clipped to
    4 in log-strength, stopping once no step exceeds 1e-10 (so the same inputs stop at the
    same step)."""
    games = wins + wins.transpose(0, 2, 1)
    total = wins.sum(axis=2)
    count, m = wins.shape[0], wins.shape[1]
    theta = np.zeros((count, m))
    # Adding the all-ones matrix fixes the one free direction (every strength times a
    # constant); the gradient sums to zero, so the step keeps the mean of theta at 0.
    ones = np.ones((m, m))
    for _ in range(iterations):
        p = sigmoid(theta[:, :, None] - theta[:, None, :])
        grad = total - (games * p).sum(axis=2)
        curv = games * p * (1.0 - p)
        system = -curv + ones
        idx = np.arange(m)
        system[:, idx, idx] += curv.sum(axis=2)
        step = np.clip(np.linalg.solve(system, grad[:, :, None])[:, :, 0], -4.0, 4.0)
        theta = theta + step
        theta -= theta.mean(axis=1, keepdims=True)
        if float(np.abs(step).max()) <= 1e-10:
            break
    return theta


def train_sw_router(
    examples: Sequence[KNNExample | Mapping[str, Any]],
    embedder: Embedder | None = None,
    *,
    config: SWTraining | None = None,
    parent: str | None = None,
) -> SWRouterState:
    """The SW router of recorded ``examples`` (query, per-model quality and cost). The
    embedder defaults to :func:`~routers._quality.quality_embedder` of the training queries.
    Same data in any order and config give the same state."""
    cfg = config or SWTraining()
    table = quality_table(examples)
    emb = embedder or quality_embedder(table.texts, sentence=cfg.sentence)
    return SWRouterState(
        **state_fields(table, emb, parent),
        config=cfg,
        texts=table.texts,
        quality=ArrayData.of(table.quality, dtype="float32"),
    )


def _summary(state: SWRouterState) -> str:
    return (
        f"SW router over {len(state.models)} models, {state.examples} training queries, "
        f"gamma={state.config.gamma:g}, embedder {state.embedder.kind}"
    )


register_state_format(SW_ROUTER_FORMAT, SWRouterState, _summary)
register_predictor(SW_ROUTER_FORMAT, _Served)
