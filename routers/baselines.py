"""Baselines a serious routing evaluation needs, as agents with recorded decisions.

* :data:`single`: one model, always;
* :data:`random_router`: a model drawn uniformly with the step's seeded RNG;
* :data:`majority_vote`: every model answers; the most frequent answer wins, ties to the model
  listed first (a fixed tie order);
* :data:`knn_router`: the k training queries nearest the query (TF-IDF cosine) give each
  model an expected quality and cost (similarity-weighted means); the model with the best
  λ·quality - cost answers. The index is versioned router state (:class:`KNNIndex`);
* :data:`cascade`: a weak model is sampled n times; when the share agreeing with the majority
  reaches the threshold its answer is accepted, else the strong model answers;
* :data:`oracle`: for evaluation only; every model answers and the cheapest correct one is
  chosen (the cheapest model when none is correct). It needs the gold label.

All take a :class:`Query` and return a :class:`Routed`. *Our choices*: kNN ties go to the
model name first in sort order, and with no lexical overlap at all the kNN estimate is the
plain mean over the k neighbours; unextractable answers never count as agreeing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agents.models import ChatMessage, ChatRequest, ChatResponse, ModelHub
from orch import Context, agent
from traces import hash_value

from .extract import extractor
from .lexical import LexicalIndex
from .state import register_state_format

__all__ = [
    "CascadeConfig",
    "KNNConfig",
    "KNNExample",
    "KNNIndex",
    "KNNQuery",
    "ModelsConfig",
    "Query",
    "Routed",
    "SingleConfig",
    "build_knn_index",
    "cascade",
    "knn_router",
    "majority_vote",
    "oracle",
    "random_router",
    "single",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Query(BaseModel):
    question: str = Field(min_length=1)
    gold: str | None = None
    """The gold answer (needed by the oracle only)."""


class Routed(BaseModel):
    answer: str | None
    chosen: list[str]
    models_invoked: list[str]
    cost_usd: float


def _check_extractor(name: str) -> str:
    extractor(name)  # an unknown name fails here, naming the known ones
    return name


ExtractorName = Annotated[str, AfterValidator(_check_extractor)]


class SingleConfig(BaseModel):
    model_config = _FROZEN
    model: str = Field(min_length=1)
    extractor: ExtractorName = "option"
    max_tokens: int = Field(default=512, gt=0)


class ModelsConfig(BaseModel):
    model_config = _FROZEN
    models: list[str] = Field(min_length=1)
    extractor: ExtractorName = "option"
    max_tokens: int = Field(default=512, gt=0)

    @field_validator("models")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        dupes = sorted({m for m in v if v.count(m) > 1})
        if dupes:
            raise ValueError(f"models must be distinct, got duplicates {dupes}")
        return v


class _Caller:
    """Calls models through the hub, keeping the models invoked and their cost."""

    def __init__(self, ctx: Context, max_tokens: int) -> None:
        self.ctx = ctx
        self.hub: ModelHub = ctx.service("models")
        self.max_tokens = max_tokens
        self.invoked: list[str] = []
        self.costs: list[float] = []

    async def ask(
        self, model: str, question: str, *, temperature: float | None = None, sample: int = 0
    ) -> ChatResponse:
        response = await self.hub.chat(
            self.ctx,
            ChatRequest(
                model=model,
                messages=[ChatMessage(role="user", content=question)],
                temperature=temperature,
                sample=sample,
                max_tokens=self.max_tokens,
            ),
        )
        self.invoked.append(model)
        self.costs.append(self.hub.registry.model(model).cost(response.usage))
        return response

    @property
    def cost(self) -> float:
        return sum(self.costs)


@agent(name="single-model", version="1", config=SingleConfig)
async def single(q: Query, ctx: Context) -> Routed:
    """Always the configured model."""
    cfg: SingleConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(cfg.model, q.question)).text)
    ctx.decide(
        candidates=[cfg.model],
        chosen=cfg.model,
        reason=f"single-model baseline: always {cfg.model}",
        parameters={"model": cfg.model, "extractor": cfg.extractor},
        evidence={"answer": answer, "cost_usd": caller.cost},
    )
    return Routed(
        answer=answer, chosen=[cfg.model], models_invoked=caller.invoked, cost_usd=caller.cost
    )


@agent(name="random-router", version="1", config=ModelsConfig)
async def random_router(q: Query, ctx: Context) -> Routed:
    """A model drawn uniformly with the step's seeded RNG."""
    cfg: ModelsConfig = ctx.config
    draw = ctx.rng.random()
    index = min(int(draw * len(cfg.models)), len(cfg.models) - 1)
    model = cfg.models[index]
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(model, q.question)).text)
    p = 1.0 / len(cfg.models)
    ctx.decide(
        candidates=cfg.models,
        chosen=model,
        scores=dict.fromkeys(cfg.models, p),
        reason=f"uniform draw {draw:.4f} picked {model} (p={p:.3f} each)",
        parameters={"models": cfg.models, "extractor": cfg.extractor},
        evidence={"draw": draw, "answer": answer, "cost_usd": caller.cost},
    )
    return Routed(
        answer=answer, chosen=[model], models_invoked=caller.invoked, cost_usd=caller.cost
    )


def vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    """Most frequent readable answer; ties go to the answer of the earliest model listed."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, {}
    top = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == top)
    return winner, dict(sorted(counts.items()))


@agent(name="majority-vote", version="1", config=ModelsConfig)
async def majority_vote(q: Query, ctx: Context) -> Routed:
    """Every model answers; the majority wins with a fixed tie order (config order)."""
    cfg: ModelsConfig = ctx.config
    if len(cfg.models) < 2:
        raise ValueError("a majority vote needs at least 2 models; fix: list 2 or more")
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    answers = [extract((await caller.ask(m, q.question)).text) for m in cfg.models]
    winner, counts = vote(answers)
    tied = list(counts.values()).count(max(counts.values(), default=0)) > 1
    backers = [m for m, a in zip(cfg.models, answers, strict=True) if a == winner and a is not None]
    ctx.decide(
        candidates=cfg.models,
        chosen=backers,
        scores=dict(counts),
        reason=(
            f"{winner!r} has {counts[winner]} of {len(cfg.models)} votes"
            + (" (tie broken by model order)" if tied else "")
            if winner is not None
            else "no model gave a readable answer"
        ),
        parameters={"models": cfg.models, "extractor": cfg.extractor},
        evidence={"answers": dict(zip(cfg.models, answers, strict=True)), "cost_usd": caller.cost},
    )
    return Routed(
        answer=winner, chosen=backers, models_invoked=caller.invoked, cost_usd=caller.cost
    )


# -- kNN -------------------------------------------------------------------------------------


class KNNExample(BaseModel):
    """A training query with each model's quality (0..1) and cost (USD) on it."""

    model_config = _FROZEN
    query: str = Field(min_length=1)
    quality: dict[str, float]
    cost_usd: dict[str, float]


class KNNIndex(BaseModel):
    """The kNN router's learned state: its training examples, versioned like all state."""

    model_config = _FROZEN
    format: str = "orch.knn-index/1"
    models: list[str]
    examples: list[KNNExample]
    parent: str | None = None

    @property
    def version(self) -> str:
        return hash_value(self)


