"""Intent inference for AMRO-S: a query's distribution over task types, w_t(q).

The paper fine-tunes a 1B model for this. Ours is pluggable (anything with ``infer(text)``
returning task-type weights that sum to 1); the local default votes among the k nearest
labelled examples by cosine similarity of their TF-IDF vectors (scikit-learn, fitted on the
examples: words and word pairs, English stop words dropped), so it needs no model and no
network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from routers._embed import TfidfEmbedder
from routers._neighbours import NearestIndex

__all__ = ["IntentModel", "LabelledExample", "NearestExamples"]


class IntentModel(Protocol):
    """Anything that maps a query to task-type weights (non-negative, summing to 1)."""

    @property
    def task_types(self) -> list[str]: ...

    def infer(self, text: str) -> dict[str, float]: ...


class LabelledExample(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str = Field(min_length=1)
    task: str = Field(min_length=1)


class NearestExamples:
    """w_t(q) = share of similarity among the k nearest examples labelled t.

    *Our choice*: a floor ``smoothing`` spread over all task types keeps every specialist
    table in play (0 by default); with no lexical overlap at all, the weights are uniform,
    which is the honest answer for a query the examples say nothing about.
    """

    def __init__(
        self,
        examples: Sequence[LabelledExample | tuple[str, str]],
        *,
        k: int = 5,
        smoothing: float = 0.0,
    ) -> None:
        items = [
            e if isinstance(e, LabelledExample) else LabelledExample(text=e[0], task=e[1])
            for e in examples
        ]
        if not items:
            raise ValueError("intent inference needs labelled examples; fix: give at least one")
        if k < 1:
            raise ValueError(f"k is {k}; fix: use k >= 1")
        if not (0.0 <= smoothing < 1.0) or math.isnan(smoothing):
            raise ValueError(f"smoothing is {smoothing}; fix: use 0 <= smoothing < 1")
        self.examples = items
        self.k = k
        self.smoothing = smoothing
        self._types = sorted({e.task for e in items})
        texts = [e.text for e in items]
        # Words, not characters: a task type is told by its vocabulary, and shared fragments
        # ("ion", "the") would make every example a little similar to every query.
        words = TfidfEmbedder.fit(texts, ngram_range=(1, 2), stop_words="english")
        self._index = NearestIndex(words, texts)

    @property
    def task_types(self) -> list[str]:
        return list(self._types)

    def infer(self, text: str) -> dict[str, float]:
        votes = dict.fromkeys(self._types, 0.0)
        for i, sim in self._index.nearest(text, self.k):
            votes[self.examples[i].task] += sim
        total = sum(votes.values())
        n = len(self._types)
        if total <= 0:
            return dict.fromkeys(self._types, 1.0 / n)
        s = self.smoothing
        return {t: (1 - s) * v / total + s / n for t, v in votes.items()}

    def describe(self) -> Mapping[str, object]:
        """What a decision records about the intent model (its parameters, not its data)."""
        return {
            "kind": "nearest-examples",
            "embedder": self._index.embedder.fingerprint,
            "k": self.k,
            "smoothing": self.smoothing,
            "examples": len(self.examples),
            "task_types": self._types,
        }
