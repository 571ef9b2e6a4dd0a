"""Agent groups in the offline TCAR router: a card's optional group, the group head that orders
the routing set (never its members), its calibrated weight, onboarding, and the evidence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tcar_routing import route_once

from routers import IntentClassifier, TrainConfig, calibrate, classify, save_state, train_tcar
from routers._classifier import regroup
from routers._tcar_registry import AgentCard, AgentRegistry
from routers._tcar_trained import card_groups, state_for_cards
from traces import Decision, MemoryStore, hash_value

# Wide sets, so that the group head has members to order.
WIDE = TrainConfig(sentence=False, set_ratio=0.1)
ANIMALS = ["dog", "cat", "fish", "bird", "rabbit", "horse"]


def _card(agent: str, group: str | None, examples: list[str]) -> AgentCard:
    name = agent.replace("_", " ")
    return AgentCard(
        id=agent, name=name, description=f"{name} requests", examples=examples, group=group
    )


# "pet" is in every pet agent's examples, so it says little about which pet agent a query
# wants but much about its group; "supplies" is in one example of each shopping agent and of
# each pet agent. "pet supplies" is a pets query whose best single agent is a shopping one.
PETS = [
    _card(
        f"{a}_care",
        "pets",
        [
            f"my pet {a} needs a vet",
            f"feed my pet {a}",
            f"pet {a} grooming",
            f"walk the pet {a}",
            f"my pet {a} is sick",
            f"pet supplies for the {a}",
        ],
    )
    for a in ANIMALS
]
SHOPPING = [
    _card(
        "grocery_order",
        "shopping",
        [
            "order groceries",
            "buy milk and bread",
            "order food delivery",
            "buy dog food",
            "buy food for the week",
            "supplies for the kitchen",
        ],
    ),
    _card(
        "clothes_order",
        "shopping",
        [
            "order a shirt",
            "buy new shoes",
            "order a jacket",
            "buy socks",
            "order jeans",
            "clothing supplies",
        ],
    ),
]
CARDS = [*PETS, *SHOPPING]
UNGROUPED = [c.model_copy(update={"group": None}) for c in CARDS]
GROUP_OF = {c.id: c.group for c in CARDS}


def test_a_card_without_a_group_dumps_and_hashes_as_before_groups() -> None:
    plain = AgentCard(id="billing", name="Billing", description="invoices", examples=["refund"])
    dumped = plain.model_dump(mode="json")
    assert "group" not in dumped
    # The bytes a card had before the field existed: its four fields and nothing else.
    before = {"id": "billing", "name": "Billing", "description": "invoices", "examples": ["refund"]}
    assert hash_value(plain) == hash_value(before)
    grouped = plain.model_copy(update={"group": "finance"})
    assert grouped.model_dump(mode="json")["group"] == "finance"
    assert hash_value(grouped) != hash_value(plain)
    assert AgentRegistry([grouped]).version != AgentRegistry([plain]).version
    assert AgentCard.model_validate(grouped.model_dump()) == grouped
    with pytest.raises(ValueError):
        AgentCard(id="x", name="x", description="x", group="")


def test_a_state_without_groups_does_not_write_the_field() -> None:
    state = train_tcar(UNGROUPED, config=WIDE)
    assert state.groups is None
    assert "groups" not in state.model_dump(mode="json")
    grouped = train_tcar(CARDS, config=WIDE)
    assert grouped.groups is not None and grouped.groups.groups == ["pets", "shopping"]
    back = IntentClassifier.model_validate_json(grouped.model_dump_json())
    assert back.version == grouped.version and back.groups == grouped.groups


def test_the_group_head_moves_the_right_agent_first_and_keeps_the_members() -> None:
    grouped = train_tcar(CARDS, config=WIDE)
    plain = train_tcar(UNGROUPED, config=WIDE)
    # The label layer is fitted the same way with or without groups.
    assert np.array_equal(grouped.layer.weight.to_numpy(), plain.layer.weight.to_numpy())
    without = classify(plain, ["pet supplies"], decline_below=None)[0]
    found = classify(grouped, ["pet supplies"], decline_below=None)[0]
    # By probability a shopping agent comes first; the group head says pets.
    assert GROUP_OF[without.chosen[0]] == "shopping"
    assert found.group is not None and found.group.best == "pets"
    assert GROUP_OF[found.chosen[0]] == "pets" and found.group.group == "pets"
    assert found.group.moved == without.chosen[0]
    assert sorted(found.chosen) == sorted(without.chosen)  # reordered, not changed
    assert found.probabilities == without.probabilities
    # A clear query keeps its order, and nothing is moved.
    clear = classify(grouped, ["feed my pet horse"], decline_below=None)[0]
    assert clear.chosen[0] == "horse_care" and clear.group is not None
    assert clear.group.moved is None


def test_with_weight_zero_the_order_is_the_probability_order() -> None:
    grouped = train_tcar(CARDS, config=WIDE)
    assert grouped.groups is not None
    off = grouped.model_copy(update={"groups": grouped.groups.model_copy(update={"weight": 0.0})})
    plain = train_tcar(UNGROUPED, config=WIDE)
    queries = ["pet supplies", "dog food for my pet", "buy socks", "my pet cat is sick"]
    for a, b in zip(classify(off, queries), classify(plain, queries), strict=True):
        assert a.chosen == b.chosen


def test_calibration_tunes_the_weight_on_heldout_queries() -> None:
    wide = WIDE.model_copy(update={"max_mean_set": 3.0})  # the ratio keeps sets wide
    base = train_tcar(CARDS, config=wide)
    # The intent layer puts grocery_order first here; the query is about a pet.
    assert classify(base, ["dog food for my pet"], decline_below=None)[0].ranked[0][0] == (
        "grocery_order"
    )
    needs = calibrate(base, [("dog food for my pet", "dog_care")])
    assert needs.groups is not None and needs.groups.weight > 0
    assert classify(needs, ["dog food for my pet"], decline_below=None)[0].chosen[0] == "dog_care"
    # Held-out queries the probability order already gets right: the smallest weight, 0.
    fine = calibrate(base, [("buy milk and bread", "grocery_order")])
    assert fine.groups is not None and fine.groups.weight == 0.0


def test_onboarding_maps_known_groups_and_turns_the_head_off_for_new_ones() -> None:
    base = train_tcar(CARDS, config=WIDE)
    assert base.groups is not None
    hamster = _card("hamster_care", "pets", ["my pet hamster is sick", "feed my pet hamster"])
    grown = state_for_cards(base, [*CARDS, hamster])
    assert grown.groups is not None and grown.groups.label_groups["hamster_care"] == "pets"
    books = _card("book_order", "books", ["order a novel", "buy a book", "order books"])
    other = state_for_cards(base, [*CARDS, books])
    assert other.groups is not None and "book_order" not in other.groups.label_groups
    result = classify(other, ["buy a book"], decline_below=None)[0]
    assert "book_order" in result.chosen
    assert result.group is not None and result.group.group is None  # reordering off
    # A kept card that changes group: the map follows, as a derived version.
    moved = [*PETS, SHOPPING[0], SHOPPING[1].model_copy(update={"group": "pets"})]
    regrouped = state_for_cards(base, moved)
    assert regrouped.version != base.version and regrouped.parent == base.version
    assert regrouped.groups is not None
    assert regrouped.groups.label_groups["clothes_order"] == "pets"
    assert regroup(base, card_groups(CARDS) or {}) is base


def test_groups_name_clashes_and_missing_groups_are_clear_errors() -> None:
    clash = [*CARDS, _card("pets", None, ["walk my pets"])]
    with pytest.raises(ValueError, match="ids are group names"):
        train_tcar(clash, config=WIDE)
    # An agent without a group is a group of its own.
    lone = [*CARDS, _card("weather", None, ["will it rain", "is a storm coming"])]
    groups = card_groups(lone)
    assert groups is not None and groups["weather"] == "weather"
    assert card_groups(UNGROUPED) is None


async def _route(reg: AgentRegistry, query: str, store: MemoryStore, **cfg: Any) -> Decision:
    return await route_once("tcar-groups", reg, query, store, **cfg)


async def test_the_decision_says_which_group_was_chosen_and_why() -> None:
    store = MemoryStore()
    keep = WIDE.model_copy(update={"min_confidence": 0.0})  # no query declined here
    state = train_tcar(CARDS, config=keep)
    version = save_state(store, state)
    decision = await _route(AgentRegistry(CARDS), "pet supplies", store, router_state=version)
    group = decision.evidence["offline"]["group"]
    assert group["group"] == "pets" and group["best"] == "pets"
    assert GROUP_OF[decision.chosen[0]] == "pets"
    assert group["moved_ahead_of"] is not None and GROUP_OF[group["moved_ahead_of"]] == "shopping"
    assert "group pets" in decision.reason and "ahead of" in decision.reason
    # Without groups, the evidence has no group entry (decisions keep their old shape).
    plain = train_tcar(UNGROUPED, config=keep)
    other = await _route(
        AgentRegistry(UNGROUPED), "pet supplies", store, router_state=save_state(store, plain)
    )
    assert "group" not in other.evidence["offline"]
    assert GROUP_OF[other.chosen[0]] == "shopping"
