"""Baselines a serious routing evaluation needs, as agents with recorded decisions.

A router is only worth its cost if it beats these (RouterBench, RouteLLM; ORCH's own
baselines; docs/routers.md shows how to wire each):

* :data:`single` (``single-model``): one model, always;
* :data:`random_router` (``random-router``): a model drawn uniformly with the step's seeded
  RNG, so a run is reproducible from its seed;
* :data:`majority_vote` (``majority-vote``): every model answers, one after the other in
  config order; the most frequent answer wins, ties to the answer of the model listed first;
* :data:`knn_router` (``knn-router``): the k training queries nearest the query (cosine of
  their embeddings, :mod:`routers._neighbours`) give each model an expected quality and cost
  (similarity-weighted means); the model with the best λ·quality - cost answers. The
  training data and the embedder's spec are versioned router state (:class:`KNNIndex`,
  format ``orch.knn-index/2``) read by its version key. An ``orch.knn-index/1`` state (from
  before the embedding seam, no embedder recorded) still loads and routes, with the default
  TF-IDF embedder fitted on its queries (:func:`knn_embedder`), so old stores keep working;
  their runs recorded by ``knn-router`` version 2 do not replay under version 3, whose
  neighbours come from another similarity;
* :data:`cascade`: a weak model is sampled n times; when the share of samples agreeing with
  their majority reaches the threshold its answer is accepted, else the strong model answers;
* :data:`oracle`: for evaluation only; every model answers and the cheapest correct one is
  chosen (the cheapest model when none is correct). It needs the gold label.

All but the kNN router take a :class:`Query` (the kNN router a :class:`KNNQuery`) and all
return a :class:`Routed`. Each records exactly one Decision with its evidence. Answers are
compared by their canonical form (:mod:`routers._extract`, config field ``extractor``).

*Our choices* (the sources leave them open):

* an answer no extractor can read casts no vote and never counts as agreeing;
* kNN: similarity-weighted means over the k nearest queries, a negative cosine (possible
  with sentence embeddings) weighing 0; when no neighbour has a positive similarity the plain
  mean over the k neighbours (ties in similarity go to the earlier training query, so with
  no similarity at all these are the first k); k above the number of training queries uses
  them all; utility ties go to the model name first in sort order. The default embedder is
  a TF-IDF over words fitted on the index's queries (sublinear tf, smoothed idf: the
  weighting of the lexical index it replaces, without its stemming and stop words);
* cascade: the strong model is asked once at its default temperature; an accepted answer is
  the weak samples' majority (ties to the earliest sample);
* oracle: "cheapest" is the cost of each model's call on this query at the registry's prices,
  ties to the model listed first; the gold label is read with the same extractor (a label it
  cannot read is compared as given); the output's cost is the chosen model's call only (what
  an oracle router would have spent), while the evidence lists every call's cost;
* the random draw is ``ctx.rng.random()`` mapped to ``floor(draw · n)`` over config order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agents.models import ChatMessage, ChatRequest, ChatResponse, ModelHub
from orch import Context, agent
from routers._acar import majority
from routers._embed import Embedder, EmbedderSpec, TfidfEmbedder, embedder_from_spec
from routers._extract import extractor
from routers._neighbours import NearestIndex, top_k
from routers._served import checked_state, cosines, serving_embedder
from routers._state import register_state_format
from traces import hash_value

__all__ = [
    "KNN_FORMAT",
    "KNN_FORMAT_V1",
    "AgreementCascadeConfig",
    "CascadeConfig",
    "KNNConfig",
    "KNNEstimator",
    "KNNExample",
    "KNNIndex",
    "KNNQuery",
    "MajorityConfig",
    "ModelsConfig",
    "Query",
    "Routed",
    "SingleConfig",
    "agreement_cascade",
    "build_knn_index",
    "cascade",
    "knn_embedder",
    "knn_estimate",
    "knn_router",
    "majority_vote",
    "oracle",
    "random_router",
    "single",
    "validated_examples",
    "vote",
]

KNN_FORMAT: Final = "orch.knn-index/2"
KNN_FORMAT_V1: Final = "orch.knn-index/1"
"""The format of kNN indexes made before the embedding seam (no embedder recorded)."""
_FROZEN = ConfigDict(frozen=True, extra="forbid")


# -- shared input and output -------------------------------------------------------------------


class Query(BaseModel):
    question: str
    gold: str | None = None
    """The gold answer (read by the oracle only; the other baselines ignore it)."""


class Routed(BaseModel):
    answer: str | None
    """The final canonical answer (None when no answer could be read)."""
    models_invoked: list[str]
    """Every model call, in call order."""
    chosen: list[str]
    """The model(s) whose answer was taken."""
    cost_usd: float
    """USD of the calls (the oracle: of the chosen model's call only)."""


# -- config validation -------------------------------------------------------------------------


def _check_extractor(name: str) -> str:
    extractor(name)  # an unknown name fails here, naming the known ones and the fix
    return name


def _check_model_name(name: str) -> str:
    if not name.strip():
        raise ValueError("a model name is empty; fix: give a model name from the registry")
    return name


def _check_max_tokens(v: int) -> int:
    if v <= 0:
        raise ValueError(f"max_tokens is {v}; fix: use a positive token limit")
    return v


ExtractorName = Annotated[str, AfterValidator(_check_extractor)]
ModelName = Annotated[str, AfterValidator(_check_model_name)]
MaxTokens = Annotated[int, AfterValidator(_check_max_tokens)]


def _check_models(models: list[str], least: int, who: str) -> list[str]:
    if len(models) < least:
        raise ValueError(
            f"{who} needs at least {least} model{'s' if least > 1 else ''}, got {len(models)}; "
            f"fix: list {least} or more distinct model names from the registry"
        )
    dupes = sorted({m for m in models if models.count(m) > 1})
    if dupes:
        raise ValueError(f"models lists {dupes} more than once; fix: list each model once")
    return models


class SingleConfig(BaseModel):
    model_config = _FROZEN
    model: ModelName
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512


class ModelsConfig(BaseModel):
    """Config of the random router and the oracle: one or more distinct models."""

    model_config = _FROZEN
    models: list[ModelName]
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return _check_models(v, 1, "this router")


class MajorityConfig(ModelsConfig):
    """Config of the majority vote: two or more distinct models, in tie-break order."""

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return _check_models(v, 2, "a majority vote")


class KNNConfig(BaseModel):
    model_config = _FROZEN
    k: int = 5
    """How many nearest training queries to average over."""
    lam: float = 1.0
    """λ: the weight of expected quality (0..1) against expected cost (USD)."""
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512

    @field_validator("k")
    @classmethod
    def _k(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"k is {v}; fix: use k >= 1 (the number of neighbours)")
        return v

    @field_validator("lam")
    @classmethod
    def _lam(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"lam (λ) is {v!r}; fix: use a finite λ >= 0")
        return v


class CascadeConfig(BaseModel):
    model_config = _FROZEN
    weak: ModelName
    strong: ModelName
    n_samples: int = 3
    """How many times the weak model is sampled (request ``sample=0..n-1``)."""
    threshold: float = 1.0
    """Accept the weak answer when at least this share of samples agree with it."""
    temperature: float = 0.7
    """Sampling temperature of the weak model (above 0, so samples can differ)."""
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512

    @field_validator("n_samples")
    @classmethod
    def _n(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"n_samples is {v}; fix: use n_samples >= 2 to measure agreement")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not (math.isfinite(v) and 0 < v <= 1):
            raise ValueError(
                f"threshold is {v!r}; fix: use a share in (0, 1] (1 = every sample agrees)"
            )
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(
                f"temperature is {v!r}; fix: use a finite temperature > 0 so samples can differ"
            )
        return v

    @model_validator(mode="after")
    def _two(self) -> CascadeConfig:
        if self.weak == self.strong:
            raise ValueError(
                f"weak and strong are both {self.weak!r}; fix: name two different models"
            )
        return self


class AgreementCascadeConfig(BaseModel):
    model_config = _FROZEN
    probes: list[ModelName]
    """Cheap models asked first (config order); the first of them is the one trusted."""
    strong: ModelName
    """Asked only when the probes disagree (or give no readable answer)."""
    extractor: ExtractorName = "option"
    max_tokens: MaxTokens = 512

    @field_validator("probes")
    @classmethod
    def _probes(cls, v: list[str]) -> list[str]:
        return _check_models(v, 2, "agreement-cascade probes")

    @model_validator(mode="after")
    def _distinct(self) -> AgreementCascadeConfig:
        if self.strong in self.probes:
            raise ValueError(
                f"strong model {self.strong!r} is also a probe; fix: escalate to a model "
                "that is not among the probes"
            )
        return self


# -- calling models ------------------------------------------------------------------------------


class _Caller:
    """Calls models through the hub (each call a recorded effect), keeping the models invoked
    and the cost of each call at the registry's prices."""

    def __init__(self, ctx: Context, max_tokens: int) -> None:
        self.ctx = ctx
        self.hub: ModelHub = ctx.service("models")
        self.max_tokens = max_tokens
        self.invoked: list[str] = []
        self.costs: list[float] = []

    def _chat(
        self, model: str, question: str, temperature: float | None, sample: int
    ) -> Awaitable[ChatResponse]:
        request = ChatRequest(
            model=model,
            messages=[ChatMessage(role="user", content=question)],
            temperature=temperature,
            sample=sample,
            max_tokens=self.max_tokens,
        )
        return self.hub.chat(self.ctx, request)

    def _account(self, model: str, response: ChatResponse) -> None:
        self.invoked.append(model)
        self.costs.append(self.hub.registry.model(model).cost(response.usage))

    async def ask(
        self, model: str, question: str, *, temperature: float | None = None, sample: int = 0
    ) -> ChatResponse:
        response = await self._chat(model, question, temperature, sample)
        self._account(model, response)
        return response

    async def ask_all(
        self,
        calls: Sequence[tuple[str, int]],
        question: str,
        *,
        temperature: float | None = None,
    ) -> list[ChatResponse]:
        """Ask each ``(model, sample)`` at once (``Context.gather``); the responses, models
        invoked and costs are in the order given, whichever answered first."""
        responses = await self.ctx.gather(
            *(self._chat(m, question, temperature, sample) for m, sample in calls)
        )
        for (model, _), response in zip(calls, responses, strict=True):
            self._account(model, response)
        return responses

    @property
    def cost(self) -> float:
        return math.fsum(self.costs)


def vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    """The most frequent readable answer and the vote counts (sorted by answer); ties go to
    the answer given first, unreadable answers (None) cast no vote."""
    counts = Counter(a for a in answers if a is not None)
    return majority(list(answers)), dict(sorted(counts.items()))


# -- single, random, majority ---------------------------------------------------------------------


@agent(name="single-model", version="2", config=SingleConfig)
async def single(q: Query, ctx: Context) -> Routed:
    """Always the configured model: one call."""
    cfg: SingleConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    response = await caller.ask(cfg.model, q.question)
    answer = extractor(cfg.extractor)(response.text)
    ctx.decide(
        candidates=[cfg.model],
        chosen=cfg.model,
        scores={cfg.model: 1.0},
        reason=f"single-model baseline: always {cfg.model}",
        parameters=cfg.model_dump(),
        evidence={"answer": answer, "cost_usd": caller.cost},
    )
    return Routed(
        answer=answer, models_invoked=caller.invoked, chosen=[cfg.model], cost_usd=caller.cost
    )


@agent(name="random-router", version="2", config=ModelsConfig)
async def random_router(q: Query, ctx: Context) -> Routed:
    """A model drawn uniformly with the step's seeded RNG; one call."""
    cfg: ModelsConfig = ctx.config
    n = len(cfg.models)
    draw = ctx.rng.random()
    index = min(int(draw * n), n - 1)
    model = cfg.models[index]
    p = 1.0 / n
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(model, q.question)).text)
    ctx.decide(
        candidates=cfg.models,
        chosen=model,
        scores=dict.fromkeys(cfg.models, p),
        reason=f"uniform draw {draw:.6f} -> index {index} of {n}: {model} (p={p:.4f} each)",
        parameters=cfg.model_dump(),
        evidence={
            "draw": draw,
            "index": index,
            "probabilities": dict.fromkeys(cfg.models, p),
            "answer": answer,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=answer, models_invoked=caller.invoked, chosen=[model], cost_usd=caller.cost
    )


@agent(name="majority-vote", version="2", config=MajorityConfig)
async def majority_vote(q: Query, ctx: Context) -> Routed:
    """Every model answers (at once, recorded in config order); the majority wins, ties to
    the answer of the model listed first."""
    cfg: MajorityConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    responses = await caller.ask_all([(m, 0) for m in cfg.models], q.question)
    answers = [extract(r.text) for r in responses]
    winner, counts = vote(answers)
    top = max(counts.values(), default=0)
    tied = sorted(a for a, c in counts.items() if c == top)
    backers = [m for m, a in zip(cfg.models, answers, strict=True) if a is not None and a == winner]
    if winner is None:
        reason = "no model gave a readable answer"
    else:
        reason = f"{winner!r} has {top} of {len(cfg.models)} votes ({', '.join(backers)})"
        if len(tied) > 1:
            reason += f"; tie among {tied} broken by model order ({backers[0]} is listed first)"
    ctx.decide(
        candidates=cfg.models,
        chosen=backers,
        scores={
            m: float(counts.get(a, 0)) if a is not None else 0.0
            for m, a in zip(cfg.models, answers, strict=True)
        },
        reason=reason,
        parameters=cfg.model_dump(),
        evidence={
            "answers": dict(zip(cfg.models, answers, strict=True)),
            "votes": counts,
            "tied": tied if len(tied) > 1 else [],
            "answer": winner,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=winner, models_invoked=caller.invoked, chosen=backers, cost_usd=caller.cost
    )


# -- kNN -----------------------------------------------------------------------------------------


def _sorted_finite(
    values: dict[str, float], what: str, low: float, high: float
) -> dict[str, float]:
    bad = {m: v for m, v in values.items() if not (math.isfinite(v) and low <= v <= high)}
    if bad:
        span = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise ValueError(
            f"{what} {bad} must be finite and {span}; fix: correct or drop those values"
        )
    return dict(sorted(values.items()))


class KNNExample(BaseModel):
    """A training query with each model's quality (0..1) and cost (USD) on it."""

    model_config = _FROZEN
    query: str = Field(min_length=1)
    quality: dict[str, float]
    cost_usd: dict[str, float]

    @field_validator("quality")
    @classmethod
    def _quality(cls, v: dict[str, float]) -> dict[str, float]:
        return _sorted_finite(v, "quality", 0.0, 1.0)

    @field_validator("cost_usd")
    @classmethod
    def _cost(cls, v: dict[str, float]) -> dict[str, float]:
        return _sorted_finite(v, "cost_usd", 0.0, math.inf)

    @model_validator(mode="after")
    def _same_models(self) -> KNNExample:
        if not self.quality:
            raise ValueError("no model is scored; fix: give each model's quality and cost")
        if list(self.quality) != list(self.cost_usd):
            raise ValueError(
                f"quality scores models {list(self.quality)} but cost_usd {list(self.cost_usd)}; "
                "fix: give a quality and a cost for the same models"
            )
        return self


def _index_models(examples: Sequence[KNNExample]) -> list[str]:
    """The models every example scores; a ValueError naming the first example that differs."""
    if not examples:
        raise ValueError("a kNN index needs training examples, got none; fix: give at least one")
    models = list(examples[0].quality)
    for i, e in enumerate(examples):
        if list(e.quality) != models:
            raise ValueError(
                f"example {i} scores models {list(e.quality)}, example 0 scores {models}; "
                "fix: give every example the same models"
            )
    return models


class KNNIndex(BaseModel):
    """The kNN router's state: training examples and the embedder that compares queries,
    versioned like all router state."""

    model_config = _FROZEN
    format: Literal["orch.knn-index/2", "orch.knn-index/1"] = KNN_FORMAT
    models: list[str]
    """The models every example scores, sorted."""
    examples: list[KNNExample]
    embedder: EmbedderSpec | None = Field(default=None, exclude_if=lambda v: v is None)
    """The embedder's spec (``orch.knn-index/2``); None in an ``orch.knn-index/1`` state,
    which is then served with :func:`knn_embedder` of its queries. Left out of the encoding
    when None, so a ``/1`` state keeps the bytes, and the version, it was saved with."""
    parent: str | None = None
    """The version this one was derived from (None for an index built from scratch)."""

    @model_validator(mode="after")
    def _consistent(self) -> KNNIndex:
        models = _index_models(self.examples)
        if self.models != models:
            raise ValueError(
                f"models is {self.models} but the examples score {models}; fix: build the "
                "index with build_knn_index()"
            )
        if (self.format == KNN_FORMAT) != (self.embedder is not None):
            raise ValueError(
                f"a {self.format} index {'needs' if self.format == KNN_FORMAT else 'has no'} "
                "embedder; fix: build the index with build_knn_index()"
            )
        return self

    @property
    def version(self) -> str:
        """This index's key: what a decision records as the state version it read."""
        return hash_value(self)


def validated_examples(
    examples: Sequence[KNNExample | Mapping[str, Any]],
) -> tuple[list[KNNExample], list[str]]:
    """Training examples validated, and the models they score. Every example must score the
    same models with a finite quality in [0, 1] and a finite cost >= 0; a ValueError names
    the first example that does not, and the fix."""
    items: list[KNNExample] = []
    for i, e in enumerate(examples):
        if isinstance(e, KNNExample):
            items.append(e)
            continue
        try:
            items.append(KNNExample.model_validate(e))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'example'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(
                f"example {i} is invalid ({problems}); fix: correct or drop example {i}"
            ) from None
    return items, _index_models(items)


def knn_embedder(queries: Sequence[str]) -> TfidfEmbedder:
    """The kNN router's default embedder: TF-IDF over words, fitted on ``queries`` (the same
    queries in any order give the same embedder)."""
    return TfidfEmbedder.fit(list(queries), analyzer="word", ngram_range=(1, 1), min_df=1)


def build_knn_index(
    examples: Sequence[KNNExample | Mapping[str, Any]],
    parent: str | None = None,
    *,
    embedder: Embedder | None = None,
) -> KNNIndex:
    """Validate training examples (:func:`validated_examples`) and make an index; the
    embedder defaults to :func:`knn_embedder` of the examples' queries."""
    items, models = validated_examples(examples)
    emb = embedder or knn_embedder([e.query for e in items])
    return KNNIndex(models=models, examples=items, embedder=emb.spec, parent=parent)


def _index_spec(index: KNNIndex) -> Any:
    return index.embedder or knn_embedder([e.query for e in index.examples]).spec


class KNNEstimator:
    """An index's queries embedded once, with its quality and cost tables as arrays."""

    def __init__(self, index: KNNIndex, embedder: Embedder | None = None) -> None:
        emb = embedder or embedder_from_spec(_index_spec(index))
        self.models = index.models
        self.nearest = NearestIndex(emb, [e.query for e in index.examples])
        self.quality = np.array([[e.quality[m] for m in self.models] for e in index.examples])
        self.cost = np.array([[e.cost_usd[m] for m in self.models] for e in index.examples])

    def estimate(
        self, question: str, k: int
    ) -> tuple[list[tuple[int, float]], dict[str, float], dict[str, float]]:
        """The k nearest training queries as (example index, cosine), best first, and each
        model's expected quality and cost: similarity-weighted means over them (negative
        similarities weigh 0; plain means when no similarity is positive)."""
        features = self.nearest.embedder.embed([question])
        near, quality, cost = self.from_similarities(cosines(features, self.nearest.matrix)[0], k)
        return (
            near,
            dict(zip(self.models, quality.tolist(), strict=True)),
            dict(zip(self.models, cost.tolist(), strict=True)),
        )

    def from_similarities(
        self, similarities: NDArray[np.float64], k: int
    ) -> tuple[list[tuple[int, float]], NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`estimate` from one query's similarities to every training query (arrays
        in model order)."""
        near = top_k(similarities, k)
        idx = np.array([i for i, _ in near])
        weights = np.maximum(np.array([s for _, s in near]), 0.0)
        total = weights.sum()
        weights = weights / total if total > 0 else np.full(len(near), 1.0 / len(near))
        return near, weights @ self.quality[idx], weights @ self.cost[idx]

    def estimates(
        self, questions: Sequence[str], k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Expected quality and cost of each question (rows) for each model (columns)."""
        sims = cosines(self.nearest.embedder.embed(list(questions)), self.nearest.matrix)
        rows = [self.from_similarities(row, k)[1:] for row in sims]
        return np.array([q for q, _ in rows]), np.array([c for _, c in rows])


def knn_estimate(
    index: KNNIndex, question: str, k: int
) -> tuple[list[tuple[int, float]], dict[str, float], dict[str, float]]:
    """:meth:`KNNEstimator.estimate` with the index's own embedder (embeds the index's
    queries each call: for one-off use; serving keeps a :class:`KNNEstimator`)."""
    return KNNEstimator(index).estimate(question, k)


_ESTIMATORS: dict[str, KNNEstimator] = {}
_ESTIMATORS_MAX = 16


def _estimator_for(version: str, index: KNNIndex) -> KNNEstimator:
    # A pure function of the version (a content hash), so the cache cannot change a decision.
    found = _ESTIMATORS.get(version)
    if found is None:
        if len(_ESTIMATORS) >= _ESTIMATORS_MAX:
            _ESTIMATORS.pop(next(iter(_ESTIMATORS)))
        found = _ESTIMATORS[version] = KNNEstimator(index, serving_embedder(_index_spec(index)))
    return found


class KNNQuery(BaseModel):
    question: str
    index: str
    """The :class:`KNNIndex` version (its artifact key, from ``save_state``)."""


@agent(name="knn-router", version="3", config=KNNConfig)
async def knn_router(q: KNNQuery, ctx: Context) -> Routed:
    """The model with the best λ·expected quality - expected cost over the k nearest
    training queries answers; one call."""
    cfg: KNNConfig = ctx.config
    index = checked_state(ctx, q.index, KNNIndex)
    near, quality, cost = _estimator_for(q.index, index).estimate(q.question, cfg.k)
    utility = {m: cfg.lam * quality[m] - cost[m] for m in index.models}
    model = min(index.models, key=lambda m: (-utility[m], m))
    caller = _Caller(ctx, cfg.max_tokens)
    answer = extractor(cfg.extractor)((await caller.ask(model, q.question)).text)
    plain = not any(s > 0 for _, s in near)
    ctx.decide(
        candidates=index.models,
        chosen=model,
        scores=utility,
        reason=(
            f"{model} has the best λ·quality - cost = {cfg.lam:g}·{quality[model]:.4f} - "
            f"{cost[model]:.6f} = {utility[model]:.6f} over {len(near)} neighbours"
            + (" (no similar training query: plain means)" if plain else "")
        ),
        parameters=cfg.model_dump(),
        state_version=q.index,
        evidence={
            "neighbours": {"index": [i for i, _ in near], "similarity": [s for _, s in near]},
            "weighting": "plain mean" if plain else "similarity-weighted mean",
            "expected_quality": quality,
            "expected_cost_usd": cost,
            "answer": answer,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=answer, models_invoked=caller.invoked, chosen=[model], cost_usd=caller.cost
    )


# -- cascade -------------------------------------------------------------------------------------


@agent(name="cascade", version="2", config=CascadeConfig)
async def cascade(q: Query, ctx: Context) -> Routed:
    """The weak model's self-consistency decides whether the strong one is needed."""
    cfg: CascadeConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    weak = [(cfg.weak, i) for i in range(cfg.n_samples)]
    responses = await caller.ask_all(weak, q.question, temperature=cfg.temperature)
    samples = [extract(r.text) for r in responses]
    top, counts = vote(samples)
    agreement = counts[top] / cfg.n_samples if top is not None else 0.0
    accepted = agreement >= cfg.threshold
    strong_answer: str | None = None
    if accepted:
        answer, chosen = top, cfg.weak
        reason = (
            f"{cfg.weak} samples agree on {top!r} (agreement {agreement:.3f} >= "
            f"{cfg.threshold}): accepted"
        )
    else:
        strong_answer = extract((await caller.ask(cfg.strong, q.question)).text)
        answer, chosen = strong_answer, cfg.strong
        reason = (
            f"samples of {cfg.weak} agree {agreement:.3f} < {cfg.threshold} (majority {top!r}): "
            f"escalated to {cfg.strong}"
        )
    ctx.decide(
        candidates=[cfg.weak, cfg.strong],
        chosen=chosen,
        scores={"agreement": agreement},
        reason=reason,
        parameters=cfg.model_dump(),
        evidence={
            "samples": samples,
            "votes": counts,
            "majority": top,
            "agreement": agreement,
            "accepted": accepted,
            "strong_answer": strong_answer,
            "answer": answer,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=answer, models_invoked=caller.invoked, chosen=[chosen], cost_usd=caller.cost
    )


@agent(name="agreement-cascade", version="1", config=AgreementCascadeConfig)
async def agreement_cascade(q: Query, ctx: Context) -> Routed:
    """Several cheap models answer once each; when they all give the same readable answer
    it is taken (credited to the first probe), otherwise the strong model answers. The
    multi-model form of the cascade, for data with one recorded sample per model."""
    cfg: AgreementCascadeConfig = ctx.config
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    responses = await caller.ask_all([(m, 0) for m in cfg.probes], q.question)
    answers = [extract(r.text) for r in responses]
    agreed = answers[0] is not None and all(a == answers[0] for a in answers)
    strong_answer: str | None = None
    if agreed:
        answer, chosen = answers[0], cfg.probes[0]
        reason = f"probes {', '.join(cfg.probes)} agree on {answers[0]!r}: accepted"
    else:
        strong_answer = extract((await caller.ask(cfg.strong, q.question)).text)
        answer, chosen = strong_answer, cfg.strong
        reason = (
            "probes disagree ("
            + ", ".join(f"{m}: {a!r}" for m, a in zip(cfg.probes, answers, strict=True))
            + f"): escalated to {cfg.strong}"
        )
    ctx.decide(
        candidates=[*cfg.probes, cfg.strong],
        chosen=chosen,
        scores={"agreed": 1.0 if agreed else 0.0},
        reason=reason,
        parameters=cfg.model_dump(),
        evidence={
            "answers": dict(zip(cfg.probes, answers, strict=True)),
            "agreed": agreed,
            "strong_answer": strong_answer,
            "answer": answer,
            "cost_usd": caller.cost,
        },
    )
    return Routed(
        answer=answer,
        models_invoked=caller.invoked,
        chosen=[chosen],
        cost_usd=caller.cost,
    )


# -- oracle --------------------------------------------------------------------------------------


@agent(name="oracle", version="2", config=ModelsConfig)
async def oracle(q: Query, ctx: Context) -> Routed:
    """The cheapest correct model (evaluation only: it reads the gold label)."""
    cfg: ModelsConfig = ctx.config
    if q.gold is None:
        raise ValueError(
            "oracle needs a gold label to know which models are right, got gold=None; fix: "
            "pass gold=... in the input (the oracle is for evaluation, not for serving)"
        )
    caller = _Caller(ctx, cfg.max_tokens)
    extract = extractor(cfg.extractor)
    responses = await caller.ask_all([(m, 0) for m in cfg.models], q.question)
    answers = [extract(r.text) for r in responses]
    gold = extract(q.gold) or q.gold
    by_cost = sorted(range(len(cfg.models)), key=lambda i: (caller.costs[i], i))
    right = [i for i in by_cost if answers[i] == gold]
    pick = right[0] if right else by_cost[0]
    model = cfg.models[pick]
    if right:
        reason = f"{model} is the cheapest correct model (${caller.costs[pick]:.8f} for this call)"
    else:
        reason = (
            f"no model is correct (gold {gold!r}); the cheapest model, {model} "
            f"(${caller.costs[pick]:.8f}), stands in"
        )
    costs = dict(zip(cfg.models, caller.costs, strict=True))
    ctx.decide(
        candidates=cfg.models,
        chosen=model,
        scores={m: -c for m, c in costs.items()},
        reason=reason,
        parameters=cfg.model_dump(),
        evidence={
            "gold": gold,
            "answers": dict(zip(cfg.models, answers, strict=True)),
            "correct": [cfg.models[i] for i in right],
            "call_costs_usd": costs,
            "total_cost_usd": caller.cost,
            "chosen_cost_usd": caller.costs[pick],
            "answer": answers[pick],
        },
    )
    return Routed(
        answer=answers[pick],
        models_invoked=caller.invoked,
        chosen=[model],
        cost_usd=caller.costs[pick],
    )


def _summary(index: KNNIndex) -> str:
    embedder = index.embedder.kind if index.embedder is not None else "default TF-IDF"
    return (
        f"kNN index, {len(index.examples)} training queries over models "
        f"{', '.join(index.models)}, embedder {embedder}"
    )


register_state_format(KNN_FORMAT, KNNIndex, _summary)
register_state_format(KNN_FORMAT_V1, KNNIndex, _summary)
