"""The matrix-factorisation router: RouteLLM's MF over the query's embedding.

Each model m has a vector v_m and the query's embedding e is projected by a matrix P; the
model's score is s(m, e) = w·(v_m ⊙ P e) + b_m and σ(s) is the probability that it answers
well. Fitted by the logistic loss on every (query, model) cell (the recorded quality in
[0, 1] is the target, so partial credit is a soft label), with l2·(‖P‖² + ‖V‖²)/2, by
full-batch Adam in numpy: a fixed number of steps from a seeded start (numpy's
``default_rng(seed)``), with BLAS on one thread, so the same data and config give the same
state, byte for byte.

The state keeps P, V, w and b as float32 arrays. Serving folds them into one matrix,
U = Pᵀ (V ⊙ w)ᵀ (features x models), since s(·, e) = e·U + b is linear in e: one product
per query.

*Our choices* (the prototype's, /work/proto/routing): P starts at N(0, 1/D) for D dense
features (N(0, 0.01) for sparse TF-IDF), V at N(0, 1/dim), w at 1, b at the logit of each
model's mean quality. This module must never read the global random state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
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

__all__ = ["MF_ROUTER_FORMAT", "MFRouterState", "MFTraining", "train_mf_router"]

MF_ROUTER_FORMAT = "orch.mf-router/1"


class MFTraining(BaseModel):
    """How an MF router is trained; recorded in its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dim: int = Field(default=32, ge=1)
    """Length of the model vectors and of the projected query."""
    l2: float = Field(default=1e-3, ge=0, allow_inf_nan=False)
    learning_rate: float = Field(default=0.01, gt=0, allow_inf_nan=False)
    iterations: int = Field(default=200, ge=1)
    seed: int = 0
    sentence: bool | None = None
    """The default embedder's choice: wordllama (None: when installed) or TF-IDF."""


class MFRouterState(QualityState):
    """A trained MF router (versioned like all router state)."""

    format: Literal["orch.mf-router/1"] = "orch.mf-router/1"
    config: MFTraining
    projection: ArrayData
    """P: (dim, features) float32."""
    model_vectors: ArrayData
    """V: (models, dim) float32."""
    weight: ArrayData
    """w: (dim,) float32."""
    bias: ArrayData
    """b: (models,) float32."""


class _Served:
    def __init__(self, state: MFRouterState, embedder: Embedder) -> None:
        p = np.array(state.projection.to_numpy(), dtype=np.float64)
        v = np.array(state.model_vectors.to_numpy(), dtype=np.float64)
        w = np.array(state.weight.to_numpy(), dtype=np.float64)
        self.bias = np.array(state.bias.to_numpy(), dtype=np.float64)
        m, d = len(state.models), state.config.dim
        if p.shape != (d, embedder.dim) or v.shape != (m, d) or w.shape != (d,):
            raise RouterStateError(
                f"MF router arrays P {p.shape}, V {v.shape}, w {w.shape} do not fit {m} models, "
                f"dim {d} and {embedder.dim} features; fix: the state is damaged, retrain it"
            )
        self.folded = p.T @ (v * w).T

    def quality(self, features: Features) -> NDArray[np.float64]:
        return sigmoid(np.asarray(features @ self.folded, dtype=np.float64) + self.bias)


def _fit(x: Features, y: NDArray[np.float64], cfg: MFTraining) -> dict[str, NDArray[np.float64]]:
    """Full-batch Adam on the mean logistic loss over every (query, model) cell."""
    rng = np.random.default_rng(cfg.seed)
    n, features = x.shape
    models, d = y.shape[1], cfg.dim
    scale = 0.1 if sp.issparse(x) else 1 / math.sqrt(features)
    mean = y.mean(axis=0)
    p = {
        "P": rng.normal(0.0, scale, (d, features)),
        "V": rng.normal(0.0, 1.0, (models, d)) / math.sqrt(d),
        "w": np.ones(d),
        "b": np.log((mean + 1e-3) / (1 - mean + 1e-3)),
    }
    first = {k: np.zeros_like(v) for k, v in p.items()}
    second = {k: np.zeros_like(v) for k, v in p.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    xt = sp.csr_matrix(x.T) if sp.issparse(x) else x.T
    for t in range(1, cfg.iterations + 1):
        h = np.asarray(x @ p["P"].T, dtype=np.float64)  # (n, d): projected queries
        u = p["V"] * p["w"]
        g = (sigmoid(h @ u.T + p["b"]) - y) / (n * models)  # d loss / d score
        dh, du = g @ u, g.T @ h
        grads = {
            "b": g.sum(axis=0),
            "V": du * p["w"] + cfg.l2 * p["V"],
            "w": (du * p["V"]).sum(axis=0),
            "P": np.asarray(xt @ dh, dtype=np.float64).T + cfg.l2 * p["P"],
        }
        for k in p:
            first[k] = beta1 * first[k] + (1 - beta1) * grads[k]
            second[k] = beta2 * second[k] + (1 - beta2) * grads[k] ** 2
            step = (first[k] / (1 - beta1**t)) / (np.sqrt(second[k] / (1 - beta2**t)) + eps)
            p[k] = p[k] - cfg.learning_rate * step
    return p


def train_mf_router(
    examples: Sequence[KNNExample | Mapping[str, Any]],
    embedder: Embedder | None = None,
    *,
    config: MFTraining | None = None,
    parent: str | None = None,
) -> MFRouterState:
    """Fit the MF router on recorded ``examples`` (query, per-model quality and cost). The
    embedder defaults to :func:`~routers._quality.quality_embedder` of the training queries.
    Same data in any order, config and seed give the same state."""
    from threadpoolctl import threadpool_limits

    cfg = config or MFTraining()
    table = quality_table(examples)
    emb = embedder or quality_embedder(table.texts, sentence=cfg.sentence)
    features = emb.embed(table.texts)
    x = features if sp.issparse(features) else np.asarray(features, dtype=np.float64)
    with threadpool_limits(limits=1):
        p = _fit(x, table.quality, cfg)
    return MFRouterState(
        **state_fields(table, emb, parent),
        config=cfg,
        projection=ArrayData.of(p["P"], dtype="float32"),
        model_vectors=ArrayData.of(p["V"], dtype="float32"),
        weight=ArrayData.of(p["w"], dtype="float32"),
        bias=ArrayData.of(p["b"], dtype="float32"),
    )


def _summary(state: MFRouterState) -> str:
    return (
        f"MF router over {len(state.models)} models, {state.examples} training queries, "
        f"dim {state.config.dim}, embedder {state.embedder.kind}"
    )


register_state_format(MF_ROUTER_FORMAT, MFRouterState, _summary)
register_predictor(MF_ROUTER_FORMAT, _Served)
