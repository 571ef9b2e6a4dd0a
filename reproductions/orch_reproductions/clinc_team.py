"""TCAR teams for CLINC150 built from a dataset's training split, and their offline tuning.

Two granularities, both with the offline lexical TCAR router (no keys, no model) and the
offline refining agent:

* ``domain``: one agent per CLINC150 domain (banking, travel, ...). Its card has the domain's
  name, a description listing its intents and, as examples, every training query of the
  domain. The agent (:data:`clinc150_domain_agent`) names the intent of its domain nearest
  the query among that domain's training queries, or declines when the nearest is too far;
* ``intent``: one agent per intent (the paper's setting, "an intent is an agent"): its card
  has the intent's name and its training queries; the agent answers its intent.

:class:`Simulator` computes what the pipeline answers for a list of queries and any
thresholds, from the same rules (the router's vote rule, the agents, the refiner's
:func:`~agents.refiner.offline_refine`), without runs, so the thresholds can be tuned on the
validation split quickly; the script (``reproductions/eval_tcar_clinc.py``) checks the
simulation against recorded runs.

*Our choices*: the domain agent votes over its ``k`` nearest training queries (each with its
cosine similarity) and declines when the best similarity is below ``min_similarity``; the
final answer's label is the agreed canonical answer of the refined answer, ``oos`` when it
declined and none when it stated a conflict; thresholds are chosen by the mean of in-scope
accuracy and out-of-scope recall on the validation split (:func:`balanced`), ties to the
earlier grid point.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.refiner import AgentAnswer, AgentReply, RefinedAnswer, offline_refine
from orch import Context, Pipeline, PipelineBuilder, agent
from routers import (
    OOS,
    AgentCard,
    AgentRegistry,
    LexicalIndex,
    LexicalRouter,
    TCARQuery,
    TCARResult,
    tcar,
)
from routers.eval import Dataset, RoutedOutcome, RoutingSummary, Task, summarize
from traces import hash_value

__all__ = [
    "INTENTS_SERVICE",
    "ClincDomainAgentConfig",
    "ClincIntentAgentConfig",
    "ClincTeam",
    "IntentGuess",
    "IntentIndex",
    "Level",
    "Simulator",
    "TeamParams",
    "balanced",
    "build_team",
    "clinc150_domain_agent",
    "clinc150_intent_agent",
    "details_of",
    "lexical_route",
    "outcome_of",
    "predicted_label",
    "tune",
]

Level = Literal["domain", "intent"]
INTENTS_SERVICE = "clinc150_intents"
"""The service holding each domain's :class:`IntentIndex` (domain id -> index)."""


def _words(label: str) -> str:
    return label.replace("_", " ")


@dataclass(frozen=True)
class IntentGuess:
    intent: str | None
    """The intent with the most votes (None when no training query shares a word)."""
    similarity: float
    """The best single similarity of a training query."""
    votes: dict[str, float]
    nearest: list[tuple[str, str, float]]
    """(text, intent, similarity) of the nearest training queries, best first."""


class IntentIndex:
    """One domain's training queries (and intent names), ranked against a query."""

    def __init__(self, examples: Sequence[tuple[str, str]]) -> None:
        intents = sorted({intent for _, intent in examples})
        pairs = [(_words(i), i) for i in intents] + list(examples)
        self.texts = [t for t, _ in pairs]
        self.labels = [i for _, i in pairs]
        self.intents = intents
        self.index = LexicalIndex(self.texts)
        self.version = hash_value({"texts": self.texts, "labels": self.labels})

    def guess(self, query: str, k: int) -> IntentGuess:
        near = [(i, s) for i, s in self.index.nearest(query, k) if s > 0]
        votes: dict[str, float] = {}
        for i, s in near:
            votes[self.labels[i]] = votes.get(self.labels[i], 0.0) + s
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
        return IntentGuess(
            intent=ranked[0][0] if ranked else None,
            similarity=near[0][1] if near else 0.0,
            votes=dict(ranked),
            nearest=[(self.texts[i], self.labels[i], s) for i, s in near],
        )


class ClincDomainAgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    domain: str
    k: int = Field(default=1, ge=1)
    """Training queries that vote for the intent."""
    min_similarity: float = Field(default=0.2, ge=0, le=1, allow_inf_nan=False)
    """Decline when no training query of the domain is at least this similar."""


def _domain_reply(domain: str, guess: IntentGuess, min_similarity: float) -> AgentReply:
    if guess.intent is None or guess.similarity < min_similarity:
        return AgentReply(
            text=f"{_words(domain)}: not a {_words(domain)} request "
            f"(best similarity {guess.similarity:.2f})",
            declined=True,
        )
    return AgentReply(
        text=f"{_words(domain)}: this is '{_words(guess.intent)}' "
        f"(similarity {guess.similarity:.2f})",
        answer=guess.intent,
    )


