"""The offline TCAR router: agent descriptions and examples ranked against the query.

It meets the same ``<Reason>``/``<ID>`` contract as a router model, so TCAR works with no keys
and no downloaded model, and it is the default fallback when a router model's replies cannot
be used. Each agent contributes its name and description, plus any example queries, as
documents of a TF-IDF index; the k documents nearest the query vote for their agents with
their cosine similarity.

*Our choices*: out of scope when the best single similarity is below ``min_similarity``;
beside the top agent, any agent whose vote reaches ``ratio`` times the top vote is chosen too (up
to ``max_agents``), ties by id; the reason names the votes and the best-matching document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routers._lexical import LexicalIndex, tokens
from routers._tcar_registry import OOS, AgentCard
from traces import hash_value

__all__ = ["LexicalRouter"]

_cache: dict[str, LexicalRouter] = {}


class LexicalRouter:
    def __init__(
        self,
        cards: Sequence[AgentCard],
        *,
        k: int = 10,
        min_similarity: float = 0.2,
        ratio: float = 0.8,
    ) -> None:
        if not cards:
            raise ValueError("the agent registry is empty; fix: add agents before routing")
        self.cards = list(cards)
        self.k, self.min_similarity, self.ratio = k, min_similarity, ratio
        self.docs: list[str] = []
        self.owner: list[str] = []
        for c in self.cards:
            for text in (f"{c.name}. {c.description}", *c.examples):
                self.docs.append(text)
                self.owner.append(c.id)
        self.index = LexicalIndex(self.docs)

    @classmethod
    def for_cards(
        cls, cards: Sequence[AgentCard], *, k: int, min_similarity: float, ratio: float
    ) -> LexicalRouter:
        """A router for this registry snapshot, built once per content (a pure function of
        the cards and parameters, so caching cannot change a decision)."""
        key = hash_value(
            {
                "cards": [c.model_dump(mode="json") for c in cards],
                "params": [k, min_similarity, ratio],
            }
        )
        found = _cache.get(key)
        if found is None:
            found = cls(cards, k=k, min_similarity=min_similarity, ratio=ratio)
            if len(_cache) > 64:  # registries change rarely; keep the cache small anyway
                _cache.clear()
            _cache[key] = found
        return found

    def rank(self, query: str) -> tuple[dict[str, float], list[tuple[int, float]]]:
        """Votes per agent id (all agents, sorted by id) and the nearest documents."""
        near = [(i, s) for i, s in self.index.nearest(query, self.k) if s > 0]
        votes = {c.id: 0.0 for c in sorted(self.cards, key=lambda c: c.id)}
        for i, sim in near:
            votes[self.owner[i]] += sim
        return votes, near

    def reply(self, query: str, max_agents: int) -> tuple[str, dict[str, float], dict[str, Any]]:
        """A contract reply for ``query``, the vote per agent, and the evidence."""
        votes, near = self.rank(query)
        best = near[0][1] if near else 0.0
        evidence: dict[str, Any] = {
            "nearest": [
                {"agent": self.owner[i], "similarity": round(s, 6), "text": self.docs[i][:200]}
                for i, s in near
            ],
            "best_similarity": best,
        }
        scores = {a: round(v, 6) for a, v in votes.items()}
        if not near or best < self.min_similarity:
            reason = (
                f"no agent matches: the best similarity {best:.3f} is below the out-of-scope "
                f"threshold {self.min_similarity}"
            )
            return f"<Reason>{reason}</Reason>\n<ID>{OOS}</ID>", scores, evidence
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[0][1]
        chosen = [a for a, v in ranked if v > 0 and v >= self.ratio * top][:max_agents]
        i0 = near[0][0]
        shared = sorted(set(tokens(query)) & set(tokens(self.docs[i0])))
        reason = (
            "nearest descriptions and examples vote "
            + ", ".join(f"{a} {v:.3f}" for a, v in ranked[:3] if v > 0)
            + f"; best match ({best:.3f}, {self.owner[i0]}) shares {shared}; chose "
            + ", ".join(chosen)
        )
        lines = "\n".join(f"<ID>{a}</ID>" for a in chosen)
        return f"<Reason>{reason}</Reason>\n{lines}", scores, evidence
