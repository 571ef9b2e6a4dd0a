"""The offline TCAR router: a classifier trained on the agents' cards.

It meets the same ``<Reason>``/``<ID>`` contract as a router model, so TCAR works with no keys
and no model server, and it is the fallback when a router model's replies cannot be used. Each
card contributes its name and description and its example queries as labelled training texts
(label: the agent id); the registry's out-of-scope examples, when it has some, train an
``oos`` class (:mod:`routers._classifier`). The trained classifier is router state: a decision
names its version, and a replay reads the same bytes.

Onboarding at run time takes effect at once: :func:`state_for_cards` derives, from the last
trained state, one for the registry as it is now (removed agents' rows dropped; added or
changed agents' rows fitted to their examples with the trained rows held fixed,
:func:`~routers._classifier.add_labels`), itself a new version whose parent is the trained
one. Retraining on the new registry (:func:`train_tcar`) gives the full-quality model.

**Groups.** When cards have a ``group`` (CLINC150's domains, say), training also fits the
classifier's group head (:class:`~routers._classifier.GroupHead`) on the same texts labelled by
group; an agent without a group is a group of its own, named by its id. The head orders the
routing set (its members are the classifier's as without groups): the top choice is the
member with the best ``log p(agent) + weight * log p(its group)``, the weight tuned on the
held-out queries. The decision's evidence names the group, its probability, the head's own
best group and the agent the group term moved ahead of, if any. Onboarding maps an added
agent to its group when the head knows that group; an agent in a group the head has never
seen turns the reordering off for the queries whose set holds it, until a retrain.

*Our choices*: the reason names the top probabilities, the decline score and its threshold;
ties between agents go to the smaller id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routers._classifier import (
    GROUP_C,
    GroupChoice,
    IntentClassifier,
    TrainConfig,
    add_labels,
    calibrate,
    classify,
    label_sets,
    regroup,
    remove_labels,
    train_classifier,
)
from routers._tcar_registry import OOS, AgentCard
from routers.errors import RouterStateError

__all__ = ["TrainedRouter", "card_examples", "card_groups", "state_for_cards", "train_tcar"]


def card_examples(cards: Sequence[AgentCard]) -> list[tuple[str, str]]:
    """The labelled training texts of ``cards``: name and description, then each example."""
    return [(text, c.id) for c in cards for text in (f"{c.name}. {c.description}", *c.examples)]


def card_groups(cards: Sequence[AgentCard]) -> dict[str, str] | None:
    """Agent id -> group when any card has a group (an agent without one is a group of its
    own, named by its id); None when no card has one."""
    if not any(c.group is not None for c in cards):
        return None
    named = {c.group for c in cards if c.group is not None}
    clash = sorted(c.id for c in cards if c.group is None and c.id in named)
    if clash:
        raise ValueError(
            f"agents {clash[:5]} have no group but their ids are group names, so they would "
            "join those groups; fix: give them a group, or rename them"
        )
    return {c.id: c.group or c.id for c in cards}


def train_tcar(
    cards: Sequence[AgentCard],
    negatives: Sequence[str] = (),
    *,
    heldout: Sequence[tuple[str, str]] = (),
    heldout_negatives: Sequence[str] = (),
    config: TrainConfig | None = None,
    group_c: float = GROUP_C,
) -> IntentClassifier:
    """Train the offline router on ``cards`` (and out-of-scope ``negatives``), with a group
    head when cards have groups (inverse regularisation ``group_c``); with held-out
    (query, agent id) pairs, calibrate its set ratio, decline threshold and group weight on
    them."""
    if not cards:
        raise ValueError("the agent registry is empty; fix: add agents before training")
    state = train_classifier(
        card_examples(cards), negatives, config=config, groups=card_groups(cards), group_c=group_c
    )
    if heldout:
        state = calibrate(state, heldout, heldout_negatives)
    return state


def state_for_cards(
    state: IntentClassifier, cards: Sequence[AgentCard], negatives: Sequence[str] = ()
) -> IntentClassifier:
    """``state`` adapted to the registry ``cards`` (and its out-of-scope ``negatives``): the
    same state when every card's texts are the ones it was trained on, else a derived
    version (see the module docstring)."""
    now = label_sets(card_examples(cards))
    gone = sorted(a for a, h in state.label_sets.items() if now.get(a) != h)
    fresh = [c for c in cards if state.label_sets.get(c.id) != now[c.id]]
    if not gone and not fresh:
        return _regrouped(state, cards)
    out = remove_labels(state, gone)
    if fresh:
        kept = [c for c in cards if state.label_sets.get(c.id) == now[c.id]]
        if not kept:
            raise RouterStateError(
                "every agent changed since the router was trained, so there is nothing to "
                "scale new agents against; fix: retrain the offline router (train_tcar)"
            )
        out = add_labels(out, card_examples(fresh), card_examples(kept), negatives)
    return _regrouped(out, cards)


def _regrouped(state: IntentClassifier, cards: Sequence[AgentCard]) -> IntentClassifier:
    # A card's group can change without its texts: the head's map follows the cards.
    if state.groups is None:
        return state
    return regroup(state, card_groups(cards) or {})


class TrainedRouter:
    """Contract replies from a trained classifier over a registry snapshot."""

    def __init__(self, state: IntentClassifier, cards: Sequence[AgentCard]) -> None:
        ids = sorted(c.id for c in cards)
        if state.labels != ids:
            raise RouterStateError(
                f"the offline router's state knows agents {state.labels[:5]}... but the "
                f"registry has {ids[:5]}...; fix: adapt it with state_for_cards() or retrain"
            )
        self.state = state

    def reply(self, query: str, max_agents: int) -> tuple[str, dict[str, float], dict[str, Any]]:
        """A contract reply for ``query``, the probability per agent, and the evidence."""
        result = classify(self.state, [query])[0]
        scores = {a: round(p, 6) for a, p in result.probabilities.items()}
        top = result.ranked[:3]
        threshold = self.state.decline_below
        evidence: dict[str, Any] = {
            "top": [{"agent": a, "probability": round(p, 6)} for a, p in top],
            "decline_score": round(result.decline_score, 6),
            "decline_below": threshold,
            "set_ratio": self.state.set_ratio,
        }
        group = result.group
        if group is not None:
            evidence["group"] = {
                "group": group.group,
                "probability": None if group.probability is None else round(group.probability, 6),
                "best": group.best,
                "best_probability": round(group.best_probability, 6),
                "weight": group.weight,
                "moved_ahead_of": group.moved,
            }
        if result.declined:
            reason = (
                f"no agent fits: the in-scope score {result.decline_score:.3f} is below the "
                f"out-of-scope threshold {threshold:.3f} (best: {top[0][0]} {top[0][1]:.3f})"
            )
            return f"<Reason>{reason}</Reason>\n<ID>{OOS}</ID>", scores, evidence
        chosen = result.chosen[:max_agents]
        reason = (
            "the trained router's probabilities are "
            + ", ".join(f"{a} {p:.3f}" for a, p in top)
            + f"; in-scope score {result.decline_score:.3f}"
            + (f" (threshold {threshold:.3f})" if threshold is not None else "")
            + f"; chose {', '.join(chosen)} (within {self.state.set_ratio:g} of the top)"
            + _group_reason(group, chosen[0] if chosen else None)
        )
        lines = "\n".join(f"<ID>{a}</ID>" for a in chosen)
        return f"<Reason>{reason}</Reason>\n{lines}", scores, evidence


def _group_reason(group: GroupChoice | None, first: str | None) -> str:
    if group is None:
        return ""
    if group.group is None or group.probability is None:
        return (
            f"; group head: best group {group.best} ({group.best_probability:.3f}), not used: "
            "an agent in the set has a group the head was not trained on"
        )
    out = f"; group {group.group} ({group.probability:.3f}, weight {group.weight:g})"
    if group.moved is not None and first is not None:
        out += f" put {first} ahead of {group.moved}"
    return out
