"""Measures of a router that chooses a *set* of agents (TCAR) and of the answer it ends with.

From the TCAR paper (TCAndon-Router, arXiv 2601.04544) as the design notes give them, and
from CLINC150's way of scoring out-of-scope queries (Larson et al., EMNLP 2019):

* **set precision, recall, F1** of one query: the chosen agents ``P`` against the gold agents
  ``G``: precision = |P ∩ G| / |P|, recall = |P ∩ G| / |G|, F1 their harmonic mean;
* **empty sets** (our choice, the paper does not say): an out-of-scope query has the empty
  gold set, and a router that answers ``oos`` chose the empty set. Both empty scores
  1 / 1 / 1 (a correct decline); exactly one empty scores 0 / 0 / 0 (a wrong decline, or an
  agent chosen for a query no agent should take). This is the same as treating ``oos`` as one
  more label, so every query counts, with the same weight, in every mean;
* the **averages**: over queries (:func:`sample_average`, the mean of the per-query scores,
  what the tables report), pooled (:func:`micro_average`, from summed counts), and over labels
  (:func:`label_macro_average`, one P/R/F1 per agent label, then their mean; ``oos`` is a
  label there);
* **accuracy** as TCAR defines it: the gold agent is in the chosen set (for ``oos``: the
  router chose ``oos``); **top accuracy**: the router's first choice is the gold agent;
  **domain accuracy**: the first choice is in the gold label's group (CLINC150's domain, so
  intent agents are scored at domain level too), and the same of the final answer's label;
* **mean agents chosen** (paper: 1.37), over all queries (``oos`` counting 0) and over the
  queries sent to agents, and the share of queries with more than one agent;
* the **final answer** (CLINC's view): **accuracy** = the predicted label equals the gold
  label over all queries, ``oos`` being a label; **in-scope accuracy** over the in-scope
  queries only; **out-of-scope recall** = out-of-scope queries declined; the **false-decline
  rate** = in-scope queries declined; a query without one answer (the refiner stated a
  conflict) is wrong, never a decline.

Pure functions of labels: no I/O, no randomness. A mean over no queries is ``None``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OOS",
    "RoutedOutcome",
    "RoutingSummary",
    "SetScore",
    "label_macro_average",
    "micro_average",
    "sample_average",
    "set_score",
    "summarize",
]

OOS = "oos"
"""The out-of-scope label (of CLINC150 and of TCAR's route)."""


@dataclass(frozen=True)
class SetScore:
    precision: float
    recall: float
    f1: float


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def set_score(predicted: Iterable[str], gold: Iterable[str]) -> SetScore:
    """Precision, recall and F1 of one query's chosen set against its gold set (empty sets:
    see the module docstring)."""
    p, g = set(predicted), set(gold)
    if not p and not g:
        return SetScore(1.0, 1.0, 1.0)
    if not p or not g:
        return SetScore(0.0, 0.0, 0.0)
    hit = len(p & g)
    precision, recall = hit / len(p), hit / len(g)
    return SetScore(precision, recall, _f1(precision, recall))


def _pairs(
    pairs: Iterable[tuple[Collection[str], Collection[str]]], oos: str
) -> list[tuple[set[str], set[str]]]:
    # The empty set is the label ``oos``, so counts agree with set_score's convention.
    return [(set(p) or {oos}, set(g) or {oos}) for p, g in pairs]


def sample_average(scores: Sequence[SetScore]) -> SetScore | None:
    """The mean of per-query scores (the F1 is the mean of the per-query F1s)."""
    if not scores:
        return None
    n = len(scores)
    return SetScore(
        sum(s.precision for s in scores) / n,
        sum(s.recall for s in scores) / n,
        sum(s.f1 for s in scores) / n,
    )


def micro_average(
    pairs: Sequence[tuple[Collection[str], Collection[str]]], *, oos: str = OOS
) -> SetScore | None:
    """Precision and recall from the counts summed over queries ((predicted, gold) pairs);
    an empty set counts as the label ``oos``."""
    if not pairs:
        return None
    hit = chosen = wanted = 0
    for p, g in _pairs(pairs, oos):
        hit += len(p & g)
        chosen += len(p)
        wanted += len(g)
    precision, recall = hit / chosen, hit / wanted
    return SetScore(precision, recall, _f1(precision, recall))


def label_macro_average(
    pairs: Sequence[tuple[Collection[str], Collection[str]]], *, oos: str = OOS
) -> SetScore | None:
    """One precision, recall and F1 per label (gold or chosen anywhere), then their mean. A
    label never chosen has precision 0; a label never gold has recall 0."""
    if not pairs:
        return None
    counted = _pairs(pairs, oos)
    labels = sorted(set().union(*(p | g for p, g in counted)))
    per: list[SetScore] = []
    for label in labels:
        tp = sum(1 for p, g in counted if label in p and label in g)
        chosen = sum(1 for p, _ in counted if label in p)
        wanted = sum(1 for _, g in counted if label in g)
        precision = tp / chosen if chosen else 0.0
        recall = tp / wanted if wanted else 0.0
        per.append(SetScore(precision, recall, _f1(precision, recall)))
    return sample_average(per)


@dataclass(frozen=True)
class RoutedOutcome:
    """What one query's run came to, as the measures need it."""

    gold_agents: frozenset[str]
    """The agents that should be chosen; empty for an out-of-scope query."""
    chosen: tuple[str, ...]
    """The agents the router chose, best first; empty when it answered ``oos``."""
    gold_label: str
    """The gold answer (the intent), ``oos`` for an out-of-scope query."""
    predicted: str | None
    """The final answer's label; ``oos`` when it declined; None when it gave no single
    answer (a stated conflict)."""
    gold_group: str | None = None
    """The group of the gold label (CLINC150: the intent's domain), when labels have one."""
    top_group: str | None = None
    """The group of the router's first choice (None when it chose ``oos``)."""
    predicted_group: str | None = None
    """The group of the final label (None when declined or no single answer)."""

    @property
    def in_scope(self) -> bool:
        return bool(self.gold_agents)

    @classmethod
    def of(
        cls,
        gold_agents: Iterable[str],
        chosen: Iterable[str],
        gold_label: str,
        predicted: str | None,
        *,
        gold_group: str | None = None,
        top_group: str | None = None,
        predicted_group: str | None = None,
        oos: str = OOS,
    ) -> RoutedOutcome:
        """An outcome from a route as routers write it (``[oos]`` for out of scope)."""
        return cls(
            gold_agents=frozenset(a for a in gold_agents if a != oos),
            chosen=tuple(a for a in chosen if a != oos),
            gold_label=gold_label,
            predicted=predicted,
            gold_group=gold_group,
            top_group=top_group,
            predicted_group=predicted_group,
        )


def _mean(flags: Iterable[float | bool]) -> float | None:
    values = [float(f) for f in flags]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class RoutingSummary:
    """Every measure of the module docstring over one configuration's queries."""

    tasks: int
    in_scope: int
    out_of_scope: int
    set_mean: SetScore | None
    """Per-query set precision / recall / F1, averaged over all queries."""
    set_mean_in_scope: SetScore | None
    set_micro: SetScore | None
    set_label_macro: SetScore | None
    route_accuracy: float | None
    """TCAR's accuracy: the gold agent is in the chosen set (``oos`` chosen for ``oos``)."""
    route_accuracy_in_scope: float | None
    top_accuracy: float | None
    """In-scope queries whose first choice is a gold agent (domain accuracy when agents are
    domains)."""
    domain_accuracy: float | None
    """In-scope queries whose first choice is in the gold group (the gold domain), over
    those with a group."""
    answer_domain_accuracy: float | None
    """In-scope queries whose final label is in the gold group."""
    route_oos_recall: float | None
    """Out-of-scope queries the router itself answered ``oos``."""
    mean_agents: float | None
    """Agents chosen per query, over all queries (``oos`` is 0)."""
    mean_agents_in_scope: float | None
    mean_agents_routed: float | None
    """Agents chosen per query the router sent to agents (``oos`` routes left out)."""
    multi_agent_share: float | None
    """Queries with more than one agent chosen, over all queries."""
    accuracy: float | None
    """The final label equals the gold label, over all queries."""
    in_scope_accuracy: float | None
    oos_recall: float | None
    """Out-of-scope queries whose final answer declined."""
    false_decline_rate: float | None
    """In-scope queries whose final answer declined."""
    oos_precision: float | None
    """Declined queries that were out of scope."""
    no_answer_share: float | None
    """Queries with no single final answer (a stated conflict), over all queries."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, rounded to 6 places."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, SetScore):
                out[name] = {k: round(v, 6) for k, v in value.__dict__.items()}
            elif isinstance(value, float):
                out[name] = round(value, 6)
            else:
                out[name] = value
        return out


def summarize(outcomes: Sequence[RoutedOutcome], *, oos: str = OOS) -> RoutingSummary:
    """All the measures over ``outcomes`` (see the module docstring)."""
    inside = [o for o in outcomes if o.in_scope]
    outside = [o for o in outcomes if not o.in_scope]
    pairs = [(o.chosen, o.gold_agents) for o in outcomes]
    declined = [o for o in outcomes if o.predicted == oos]
    grouped = [o for o in inside if o.gold_group is not None]
    return RoutingSummary(
        tasks=len(outcomes),
        in_scope=len(inside),
        out_of_scope=len(outside),
        set_mean=sample_average([set_score(o.chosen, o.gold_agents) for o in outcomes]),
        set_mean_in_scope=sample_average([set_score(o.chosen, o.gold_agents) for o in inside]),
        set_micro=micro_average(pairs, oos=oos),
        set_label_macro=label_macro_average(pairs, oos=oos),
        route_accuracy=_mean(
            bool(o.gold_agents & set(o.chosen)) if o.in_scope else not o.chosen for o in outcomes
        ),
        route_accuracy_in_scope=_mean(bool(o.gold_agents & set(o.chosen)) for o in inside),
        top_accuracy=_mean(bool(o.chosen) and o.chosen[0] in o.gold_agents for o in inside),
        domain_accuracy=_mean(o.top_group == o.gold_group for o in grouped),
        answer_domain_accuracy=_mean(o.predicted_group == o.gold_group for o in grouped),
        route_oos_recall=_mean(not o.chosen for o in outside),
        mean_agents=_mean(len(o.chosen) for o in outcomes),
        mean_agents_in_scope=_mean(len(o.chosen) for o in inside),
        mean_agents_routed=_mean(len(o.chosen) for o in outcomes if o.chosen),
        multi_agent_share=_mean(len(o.chosen) > 1 for o in outcomes),
        accuracy=_mean(o.predicted == o.gold_label for o in outcomes),
        in_scope_accuracy=_mean(o.predicted == o.gold_label for o in inside),
        oos_recall=_mean(o.predicted == oos for o in outside),
        false_decline_rate=_mean(o.predicted == oos for o in inside),
        oos_precision=_mean(not o.in_scope for o in declined),
        no_answer_share=_mean(o.predicted is None for o in outcomes),
    )
