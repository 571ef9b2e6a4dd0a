"""The trained routers the router evaluations tune, and the hyper-parameters they try.

``reproductions/eval_routerbench.py`` (cost-aware, N models) and
``reproductions/eval_two_model.py`` (RouteLLM's two-model setting) both fit RouteLLM's three
trained routers (:mod:`routers`' classifier, MF and SW), and the classifier once more on
richer features, and keep, per router, the configuration that does best without test data.
This module holds that shared table, so the two evaluations try the same grid:

* :data:`TRAINED`: per router name, a :class:`Trained` (its agent, its training function,
  the configurations tried, in the order tried: ties go to the first; and, for a router with
  features of its own, how to fit them);
* :func:`text_features`: those features, fitted on a router's training texts: the shared
  sentence vectors, standardised text statistics (:class:`routers.TextStatsEmbedder`), and
  TF-IDF over words (1-2 grams) and characters within words (2-5 grams), from a prototype
  study of which features carry the signal: the length and numbers of a query say something
  about which model gets it right that a mean of token vectors averages away (most on
  RouteLLM's GSM8K pair; figures in ``reproductions/docs/routerbench.md``);
* :func:`described`: a configuration's tuned hyper-parameters as they appear in labels and
  tables (``C=0.3``, ``l2=1e-05``, ``gamma=10``).

An evaluation that needs another grid should say so with a table of its own, not change
this one: the other evaluation's published figures were measured on it. This module never
fits anything but :func:`text_features`, and never reads data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from routers import (
    ClassifierTraining,
    CombinedEmbedder,
    Embedder,
    MFTraining,
    SWTraining,
    TextStatsEmbedder,
    TfidfEmbedder,
    classifier_router,
    mf_router,
    sw_router,
    train_classifier_router,
    train_mf_router,
    train_sw_router,
)

__all__ = ["TRAINED", "Trained", "described", "text_features"]

MAX_TERMS = 50_000
"""Most frequent TF-IDF terms kept per analyzer (bounds a state's size on long prompts)."""


def text_features(texts: Sequence[str], sentence: Embedder | None) -> CombinedEmbedder:
    """The classifier+text router's embedder fitted on ``texts``: ``sentence`` (the
    evaluation's sentence vectors; None leaves them out), text statistics, word and character
    TF-IDF, each weighted 1. Terms in at least two texts when there are 40 or more."""
    min_df = 2 if len(texts) >= 40 else 1
    parts: list[tuple[Any, float]] = [] if sentence is None else [(sentence, 1.0)]
    parts += [
        (TextStatsEmbedder.fit(texts), 1.0),
        (
            TfidfEmbedder.fit(
                texts, analyzer="word", ngram_range=(1, 2), min_df=min_df, max_features=MAX_TERMS
            ),
            1.0,
        ),
        (
            TfidfEmbedder.fit(
                texts, analyzer="char_wb", ngram_range=(2, 5), min_df=min_df, max_features=MAX_TERMS
            ),
            1.0,
        ),
    ]
    return CombinedEmbedder(parts)


@dataclass(frozen=True)
class Trained:
    """A trained router as the evaluations tune it."""

    agent: Any
    """The routing agent that serves its state."""
    train: Callable[..., Any]
    """``train(examples, embedder, config=...)`` -> state."""
    grid: list[Any]
    """The training configurations tried, in order (ties go to the first)."""
    features: Callable[[Sequence[str], Embedder | None], Embedder] | None = None
    """None: the evaluation's shared embedder. Else the router's own, fitted on its training
    texts each time it is trained (given the shared sentence embedder, or None without it)."""


TRAINED: dict[str, Trained] = {
    "classifier": Trained(
        classifier_router,
        train_classifier_router,
        [ClassifierTraining(c=c) for c in (0.3, 1.0, 3.0)],
    ),
    "classifier+text": Trained(
        classifier_router,
        train_classifier_router,
        [ClassifierTraining(c=c) for c in (0.03, 0.1, 0.3, 1.0, 3.0)],
        text_features,
    ),
    "MF": Trained(mf_router, train_mf_router, [MFTraining(l2=l2) for l2 in (1e-5, 1e-3)]),
    "SW": Trained(
        sw_router, train_sw_router, [SWTraining(gamma=g) for g in (1.0, 3.0, 10.0, 30.0)]
    ),
}
"""Per router name: agent, training function, configurations and (for classifier+text) its
own features."""

_TUNED = {"c": "C", "l2": "l2", "gamma": "gamma"}
"""The hyper-parameters :data:`TRAINED` varies (field -> name shown); the others keep their
defaults, so labels leave them out."""


def described(config: BaseModel) -> str:
    """``config``'s tuned hyper-parameters, e.g. ``C=0.3`` (the fields of :data:`_TUNED`)."""
    return ", ".join(f"{_TUNED[k]}={v:g}" for k, v in config.model_dump().items() if k in _TUNED)
