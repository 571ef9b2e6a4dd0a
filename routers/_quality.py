"""Trained model routers' common ground: training tables, state fields, decisions, thresholds.

RouteLLM-style routers (:mod:`routers._quality_classifier`, :mod:`routers._quality_mf`,
:mod:`routers._quality_sw`) learn, from recorded evaluation data, each model's quality on a
query (q̂ in [0, 1]) and choose a model from it. This module holds what they share:

* :func:`quality_table`: the training examples (the kNN router's :class:`KNNExample` shape:
  query, per-model quality in [0, 1] and cost) validated and sorted into one canonical
  order, so the same data in any order trains the same state; the table's hash is what a
  state records as its training set;
* :class:`QualityState`: the fields every trained state has (models, their mean quality and
  cost on the training set, the embedder spec, the training set's hash);
* the decision rules: with N models, :func:`choose_by_cost` (argmax q̂ - λ·mean cost, ties
  to the model name first in sort order); with two, :func:`choose_by_threshold` (the strong
  model when q̂_strong - q̂_weak reaches the threshold), whose threshold
  :func:`calibrate_threshold` sets to a target share of strong calls (RouteLLM's
  ``calibrate_threshold``, as the deterministic quantile :func:`threshold_for_share`);
* :func:`predict_quality`: q̂ for texts from any registered state (each router module
  registers how to serve its format, :func:`register_predictor`), and :func:`sigmoid`, the
  logistic function their scores go through.

This module must never fit anything, and never read a clock or a global random state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from routers._embed import (
    Embedder,
    EmbedderSpec,
    Features,
    TfidfEmbedder,
    WordLlamaEmbedder,
    embedder_from_spec,
    sentence_embeddings_available,
)
from routers.baselines import KNNExample, validated_examples
from routers.errors import RouterStateError
from traces import canonical_bytes, hash_value

__all__ = [
    "Predictor",
    "QualityState",
    "QualityTable",
    "calibrate_threshold",
    "choose_by_cost",
    "choose_by_threshold",
    "predict_quality",
    "predictor",
    "quality_embedder",
    "quality_table",
    "register_predictor",
    "sigmoid",
    "state_fields",
    "strong_and_weak",
    "threshold_for_share",
    "two_model_scores",
]

NEVER_STRONG = 2.0
"""The threshold of a strong share of 0: above every score (scores lie in [-1, 1])."""
ALWAYS_STRONG = -1.0
"""The threshold of a strong share of 1: every score reaches it."""


@dataclass(frozen=True)
class QualityTable:
    """Training examples as arrays, in canonical order (rows) and model-name order (columns)."""

    texts: list[str]
    models: list[str]
    quality: NDArray[np.float64]
    """(examples, models) recorded quality in [0, 1]."""
    cost: NDArray[np.float64]
    """(examples, models) recorded cost in USD (or any unit the caller chose)."""
    training_set: str
    """Hash of the sorted examples: the same for the same data in any order."""

    @property
    def mean_quality(self) -> list[float]:
        return [math.fsum(col) / len(col) for col in self.quality.T]

    @property
    def mean_cost(self) -> list[float]:
        return [math.fsum(col) / len(col) for col in self.cost.T]


def quality_table(examples: Sequence[KNNExample | Mapping[str, Any]]) -> QualityTable:
    """Validate ``examples`` (every one scoring the same models; a ValueError naming the
    first that does not) and sort them by their canonical bytes."""
    items, models = validated_examples(examples)
    ordered = sorted(items, key=canonical_bytes)
    return QualityTable(
        texts=[e.query for e in ordered],
        models=models,
        quality=np.array([[e.quality[m] for m in models] for e in ordered], dtype=np.float64),
        cost=np.array([[e.cost_usd[m] for m in models] for e in ordered], dtype=np.float64),
        training_set=hash_value(ordered),
    )


def quality_embedder(texts: Sequence[str], *, sentence: bool | None = None) -> Embedder:
    """The trained routers' default embedder: wordllama sentence vectors when ``sentence``
    is True, or None and the ``embed`` extra is installed; else a TF-IDF over words fitted
    on ``texts`` (terms in at least two texts when there are 40 or more)."""
    use_sentence = sentence_embeddings_available() if sentence is None else sentence
    if use_sentence:
        return WordLlamaEmbedder()
    return TfidfEmbedder.fit(
        list(texts), analyzer="word", ngram_range=(1, 1), min_df=2 if len(texts) >= 40 else 1
    )


class QualityState(BaseModel):
    """The fields every trained model router's state has (subclasses add ``format``, their
    training config and their arrays)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    models: list[str] = Field(min_length=1)
    """The models, sorted: the columns of every array."""
    mean_quality: list[float]
    """Each model's mean quality over the training examples."""
    mean_cost_usd: list[float]
    """Each model's mean cost per call over the training examples: the cost λ weighs."""
    embedder: EmbedderSpec
    training_set: str
    """Hash of the sorted training examples (:func:`quality_table`)."""
    examples: int
    parent: str | None = None

    @property
    def version(self) -> str:
        """This state's key: what a decision records as the state version it read."""
        return hash_value(self)


