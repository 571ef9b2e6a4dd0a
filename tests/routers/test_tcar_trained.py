"""The offline TCAR router as a trained classifier: deterministic training, router state that
is checked by hash and replays, onboarding that takes effect at once."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcar_cards import CARDS
from tcar_routing import route_once

from orch import PipelineBuilder, arun
from routers import (
    ArrayData,
    IntentClassifier,
    TrainConfig,
    TrainedRouter,
    calibrate,
    classify,
    save_state,
    state_for_cards,
    train_classifier,
    train_tcar,
)
from routers._served import _CHECKED
from routers._tcar import tcar_router
from routers._tcar_registry import OOS, AgentCard, AgentRegistry
from traces import Decision, MemoryStore, canonical_bytes

NO_SENTENCE = TrainConfig(sentence=False)
EXTRA = AgentCard(
    id="weather",
    name="Weather",
    description="forecasts, rain, temperature and storms",
    examples=["will it rain tomorrow", "what's the temperature in paris", "is a storm coming"],
)


def test_training_is_deterministic_and_order_free() -> None:
    pairs = [(t, c.id) for c in CARDS for t in (c.description, *c.examples)]
    first = train_classifier(pairs, ["tell me a joke"], config=NO_SENTENCE)
    shuffled = list(pairs)
    random.Random(7).shuffle(shuffled)
    again = train_classifier(shuffled, ["tell me a joke"], config=NO_SENTENCE)
    assert first.version == again.version
    assert first.training_set == again.training_set
    other = train_classifier(
        pairs, ["tell me a joke"], config=NO_SENTENCE.model_copy(update={"c": 3.0})
    )
    assert other.version != first.version  # the config is part of the state


def test_state_round_trips_through_json_and_names_its_training_set() -> None:
    state = train_tcar(CARDS, config=NO_SENTENCE)
    back = IntentClassifier.model_validate_json(state.model_dump_json())
    assert back.version == state.version
    queries = ["lost luggage", "wifi down", "refund please", "zebra"]
    a, b = classify(state, queries), classify(back, queries)
    assert [r.chosen for r in a] == [r.chosen for r in b]
    assert [r.decline_score for r in a] == [r.decline_score for r in b]
    assert state.labels == sorted(c.id for c in CARDS) and not state.has_oos


def test_negatives_train_an_oos_class_and_calibration_uses_heldout_only() -> None:
    negatives = ["tell me a joke", "what is the meaning of life", "sing a song", "who won"]
    state = train_tcar(CARDS, negatives, config=NO_SENTENCE)
    assert state.has_oos and state.decline_below == 0.0
    assert classify(state, ["sing me a joke"])[0].declined
    heldout = [("charged twice on my card", "billing"), ("internet is down", "network")]
    tuned = calibrate(state, heldout, ["tell me a story"])
    assert tuned.parent == state.version and tuned.decline_below is not None
    assert classify(tuned, ["tell me a story"])[0].declined
    assert classify(tuned, ["internet is down"])[0].chosen == ["network"]


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["lost luggage", "wifi keeps dropping", "refund my invoice"]))
def test_onboarding_adapts_at_once_and_removal_is_exact(query: str) -> None:
    base = train_tcar(CARDS, config=NO_SENTENCE)
    grown = state_for_cards(base, [*CARDS, EXTRA])
    assert grown.parent == base.version and grown.added == ["weather"]
    assert grown.labels == ["billing", "network", "travel", "weather"]
    assert (
        TrainedRouter(grown, [*CARDS, EXTRA])
        .reply("will it rain tomorrow", 3)[0]
        .endswith("<ID>weather</ID>")
    )
    # The agents that were there keep their queries.
    assert classify(grown, [query])[0].chosen[:1] == classify(base, [query])[0].chosen[:1]
    # Removing the new agent again gives the trained rows back, exactly.
    back = state_for_cards(grown, CARDS)
    assert back.labels == base.labels
    assert np.array_equal(back.layer.weight.to_numpy(), base.layer.weight.to_numpy())
    assert state_for_cards(base, CARDS) is base  # nothing changed: the same version


def test_a_changed_card_is_relearned_and_a_stale_state_is_refused() -> None:
    base = train_tcar(CARDS, config=NO_SENTENCE)
    changed = [CARDS[0], CARDS[1], CARDS[2].model_copy(update={"examples": ["train tickets"]})]
    adapted = state_for_cards(base, changed)
    assert adapted.added == ["travel"] and adapted.version != base.version
    with pytest.raises(ValueError, match="adapt it with state_for_cards"):
        TrainedRouter(base, [*CARDS, EXTRA])


async def _route(reg: AgentRegistry, query: str, store: MemoryStore, **cfg: Any) -> Decision:
    return await route_once("tcar-trained", reg, query, store, **cfg)


async def test_a_run_names_the_state_and_onboarding_changes_it_at_once() -> None:
    store = MemoryStore()
    state = train_tcar(CARDS, config=NO_SENTENCE)
    version = save_state(store, state)
    reg = AgentRegistry([*CARDS])
    first = await _route(reg, "lost luggage on my flight", store, router_state=version)
    assert first.state_version == version and first.chosen == ["travel"]
    assert first.evidence["registry_version"] == reg.version
    before = reg.version
    reg.add(EXTRA)
    second = await _route(reg, "will it rain tomorrow", store, router_state=version)
    assert reg.version != before
    assert second.chosen == ["weather"]
    assert second.state_version not in (None, version)
    derived = store.get_value(second.state_version)
    assert derived["parent"] == version and derived["added"] == ["weather"]
    reg.remove("weather")
    third = await _route(reg, "will it rain tomorrow", store, router_state=version)
    assert third.state_version == version and "weather" not in third.chosen


async def test_without_a_state_the_router_trains_on_the_registry_and_stores_it() -> None:
    store = MemoryStore()
    reg = AgentRegistry([*CARDS], out_of_scope=["tell me a joke", "sing a song"])
    decision = await _route(reg, "sing me a joke", store, train={"sentence": False})
    assert decision.chosen == [OOS]
    state = IntentClassifier.model_validate(store.get_value(decision.state_version))
    assert state.has_oos and state.version == decision.state_version


async def test_a_tampered_state_is_refused_by_hash() -> None:
    store = MemoryStore()
    # A state no other test trains (the engine caches loaded states by version).
    state = train_tcar(CARDS, config=NO_SENTENCE.model_copy(update={"c": 7.0}))
    version = save_state(store, state)
    w = state.layer.weight.to_numpy().copy()
    w[0, 0] += 1.0
    forged = state.model_copy(
        update={"layer": state.layer.model_copy(update={"weight": ArrayData.of(w)})}
    )
    # The forged weights stored under the honest version's key, as a tampered store holds them.
    store._tamper(version, canonical_bytes(forged))
    _CHECKED.clear()
    p = PipelineBuilder("tampered")
    p.node("route", tcar_router.with_config(router_state=version), query=p.input("query", str))
    result = await arun(
        p.build(), {"query": "lost luggage"}, store=store, services={"agents": AgentRegistry(CARDS)}
    )
    assert not result.ok and result.error is not None
    assert version in result.error.message
    assert "Traceback" not in result.error.message
