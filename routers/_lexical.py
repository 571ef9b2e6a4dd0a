"""Local lexical scoring: the offline stand-in for an embedding model.

Routers that must work with no keys and no downloaded models rank text against text here:
TCAR's offline router ranks agent descriptions against the query (BM25), AMRO-S infers task
types from the nearest labelled examples and the kNN baseline finds the nearest training
queries (TF-IDF cosine). Everything is deterministic: documents keep their given order, ties
are broken by that order, and floating-point sums run in sorted-token order.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["STOPWORDS", "LexicalIndex", "tokens"]

_STOPWORDS = """a am an and are as at be by can could do does for from had has have how i i'm if in
is it its me my of on or our please so that the their them there this to was we what when where
which who why will with would you your"""
STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _stem(word: str) -> str:
    # A light suffix strip, enough to match "cards" with "card" and "paying" with "pay";
    # our choice over a full stemmer, which would be a dependency for a small gain.
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased word stems of ``text`` without stop words."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class LexicalIndex:
    """BM25 and TF-IDF cosine over a fixed list of documents (their order is their identity)."""

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        if not documents:
            raise ValueError("a lexical index needs at least one document; fix: give documents")
        self.k1, self.b = k1, b
        self.docs = [Counter(tokens(d)) for d in documents]
        self.lengths = [sum(c.values()) for c in self.docs]
        self.avg_len = (sum(self.lengths) / len(self.docs)) or 1.0
        df: Counter[str] = Counter()
        for c in self.docs:
            df.update(c.keys())
        n = len(self.docs)
        # BM25's idf (Lucene form, never negative) and a smoothed idf for TF-IDF vectors.
        self.idf_bm25 = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.idf = {t: math.log((1 + n) / (1 + f)) + 1 for t, f in df.items()}
        self.vectors = [self._vector(c) for c in self.docs]
        # Postings for cosine: only documents sharing a token with the query are touched.
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, vec in enumerate(self.vectors):
            for t, w in vec.items():
                self.postings.setdefault(t, []).append((i, w))

    def __len__(self) -> int:
        return len(self.docs)

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self.idf.get(t, 0.0) for t, c in sorted(counts.items())}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {t: v / norm for t, v in vec.items() if v} if norm else {}

    def bm25(self, query: str) -> list[float]:
        """BM25 score of every document for ``query``, in document order."""
        q = sorted(set(tokens(query)))
        out = []
        for counts, length in zip(self.docs, self.lengths, strict=True):
            score = 0.0
            for t in q:
                f = counts.get(t, 0)
                if f:
                    norm = f + self.k1 * (1 - self.b + self.b * length / self.avg_len)
                    score += self.idf_bm25[t] * f * (self.k1 + 1) / norm
            out.append(score)
        return out

    def cosine(self, query: str) -> list[float]:
        """TF-IDF cosine similarity of every document with ``query``, in document order."""
        sims = [0.0] * len(self.docs)
        for t, w in self._vector(Counter(tokens(query))).items():  # sorted tokens: fixed sum order
            for i, dw in self.postings.get(t, ()):
                sims[i] += w * dw
        return sims

    def nearest(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar documents by cosine: (index, similarity), best first,
        ties to the earlier document."""
        if k < 1:
            raise ValueError(f"k is {k}; fix: use k >= 1")
        sims = self.cosine(query)
        order = heapq.nsmallest(k, range(len(sims)), key=lambda i: (-sims[i], i))
        return [(i, sims[i]) for i in order]