def build_knn_index(
    examples: Sequence[KNNExample | dict[str, Any]], parent: str | None = None
) -> KNNIndex:
    """Validate the training examples and make an index (every example must score the same
    models with finite qualities in [0, 1] and finite costs >= 0)."""
    items = [e if isinstance(e, KNNExample) else KNNExample.model_validate(e) for e in examples]
    if not items:
        raise ValueError("a kNN index needs training examples; fix: give at least one")
    models = sorted(items[0].quality)
    if not models:
        raise ValueError("example 0 scores no model; fix: give each model's quality and cost")
    for i, e in enumerate(items):
        if sorted(e.quality) != models or sorted(e.cost_usd) != models:
            raise ValueError(
                f"example {i} scores models {sorted(e.quality)} (costs {sorted(e.cost_usd)}), "
                f"not {models}; fix: give every example the same models"
            )
        bad_q = {m: v for m, v in e.quality.items() if not (math.isfinite(v) and 0 <= v <= 1)}
        bad_c = {m: v for m, v in e.cost_usd.items() if not (math.isfinite(v) and v >= 0)}
        if bad_q or bad_c:
            raise ValueError(
                f"example {i} has invalid values (quality must be finite in [0, 1], cost finite "
                f"and >= 0): quality {bad_q}, cost {bad_c}; fix: correct or drop that example"
            )
    return KNNIndex(models=models, examples=items, parent=parent)


_lexical: dict[str, LexicalIndex] = {}


def _lexical_for(version: str, index: KNNIndex) -> LexicalIndex:
    # A pure function of the index version, so caching cannot change a decision.
    found = _lexical.get(version)
    if found is None:
        if len(_lexical) > 16:
            _lexical.clear()
        found = _lexical[version] = LexicalIndex([e.query for e in index.examples])
    return found


class KNNConfig(BaseModel):
    model_config = _FROZEN
    k: int = Field(default=5, ge=1)
    lam: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    """λ: the weight of expected quality against expected cost (USD)."""
    extractor: ExtractorName = "option"
    max_tokens: int = Field(default=512, gt=0)


class KNNQuery(BaseModel):
    question: str = Field(min_length=1)
    index: str
    """The KNNIndex version (artifact key)."""


def knn_estimate(
    index: KNNIndex, lexical: LexicalIndex, question: str, k: int
) -> tuple[list[tuple[int, float]], dict[str, float], dict[str, float]]:
    """The neighbours and each model's expected quality and cost."""
    near = lexical.nearest(question, min(k, len(index.examples)))
    total = sum(s for _, s in near)
    weights = [s / total for _, s in near] if total > 0 else [1 / len(near)] * len(near)
    quality = {
        m: sum(w * index.examples[i].quality[m] for w, (i, _) in zip(weights, near, strict=True))
        for m in index.models
    }
    cost = {
        m: sum(w * index.examples[i].cost_usd[m] for w, (i, _) in zip(weights, near, strict=True))
        for m in index.models
    }
    return near, quality, cost


@agent(name="knn-router", version="1", config=KNNConfig)
async def knn_router(q: KNNQuery, ctx: Context) -> Routed:
    """Choose by λ·expected quality - expected cost over the k nearest training queries."""
    cfg: KNNConfig = ctx.config
    index = ctx.load(q.index, KNNIndex)
    near, quality, cost = knn_estimate(index, _lexical_for(q.index, index), q.question, cfg.k)
    utility = {m: cfg.lam * quality[m] - cost[m] for m in index.models}
    model = min(index.models, key=lambda m: (-utility[m], m))
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(model, q.question)).text)
    ctx.decide(
        candidates=index.models,
        chosen=model,
        scores={m: round(u, 12) for m, u in utility.items()},
        reason=(
            f"{model} has the best λ·quality - cost ({utility[model]:.4f}; expected quality "
            f"{quality[model]:.3f}, cost ${cost[model]:.6f}) over {len(near)} neighbours"
        ),
        parameters={"k": cfg.k, "lam": cfg.lam, "extractor": cfg.extractor},
        state_version=q.index,
        evidence={
            "neighbours": [{"example": i, "similarity": round(s, 6)} for i, s in near],
            "expected_quality": quality,
            "expected_cost_usd": cost,
            "answer": answer,
        },
    )
    return Routed(
        answer=answer, chosen=[model], models_invoked=caller.invoked, cost_usd=caller.cost
    )


# -- cascade -------------------------------------------------------------------------------


