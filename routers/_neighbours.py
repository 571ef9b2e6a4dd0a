"""Exact nearest neighbours by cosine similarity over embedded texts, ties by position.

The kNN baseline and AMRO-S's intent inference find the training texts nearest a query.
:class:`NearestIndex` embeds its texts once (any :class:`~routers._embed.Embedder`), scores a
query against all of them with scikit-learn's ``linear_kernel`` (rows are L2-normalised, so
the dot product is the cosine) and keeps the ``k`` best. The search is exact, not approximate,
because a decision must not depend on an index's build order or on a random projection: ties
go to the earlier text, so the same texts in the same order give the same neighbours on every
machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics.pairwise import linear_kernel

from routers._embed import Embedder, Features

__all__ = ["NearestIndex", "top_k"]


def top_k(similarities: NDArray[np.float64], k: int) -> list[tuple[int, float]]:
    """The ``k`` largest similarities as (position, similarity), best first, ties to the
    smaller position."""
    if k < 1:
        raise ValueError(f"k is {k}; fix: use k >= 1")
    n = len(similarities)
    k = min(k, n)
    if k < n:
        # Everything at or above the k-th largest value, then an exact stable sort of those.
        cut = np.partition(similarities, n - k)[n - k]
        candidates = np.flatnonzero(similarities >= cut)
    else:
        candidates = np.arange(n)
    order = candidates[np.lexsort((candidates, -similarities[candidates]))][:k]
    return [(int(i), float(similarities[i])) for i in order]


class NearestIndex:
    """Texts embedded once; :meth:`nearest` finds the ``k`` most similar to a query."""

    def __init__(self, embedder: Embedder, texts: Sequence[str]) -> None:
        if not texts:
            raise ValueError("a nearest-neighbour index needs texts; fix: give at least one")
        self.embedder = embedder
        self.size = len(texts)
        self.matrix: Features = embedder.embed(list(texts))

    def __len__(self) -> int:
        return self.size

    def similarities(self, queries: Sequence[str]) -> NDArray[np.float64]:
        """Cosine similarity of each query (rows) with every indexed text (columns)."""
        if self.embedder.dim == 0:  # texts with no features at all: nothing is similar
            return np.zeros((len(queries), self.size))
        sims = linear_kernel(self.embedder.embed(list(queries)), self.matrix)
        return np.asarray(sims, dtype=np.float64)

    def nearest(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest texts: (position, cosine), best first, ties to the earlier."""
        return top_k(self.similarities([query])[0], k)

    def nearest_many(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """:meth:`nearest` for many queries at once (one matrix product)."""
        if not queries:
            return []
        sims = self.similarities(queries)
        return [top_k(row, k) for row in sims]