@agent(name="clinc150-domain-agent", version="1", config=ClincDomainAgentConfig)
async def clinc150_domain_agent(q: TCARQuery, ctx: Context) -> AgentReply:
    """Name this domain's intent nearest the query, or decline; records its choice."""
    cfg: ClincDomainAgentConfig = ctx.config
    indexes: Mapping[str, IntentIndex] = ctx.service(INTENTS_SERVICE)
    index = indexes[cfg.domain]
    guess = index.guess(q.query, cfg.k)
    reply = _domain_reply(cfg.domain, guess, cfg.min_similarity)
    ctx.decide(
        candidates=index.intents,
        chosen=[] if reply.answer is None else [reply.answer],
        reason=reply.text,
        scores={i: round(v, 6) for i, v in guess.votes.items()},
        parameters={"k": cfg.k, "min_similarity": cfg.min_similarity},
        evidence={
            "index_version": index.version,
            "best_similarity": round(guess.similarity, 6),
            "nearest": [
                {"text": t[:200], "intent": i, "similarity": round(s, 6)}
                for t, i, s in guess.nearest[:5]
            ],
        },
    )
    return reply


def _intent_reply(intent: str) -> AgentReply:
    return AgentReply(text=f"this is '{_words(intent)}'", answer=intent)


class ClincIntentAgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    intent: str


@agent(name="clinc150-intent-agent", version="1", config=ClincIntentAgentConfig)
async def clinc150_intent_agent(q: TCARQuery, ctx: Context) -> AgentReply:
    """The agent of one intent: it answers its intent."""
    return _intent_reply(ctx.config.intent)


class TeamParams(BaseModel):
    """The thresholds of a team: the router's, then the domain agents'."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lexical_k: int = Field(default=10, ge=1)
    lexical_min_similarity: float = Field(default=0.2, ge=0, le=1)
    lexical_ratio: float = Field(default=0.8, gt=0, le=1)
    intent_k: int = Field(default=1, ge=1)
    intent_min_similarity: float = Field(default=0.0, ge=0, le=1)

    def router(self) -> dict[str, Any]:
        """The TCAR router's configuration (offline)."""
        return {
            "lexical_k": self.lexical_k,
            "lexical_min_similarity": self.lexical_min_similarity,
            "lexical_ratio": self.lexical_ratio,
        }


@dataclass(frozen=True)
class ClincTeam:
    level: Level
    cards: tuple[AgentCard, ...]
    domain_of: Mapping[str, str]
    """intent -> domain."""
    intents: Mapping[str, IntentIndex] = field(default_factory=dict)
    """domain -> its intent index (domain level only)."""

    def registry(self, params: TeamParams) -> AgentRegistry:
        runners: list[tuple[AgentCard, Any]] = []
        for c in self.cards:
            if self.level == "domain":
                runner = clinc150_domain_agent.with_config(
                    domain=c.id, k=params.intent_k, min_similarity=params.intent_min_similarity
                )
            else:
                runner = clinc150_intent_agent.with_config(intent=c.id)
            runners.append((c, runner))
        return AgentRegistry(runners)

    def services(self, params: TeamParams) -> dict[str, Any]:
        """What the pipeline's runs need: the agent registry and the intent indexes."""
        return {"agents": self.registry(params), INTENTS_SERVICE: self.intents}

    def group_of(self, label: str | None) -> str | None:
        """The domain of an intent (None for ``oos`` and no label)."""
        return None if label is None or label == OOS else self.domain_of[label]

    def agent_domain(self, agent_id: str | None) -> str | None:
        """The domain an agent stands for (None for no agent)."""
        if agent_id is None or agent_id == OOS:
            return None
        return agent_id if self.level == "domain" else self.domain_of[agent_id]

    def outcome(self, gold: str, chosen: Sequence[str], predicted: str | None) -> RoutedOutcome:
        """The outcome of a query of intent ``gold`` routed to ``chosen`` and answered
        ``predicted``."""
        return RoutedOutcome.of(
            self.gold_agents(gold),
            chosen,
            gold,
            predicted,
            gold_group=self.group_of(gold),
            top_group=self.agent_domain(next((a for a in chosen if a != OOS), None)),
            predicted_group=self.group_of(predicted),
        )

    def gold_agents(self, gold: str) -> frozenset[str]:
        """The agents that should take a query of intent ``gold`` (none for ``oos``)."""
        if gold == OOS:
            return frozenset()
        return frozenset([self.domain_of[gold] if self.level == "domain" else gold])

    def pipeline(self, params: TeamParams, name: str = "tcar-clinc150") -> Pipeline:
        """Input ``question``, output ``answer`` (a :class:`~routers._tcar_team.TCARResult`)."""
        p = PipelineBuilder(name)
        node = p.node(
            "tcar", tcar.with_config(router=params.router()), query=p.input("question", str)
        )
        p.output("answer", node)
        return p.build()


