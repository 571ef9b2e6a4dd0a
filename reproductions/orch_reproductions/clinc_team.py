"""The CLINC150 TCAR team (150 intent agents from a training split) and its measures.

The paper's setting (TCAR, arXiv 2601.04544): an intent is an agent. :func:`build_team` makes
one :class:`~routers.AgentCard` per intent of a dataset's training split (its examples: that
intent's training queries; its group: the intent's domain) and gives the split's
out-of-scope queries to the registry as ``out_of_scope``, what the offline router learns to
decline. Each agent (:data:`clinc150_intent_agent`) answers its own intent. The team routes
with TCAR's offline trained router, from a state version named in the pipeline
(``router_state``), and merges with the offline refining agent: no model is called.

The measures are over one :class:`QueryRecord` per query, read from the recorded runs (the
route and the decision's decline score) and from the classifier's routing set before any
decline: :func:`figures` at the runs' own threshold or at another one (a sweep), with the
domain view derived from the set's top choice (which the router's domain head helps
order). This module runs nothing and reads no file; the script
``reproductions/eval_tcar_clinc.py`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sklearn.metrics import roc_auc_score

from agents.refiner import AgentReply
from orch import Context, Pipeline, PipelineBuilder, agent
from routers import (
    OOS,
    AgentCard,
    AgentRegistry,
    IntentClassifier,
    TCARQuery,
    TCARResult,
    TrainConfig,
    tcar,
    train_tcar,
)
from routers.eval import Dataset, Task

__all__ = [
    "ClincFigures",
    "ClincIntentAgentConfig",
    "ClincTeam",
    "QueryRecord",
    "build_team",
    "clinc150_intent_agent",
    "details_of",
    "figures",
    "heldout",
    "is_right",
    "record_details",
    "record_of",
]


def _words(label: str) -> str:
    return label.replace("_", " ")


class ClincIntentAgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    intent: str


@agent(name="clinc150-intent-agent", version="1", config=ClincIntentAgentConfig)
async def clinc150_intent_agent(q: TCARQuery, ctx: Context) -> AgentReply:
    """The agent of one intent: it answers its intent."""
    intent: str = ctx.config.intent
    return AgentReply(text=f"this is '{_words(intent)}'", answer=intent)


@dataclass(frozen=True)
class ClincTeam:
    """The intent agents' cards, the out-of-scope training queries and each intent's domain."""

    cards: tuple[AgentCard, ...]
    out_of_scope: tuple[str, ...]
    domain_of: Mapping[str, str]
    """intent -> domain (CLINC's ``domains.json``)."""

    def registry(self) -> AgentRegistry:
        return AgentRegistry(
            [(c, clinc150_intent_agent.with_config(intent=c.id)) for c in self.cards],
            out_of_scope=self.out_of_scope,
        )

    def services(self) -> dict[str, Any]:
        """What the pipeline's runs (and their replays) need: the agent registry."""
        return {"agents": self.registry()}

    def train(self, config: TrainConfig | None = None) -> IntentClassifier:
        """The offline router trained on the cards and the out-of-scope queries (calibrate
        it on held-out data next: :func:`routers.calibrate` with :func:`heldout`)."""
        return train_tcar(self.cards, self.out_of_scope, config=config)

    def pipeline(self, router_state: str, name: str = "tcar-clinc150") -> Pipeline:
        """Input ``question``, output ``answer`` (a :class:`~routers.TCARResult`), routed by
        the stored offline router ``router_state``."""
        p = PipelineBuilder(name)
        node = p.node(
            "tcar",
            tcar.with_config(router={"router_state": router_state}),
            query=p.input("question", str),
        )
        p.output("answer", node)
        return p.build()

    def domain(self, intent: str | None) -> str | None:
        """The domain of an intent (None for ``oos`` and no intent)."""
        return None if intent is None or intent == OOS else self.domain_of[intent]


def build_team(train: Dataset, domain_of: Mapping[str, str]) -> ClincTeam:
    """The team of ``train``'s in-scope queries (``gold`` the intent, as the ``clinc150``
    adapter gives them); its out-of-scope queries become the registry's ``out_of_scope``.
    Each card's group is its intent's domain, so the offline router learns a domain head
    that orders the routing set (:mod:`routers._tcar_trained`)."""
    by_intent: dict[str, list[str]] = {}
    negatives: list[str] = []
    for t in train.tasks:
        if t.gold == OOS:
            negatives.append(t.question)
        elif t.gold is not None:
            by_intent.setdefault(t.gold, []).append(t.question)
    if not by_intent:
        raise ValueError(
            f"dataset {train.name!r} has no in-scope training queries to build agents from; "
            "fix: pass the train split of clinc150"
        )
    unknown = sorted(set(by_intent) - set(domain_of))
    if unknown:
        raise ValueError(
            f"intents {unknown[:5]} have no domain; fix: pass the domains.json of the same "
            "CLINC150 release"
        )
    cards = tuple(
        AgentCard(
            id=intent,
            name=_words(intent),
            description=f"Handles '{_words(intent)}' requests ({_words(domain_of[intent])}).",
            examples=queries,
            group=domain_of[intent],
        )
        for intent, queries in sorted(by_intent.items())
    )
    return ClincTeam(cards, tuple(sorted(set(negatives))), dict(domain_of))


def heldout(split: Dataset) -> tuple[list[tuple[str, str]], list[str]]:
    """A split as calibration data: (query, intent) pairs and out-of-scope queries."""
    pairs = [(t.question, t.gold) for t in split.tasks if t.gold is not None and t.gold != OOS]
    return pairs, [t.question for t in split.tasks if t.gold == OOS]


def is_right(gold: str, chosen: Sequence[str]) -> bool:
    """An out-of-scope query is right when declined; an in-scope one when not declined and
    its intent is in the chosen set."""
    if gold == OOS:
        return list(chosen) == [OOS]
    return gold in chosen


def details_of(task: Task, result: TCARResult) -> dict[str, Any]:
    """What the evaluation file keeps of one run: the gold intent, the route, how it was
    routed and the refined answer's kind."""
    return {
        "gold": task.gold or OOS,
        "chosen": list(result.route.chosen),
        "via": result.route.via,
        "final": result.final.kind,
    }


@dataclass(frozen=True)
class QueryRecord:
    """One test query as the measures need it."""

    gold: str
    """The gold intent, ``oos`` for an out-of-scope query."""
    routing_set: tuple[str, ...]
    """The classifier's set, best first, before any decline."""
    decline_score: float
    """The recorded decline score (below the threshold: declined)."""
    declined: bool
    """The run declined (routed ``oos``)."""


@dataclass(frozen=True)
class ClincFigures:
    """The measures of one configuration (shares in 0..1; None over no queries)."""

    queries: int
    in_scope: int
    gold_in_set: float | None
    """In-scope queries whose intent is in the routing set (declines aside)."""
    domain: float | None
    """In-scope queries whose domain is the routing set's top choice's."""
    mean_agents: float | None
    """Agents chosen per routed (not declined) query."""
    auroc: float | None
    """Out-of-scope queries told from in-scope ones by the decline score."""
    oos_recall: float | None
    in_scope_accuracy: float | None
    """In-scope queries not declined and with their intent in the set."""
    accuracy: float | None
    """Every query: in-scope as above, out-of-scope right when declined."""

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in vars(self).items()}