class CascadeConfig(BaseModel):
    model_config = _FROZEN
    weak: str = Field(min_length=1)
    strong: str = Field(min_length=1)
    n_samples: int = Field(default=3, ge=2)
    threshold: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    """Accept the weak answer when this share of samples agree with it."""
    temperature: float = Field(default=0.7, gt=0, allow_inf_nan=False)
    extractor: ExtractorName = "option"
    max_tokens: int = Field(default=512, gt=0)

    @model_validator(mode="after")
    def _two(self) -> CascadeConfig:
        if self.weak == self.strong:
            raise ValueError(f"weak and strong are both {self.weak!r}; fix: name two models")
        return self


@agent(name="cascade", version="1", config=CascadeConfig)
async def cascade(q: Query, ctx: Context) -> Routed:
    """Self-consistency of the weak model decides whether the strong one is needed."""
    cfg: CascadeConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    samples = [
        extract(
            (await caller.ask(cfg.weak, q.question, temperature=cfg.temperature, sample=i)).text
        )
        for i in range(cfg.n_samples)
    ]
    majority, counts = vote(samples)
    agreement = (counts.get(majority, 0) / cfg.n_samples) if majority is not None else 0.0
    accepted = agreement >= cfg.threshold
    if accepted:
        answer, chosen = majority, cfg.weak
        reason = f"{cfg.weak} agrees with itself {agreement:.2f} >= {cfg.threshold}: accepted"
    else:
        answer = extract((await caller.ask(cfg.strong, q.question)).text)
        chosen = cfg.strong
        reason = (
            f"{cfg.weak} agrees with itself {agreement:.2f} < {cfg.threshold}: "
            f"escalated to {cfg.strong}"
        )
    ctx.decide(
        candidates=[cfg.weak, cfg.strong],
        chosen=chosen,
        scores={"agreement": agreement},
        reason=reason,
        parameters=cfg.model_dump(exclude={"max_tokens"}),
        evidence={
            "samples": samples,
            "accepted": accepted,
            "answer": answer,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=answer, chosen=[chosen], models_invoked=caller.invoked, cost_usd=caller.cost
    )


# -- oracle ----------------------------------------------------------------------------------


@agent(name="oracle", version="1", config=ModelsConfig)
async def oracle(q: Query, ctx: Context) -> Routed:
    """The cheapest correct model (evaluation only: it reads the gold label)."""
    cfg: ModelsConfig = ctx.config
    if q.gold is None:
        raise ValueError(
            "the oracle needs the gold label to know which models are right; fix: pass "
            "gold=... (the oracle is for evaluation, not for serving)"
        )
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    answers = [extract((await caller.ask(m, q.question)).text) for m in cfg.models]
    gold = extract(q.gold) or q.gold
    by_cost = sorted(range(len(cfg.models)), key=lambda i: (caller.costs[i], cfg.models[i]))
    right = [i for i in by_cost if answers[i] == gold]
    pick = right[0] if right else by_cost[0]
    model = cfg.models[pick]
    reason = (
        f"{model} is the cheapest correct model (${caller.costs[pick]:.6f})"
        if right
        else f"no model is correct; the cheapest, {model}, stands in"
    )
    ctx.decide(
        candidates=cfg.models,
        chosen=model,
        scores={m: round(c, 12) for m, c in zip(cfg.models, caller.costs, strict=True)},
        reason=reason,
        parameters={"models": cfg.models, "extractor": cfg.extractor},
        evidence={
            "answers": dict(zip(cfg.models, answers, strict=True)),
            "correct": [cfg.models[i] for i in right],
            "gold": gold,
            "costs_of_all_calls": caller.costs,
        },
    )
    return Routed(
        answer=answers[pick],
        chosen=[model],
        models_invoked=caller.invoked,
        cost_usd=caller.costs[pick],
    )


register_state_format(
    "orch.knn-index/1",
    KNNIndex,
    lambda s: f"kNN index, {len(s.examples)} training queries over models {', '.join(s.models)}",
)
