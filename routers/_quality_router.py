"""The trained model routers as agents: predict each model's quality, choose, call once.

Three agents, one per trained state (:mod:`routers._quality_classifier`,
:mod:`routers._quality_mf`, :mod:`routers._quality_sw`), with one behaviour: read the state by
its version (checked once per process against that version: a tampered state is refused),
embed the question (the state's embedder, rebuilt from its spec), predict q̂ per model, choose
(:class:`QualityRouterConfig`: by λ over every model, or by a threshold between two), record
the decision with its evidence, and ask the chosen model once. The output is the baselines'
:class:`~routers.baselines.Routed`, so the evaluation harness grades these routers like the
kNN router.

This module must never train: a state is made by the ``train_*_router`` functions and saved
with :func:`~routers._state.save_state` before a run reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from orch import Context, agent
from routers._embed import Embedder
from routers._extract import extractor
from routers._quality import (
    Predictor,
    QualityState,
    choose_by_cost,
    choose_by_threshold,
    predictor,
    strong_and_weak,
)
from routers._quality_classifier import ClassifierRouterState
from routers._quality_mf import MFRouterState
from routers._quality_sw import SWRouterState
from routers._served import checked_state, serving_embedder
from routers.baselines import ExtractorName, MaxTokens, ModelName, Routed, _Caller

__all__ = [
    "QualityQuery",
    "QualityRouterConfig",
    "classifier_router",
    "mf_router",
    "sw_router",
]


class QualityQuery(BaseModel):
    question: str
    state: str
    """The trained state's version (its artifact key, from ``save_state``)."""


class QualityRouterConfig(BaseModel):
    """How a trained router chooses from its predicted qualities."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lam: float = 0.0
    """λ: the model with the best q̂ - λ·mean cost answers (0: the best predicted quality,
    whatever it costs; costs in the training data's unit, USD per call)."""
    threshold: float | None = None
    """Two models only: the strong one answers when q̂_strong - q̂_weak >= threshold (set by
    :func:`~routers.calibrate_threshold`); λ is then unused."""
    strong: ModelName | None = None
    """The strong model of a threshold (default: the better one on the training data)."""
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512

    @field_validator("lam")
    @classmethod
    def _lam(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"lam (λ) is {v!r}; fix: use a finite λ >= 0")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"threshold is {v!r}; fix: use a finite threshold, or none")
        return v


@dataclass(frozen=True)
class _Serving:
    state: QualityState
    predictor: Predictor
    embedder: Embedder


_SERVING: dict[str, _Serving] = {}
_SERVING_MAX = 16


def _serving(ctx: Context, version: str, cls: type[QualityState]) -> _Serving:
    # A pure function of the version (a content hash), so the cache cannot change a decision.
    found = _SERVING.get(version)
    if found is None or not isinstance(found.state, cls):
        state = checked_state(ctx, version, cls)
        embedder = serving_embedder(state.embedder)
        found = _Serving(state, predictor(state, embedder), embedder)
        if len(_SERVING) >= _SERVING_MAX:
            _SERVING.pop(next(iter(_SERVING)))
        _SERVING[version] = found
    return found


async def _route(q: QualityQuery, ctx: Context, cls: type[QualityState]) -> Routed:
    cfg: QualityRouterConfig = ctx.config
    serving = _serving(ctx, q.state, cls)
    state = serving.state
    # One question per embed call: its row never depends on what else is embedded.
    predicted = serving.predictor.quality(serving.embedder.embed([q.question]))[0]
    quality = dict(zip(state.models, (float(v) for v in predicted), strict=True))
    costs = dict(zip(state.models, state.mean_cost_usd, strict=True))
    evidence: dict[str, Any] = {"predicted_quality": quality, "mean_cost_usd": costs}
    if cfg.threshold is None:
        model, scores = choose_by_cost(state.models, predicted, state.mean_cost_usd, cfg.lam)
        evidence["lam"] = cfg.lam
        reason = (
            f"{model} has the best q̂ - λ·cost = {quality[model]:.4f} - {cfg.lam:g}·"
            f"{costs[model]:.6g} = {scores[model]:.6f} of {len(state.models)} models"
        )
    else:
        strong, weak = strong_and_weak(state, cfg.strong)
        model, gap = choose_by_threshold(quality, strong, weak, cfg.threshold)
        scores = quality
        evidence |= {"threshold": cfg.threshold, "strong": strong, "weak": weak, "gap": gap}
        reason = (
            f"q̂({strong}) - q̂({weak}) = {gap:.4f} "
            f"{'>=' if model == strong else '<'} threshold {cfg.threshold:.4f}: {model}"
        )
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(model, q.question)).text)
    ctx.decide(
        candidates=state.models,
        chosen=model,
        scores=scores,
        reason=reason,
        parameters=cfg.model_dump(),
        state_version=q.state,
        evidence={**evidence, "answer": answer, "cost_usd": caller.cost},
    )
    return Routed(
        answer=answer, models_invoked=caller.invoked, chosen=[model], cost_usd=caller.cost
    )


@agent(name="classifier-router", version="1", config=QualityRouterConfig)
async def classifier_router(q: QualityQuery, ctx: Context) -> Routed:
    """Per-model logistic regressions predict quality; choose by λ or threshold; one call."""
    return await _route(q, ctx, ClassifierRouterState)


@agent(name="mf-router", version="1", config=QualityRouterConfig)
async def mf_router(q: QualityQuery, ctx: Context) -> Routed:
    """Matrix factorisation predicts quality; choose by λ or threshold; one call."""
    return await _route(q, ctx, MFRouterState)


@agent(name="sw-router", version="1", config=QualityRouterConfig)
async def sw_router(q: QualityQuery, ctx: Context) -> Routed:
    """Similarity-weighted Bradley-Terry ranking predicts quality; choose by λ or threshold;
    one call."""
    return await _route(q, ctx, SWRouterState)