def record_details(record: QueryRecord) -> dict[str, Any]:
    """What a run's details in the evaluation file add, so its figures can be recomputed
    from the file alone (:func:`record_of`)."""
    return {
        "routing_set": list(record.routing_set),
        "decline_score": record.decline_score,
        "declined": record.declined,
    }


def record_of(details: Mapping[str, Any]) -> QueryRecord:
    """The :class:`QueryRecord` of a run's details (:func:`details_of` + :func:`record_details`)."""
    return QueryRecord(
        gold=details["gold"],
        routing_set=tuple(details["routing_set"]),
        decline_score=float(details["decline_score"]),
        declined=bool(details["declined"]),
    )


def _mean(flags: Sequence[bool | int]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def figures(
    records: Sequence[QueryRecord],
    domain_of: Mapping[str, str],
    threshold: float | None = None,
) -> ClincFigures:
    """The measures of ``records``: declines as the runs made them, or, given a
    ``threshold``, those of the decline score below it (a sweep)."""
    declined = [r.declined if threshold is None else r.decline_score < threshold for r in records]
    inside = [(r, d) for r, d in zip(records, declined, strict=True) if r.gold != OOS]
    outside = [d for r, d in zip(records, declined, strict=True) if r.gold == OOS]
    routed = [len(r.routing_set) for r, d in zip(records, declined, strict=True) if not d]
    in_right = [not d and r.gold in r.routing_set for r, d in inside]
    auroc = None
    if inside and outside:
        # Out of scope is the positive class; a lower decline score says "out of scope".
        auroc = float(
            roc_auc_score([r.gold == OOS for r in records], [-r.decline_score for r in records])
        )
    return ClincFigures(
        queries=len(records),
        in_scope=len(inside),
        gold_in_set=_mean([r.gold in r.routing_set for r, _ in inside]),
        domain=_mean(
            [
                bool(r.routing_set) and domain_of[r.routing_set[0]] == domain_of[r.gold]
                for r, _ in inside
            ]
        ),
        mean_agents=_mean(routed),
        auroc=auroc,
        oos_recall=_mean(outside),
        in_scope_accuracy=_mean(in_right),
        accuracy=_mean([*in_right, *outside]),
    )