def state_fields(table: QualityTable, embedder: Embedder, parent: str | None) -> dict[str, Any]:
    """The :class:`QualityState` fields of a state trained on ``table``."""
    return {
        "models": table.models,
        "mean_quality": table.mean_quality,
        "mean_cost_usd": table.mean_cost,
        "embedder": embedder.spec,
        "training_set": table.training_set,
        "examples": len(table.texts),
        "parent": parent,
    }


# -- serving ---------------------------------------------------------------------------------


class Predictor(Protocol):
    """A state's arrays, decoded: q̂ (rows: queries, columns: the state's models) from the
    queries' features."""

    def quality(self, features: Features) -> NDArray[np.float64]: ...


_PREDICTORS: dict[str, Callable[[Any, Embedder], Predictor]] = {}


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic function 1 / (1 + e^-z), elementwise."""
    # The tanh form never overflows (e^-z does for z below about -709) and is exact at 0.
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def register_predictor(fmt: str, make: Callable[[Any, Embedder], Predictor]) -> None:
    """Say how a state of format ``fmt`` is served: ``make(state, embedder)``."""
    _PREDICTORS[fmt] = make


def predictor(state: QualityState, embedder: Embedder | None = None) -> Predictor:
    """The predictor of ``state``; ``embedder`` (its spec must be the state's) is used for
    anything the predictor embeds itself (the SW router's training texts)."""
    fmt = getattr(state, "format", None)
    make = _PREDICTORS.get(str(fmt))
    if make is None:
        raise RouterStateError(
            f"no predictor is registered for router state format {fmt!r}; fix: import the "
            "module of that router (routers does) before serving it"
        )
    return make(state, _embedder_for(state, embedder))


def _embedder_for(state: QualityState, embedder: Embedder | None) -> Embedder:
    if embedder is None:
        return embedder_from_spec(state.embedder)
    if embedder.spec != state.embedder:
        raise RouterStateError(
            "the embedder given is not the one this router state was trained with; fix: pass "
            "none (it is rebuilt from the state) or the recorded one"
        )
    return embedder


def predict_quality(
    state: QualityState,
    texts: Sequence[str] | None = None,
    *,
    embedder: Embedder | None = None,
    features: Features | None = None,
) -> NDArray[np.float64]:
    """q̂ of each text (rows) for each of the state's models (columns), in [0, 1]. Give
    ``texts`` (embedded with ``embedder``, default rebuilt from the state) or their
    ``features``."""
    serve = predictor(state, embedder)
    if features is None:
        if texts is None:
            raise ValueError("predict_quality needs texts or features; fix: give one of them")
        features = _embedder_for(state, embedder).embed(list(texts))
    return serve.quality(features)


# -- decisions -------------------------------------------------------------------------------


def choose_by_cost(
    models: Sequence[str], quality: Sequence[float], cost: Sequence[float], lam: float
) -> tuple[str, dict[str, float]]:
    """argmax over ``models`` of q̂ - λ·cost (ties to the model name first in sort order),
    and every model's utility."""
    utility = {m: float(q) - lam * float(c) for m, q, c in zip(models, quality, cost, strict=True)}
    return min(models, key=lambda m: (-utility[m], m)), utility


def strong_and_weak(state: QualityState, strong: str | None = None) -> tuple[str, str]:
    """The (strong, weak) models of a two-model state: ``strong`` as given, else the one with
    the higher mean training quality (ties to the name first in sort order)."""
    if len(state.models) != 2:
        raise ValueError(
            f"a threshold routes between two models, and this state has {len(state.models)} "
            f"({', '.join(state.models)}); fix: train on two models, or route by λ"
        )
    if strong is None:
        best = max(range(2), key=lambda i: (state.mean_quality[i], -i))
        strong = state.models[best]
    if strong not in state.models:
        raise ValueError(
            f"strong model {strong!r} is not one of the state's models {state.models}; fix: "
            "name one of them"
        )
    return strong, next(m for m in state.models if m != strong)


def choose_by_threshold(
    quality: Mapping[str, float], strong: str, weak: str, threshold: float
) -> tuple[str, float]:
    """The strong model when q̂_strong - q̂_weak >= ``threshold``, else the weak one; and
    that gap."""
    gap = float(quality[strong]) - float(quality[weak])
    return (strong if gap >= threshold else weak), gap


def threshold_for_share(scores: Sequence[float] | NDArray[np.float64], share: float) -> float:
    """The threshold that sends ``share`` of ``scores`` to the strong model (score >=
    threshold): RouteLLM's quantile calibration, made exact and deterministic.

    With n scores sorted from high to low and k = round(share · n): k = 0 gives
    :data:`NEVER_STRONG`, k = n :data:`ALWAYS_STRONG`, otherwise the midpoint between the
    k-th and (k+1)-th scores. When those are equal (a tie across the cut), the threshold
    moves to whichever side of the tied scores lands nearer k strong calls (fewer calls on a
    draw)."""
    if not (math.isfinite(share) and 0.0 <= share <= 1.0):
        raise ValueError(f"strong share is {share!r}; fix: use a share in [0, 1]")
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = len(s)
    if n == 0:
        raise ValueError("calibration needs scores; fix: give at least one calibration text")
    k = math.floor(share * n + 0.5)
    if k == 0:
        return NEVER_STRONG
    if k == n:
        return ALWAYS_STRONG
    hi, lo = float(s[k - 1]), float(s[k])
    if hi > lo:
        return (hi + lo) / 2
    above = int(np.count_nonzero(s > hi))  # strong calls when the tied scores stay weak
    with_tied = int(np.count_nonzero(s >= hi))
    if with_tied - k < k - above:
        return hi
    return float(np.nextafter(hi, np.inf))


def two_model_scores(
    state: QualityState,
    texts: Sequence[str] | None = None,
    *,
    strong: str | None = None,
    embedder: Embedder | None = None,
    features: Features | None = None,
) -> NDArray[np.float64]:
    """q̂_strong - q̂_weak of each text (the score a threshold is compared with)."""
    hi, lo = strong_and_weak(state, strong)
    q = predict_quality(state, texts, embedder=embedder, features=features)
    out: NDArray[np.float64] = q[:, state.models.index(hi)] - q[:, state.models.index(lo)]
    return out


def calibrate_threshold(
    state: QualityState,
    texts: Sequence[str],
    strong_share: float,
    *,
    strong: str | None = None,
    embedder: Embedder | None = None,
) -> float:
    """The threshold that sends ``strong_share`` of the calibration ``texts`` to the strong
    model (RouteLLM's ``calibrate_threshold``; :func:`threshold_for_share`)."""
    scores = two_model_scores(state, texts, strong=strong, embedder=embedder)
    return threshold_for_share(scores, strong_share)