def build_team(train: Dataset, level: Level = "domain") -> ClincTeam:
    """A team from the in-scope queries of ``train`` (``gold`` the intent, ``group`` the
    domain, as the ``clinc150`` adapter gives them); out-of-scope queries are not used."""
    by_domain: dict[str, dict[str, list[str]]] = {}
    for t in train.tasks:
        if t.gold is None or t.gold == OOS:
            continue
        by_domain.setdefault(t.group, {}).setdefault(t.gold, []).append(t.question)
    if not by_domain:
        raise ValueError(
            f"dataset {train.name!r} has no in-scope training queries to build agents from; "
            "fix: pass the train split of clinc150"
        )
    domain_of = {i: d for d, intents in by_domain.items() for i in intents}
    cards: list[AgentCard] = []
    if level == "domain":
        for d, intents in sorted(by_domain.items()):
            cards.append(
                AgentCard(
                    id=d,
                    name=_words(d),
                    description="Handles " + ", ".join(_words(i) for i in sorted(intents)) + ".",
                    examples=[q for i in sorted(intents) for q in intents[i]],
                )
            )
        indexes = {
            d: IntentIndex([(q, i) for i in sorted(intents) for q in intents[i]])
            for d, intents in sorted(by_domain.items())
        }
        return ClincTeam("domain", tuple(cards), domain_of, indexes)
    for d, intents in sorted(by_domain.items()):
        for i, queries in sorted(intents.items()):
            cards.append(
                AgentCard(
                    id=i,
                    name=_words(i),
                    description=f"Handles '{_words(i)}' requests ({_words(d)}).",
                    examples=list(queries),
                )
            )
    return ClincTeam("intent", tuple(sorted(cards, key=lambda c: c.id)), domain_of)


def lexical_route(
    votes: Mapping[str, float],
    near: Sequence[tuple[int, float]],
    *,
    min_similarity: float,
    ratio: float,
    max_agents: int = 3,
) -> list[str]:
    """The offline router's choice from its votes and nearest documents (the rule of
    :meth:`~routers._tcar_lexical.LexicalRouter.reply`); ``[]`` for ``oos``."""
    best = near[0][1] if near else 0.0
    if not near or best < min_similarity:
        return []
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[0][1]
    return [a for a, v in ranked if v > 0 and v >= ratio * top][:max_agents]


def predicted_label(final: RefinedAnswer, answers: Sequence[AgentAnswer]) -> str | None:
    """The label of a refined answer (a :class:`~routers._tcar_team.TCARResult`'s ``final``
    from its ``answers``): ``oos`` when it declined, the agreed canonical answer of its
    sources, or None (a stated conflict, or free text)."""
    if final.kind == "declined":
        return OOS
    if final.kind not in ("single", "integrated"):
        return None
    canon = {a.reply.answer for a in answers if a.agent in final.sources and a.reply}
    return canon.pop() if len(canon) == 1 and None not in canon else None


def details_of(team: ClincTeam, task: Task, result: TCARResult) -> dict[str, Any]:
    """What an evaluation keeps of one run (JSON-able): the gold intent, its domain (None
    for ``oos``) and the gold agents, the route and its first choice's domain, each chosen
    agent's answer (its intent, ``declined`` or ``error``), the refined answer's kind, its
    label and the label's domain."""
    gold = task.gold or OOS
    predicted = predicted_label(result.final, result.answers)
    top = next((a for a in result.route.chosen if a != OOS), None)
    return {
        "gold": gold,
        "gold_domain": team.group_of(gold),
        "gold_agents": sorted(team.gold_agents(gold)),
        "chosen": list(result.route.chosen),
        "top_domain": team.agent_domain(top),
        "via": result.route.via,
        "answers": {
            a.agent: (
                "error" if a.reply is None else "declined" if a.reply.declined else a.reply.answer
            )
            for a in result.answers
        },
        "final": result.final.kind,
        "predicted": predicted,
        "predicted_domain": team.group_of(predicted),
    }


def outcome_of(details: Mapping[str, Any]) -> RoutedOutcome:
    """The outcome of one run from the details the script's ``describe`` stored."""
    return RoutedOutcome.of(
        details["gold_agents"],
        details["chosen"],
        details["gold"],
        details["predicted"],
        gold_group=details["gold_domain"],
        top_group=details["top_domain"],
        predicted_group=details["predicted_domain"],
    )


class Simulator:
    """The pipeline's answers for ``tasks`` at any :class:`TeamParams`, without runs.

    Ranks each query once (with the largest ``lexical_k`` / ``intent_k`` asked for) and
    reuses the ranks, which gives the same documents as ranking with a smaller k (the
    nearest-k order is total). Agreement with recorded runs is tested.
    """

    def __init__(
        self,
        team: ClincTeam,
        tasks: Sequence[Task],
        *,
        max_lexical_k: int,
        max_intent_k: int = 1,
        max_agents: int = 3,
    ) -> None:
        self.team, self.tasks, self.max_agents = team, list(tasks), max_agents
        self.max_lexical_k, self.max_intent_k = max_lexical_k, max_intent_k
        self.router = LexicalRouter(list(team.cards), k=max_lexical_k)
        ids = sorted(c.id for c in team.cards)
        self._near = [self.router.index.nearest(t.question, max_lexical_k) for t in self.tasks]
        self._ids = ids
        self._guesses: dict[tuple[int, str], IntentGuess] = {}

    def _votes(self, near: Sequence[tuple[int, float]]) -> dict[str, float]:
        votes = dict.fromkeys(self._ids, 0.0)
        for i, s in near:
            votes[self.router.owner[i]] += s
        return votes

    def _guess(self, n: int, domain: str, k: int) -> IntentGuess:
        key = (n, domain)
        if key not in self._guesses:
            idx = self.team.intents[domain]
            self._guesses[key] = idx.guess(self.tasks[n].question, self.max_intent_k)
        full = self._guesses[key]
        if k == self.max_intent_k:
            return full
        near = full.nearest[:k]
        votes: dict[str, float] = {}
        for _, intent, s in near:
            votes[intent] = votes.get(intent, 0.0) + s
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
        return IntentGuess(
            intent=ranked[0][0] if ranked else None,
            similarity=near[0][2] if near else 0.0,
            votes=dict(ranked),
            nearest=near,
        )

    def chosen(self, n: int, params: TeamParams) -> list[str]:
        near = [(i, s) for i, s in self._near[n][: params.lexical_k] if s > 0]
        return lexical_route(
            self._votes(near),
            near,
            min_similarity=params.lexical_min_similarity,
            ratio=params.lexical_ratio,
            max_agents=self.max_agents,
        )

    def outcome(self, n: int, params: TeamParams) -> RoutedOutcome:
        for name, k, top in [
            ("lexical_k", params.lexical_k, self.max_lexical_k),
            ("intent_k", params.intent_k, self.max_intent_k),
        ]:
            if k > top:
                raise ValueError(
                    f"{name} {k} is above the simulator's max_{name} {top}; fix: build the "
                    f"Simulator with max_{name}={k} or more"
                )
        task = self.tasks[n]
        chosen = self.chosen(n, params)
        answers = []
        for a in chosen:
            if self.team.level == "domain":
                guess = self._guess(n, a, params.intent_k)
                reply = _domain_reply(a, guess, params.intent_min_similarity)
            else:
                reply = _intent_reply(a)
            answers.append(AgentAnswer(agent=a, reply=reply))
        final, _ = offline_refine(task.question, answers)
        return self.team.outcome(task.gold or OOS, chosen, predicted_label(final, answers))

    def outcomes(self, params: TeamParams) -> list[RoutedOutcome]:
        return [self.outcome(n, params) for n in range(len(self.tasks))]


def balanced(summary: RoutingSummary) -> float:
    """The tuning objective: the mean of in-scope accuracy and out-of-scope recall (each 0
    when the split has none of its queries)."""
    return ((summary.in_scope_accuracy or 0.0) + (summary.oos_recall or 0.0)) / 2


def tune(
    sim: Simulator, grid: Mapping[str, Iterable[Any]], base: TeamParams | None = None
) -> list[tuple[TeamParams, RoutingSummary]]:
    """Every grid point's summary, best first by :func:`balanced` (ties: grid order)."""
    names = list(grid)
    rows: list[tuple[TeamParams, RoutingSummary]] = []
    start = (base or TeamParams()).model_dump()
    for values in itertools.product(*(list(grid[n]) for n in names)):
        params = TeamParams(**{**start, **dict(zip(names, values, strict=True))})
        rows.append((params, summarize(sim.outcomes(params))))
    order = sorted(range(len(rows)), key=lambda i: (-balanced(rows[i][1]), i))
    return [rows[i] for i in order]
