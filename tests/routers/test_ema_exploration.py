"""EMA panel exploration (issue 18): seeded and deterministic; a never-observed model gets
into the panel; off by default, where the panel and the ORCH records are unchanged; the
Decision says which member exploration chose and why; an exploring run replays clean."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean
from routers import EMAState, Observation, apply_feedback, save_state
from routers._ema import PanelExploration, explore_panel, observed, panel, panel_score
from routers._orch_merge import OrchConfig, orch_merge
from traces import Decision, MemoryStore, StepRecord, hash_value

AGENTS = ["alpha", "beta", "gamma", "delta", "fresh"]


def seasoned(rounds: int = 5) -> EMAState:
    """Every agent but ``fresh`` observed ``rounds`` times; alpha best, delta worst."""
    quality = {"alpha": 1.0, "beta": 0.9, "gamma": 0.8, "delta": 0.3}
    batch = [
        Observation(agent=a, ok=True, latency_ms=500, cost_usd=0.0, quality=q)
        for _ in range(rounds)
        for a, q in quality.items()
    ]
    return apply_feedback(EMAState(), batch)


def test_a_never_observed_model_stays_out_without_exploration() -> None:
    state = seasoned()
    assert observed(state.stats("fresh")) == 0 and observed(state.stats("alpha")) == 5
    assert "fresh" not in [a for a, _ in panel(state, AGENTS, 3)]
    off = explore_panel(state, AGENTS, 3, PanelExploration(epsilon=0.0), "any task")
    assert off.members == panel(state, AGENTS, 3) and off.explored == {}


def test_epsilon_lets_a_never_observed_model_in_on_some_tasks() -> None:
    state = seasoned()
    explore = PanelExploration(epsilon=0.2, seed=7)
    choices = [explore_panel(state, AGENTS, 3, explore, f"task {i}") for i in range(300)]
    entered = [c for c in choices if "fresh" in dict(c.members)]
    # the draws are a hash of (seed, task): about epsilon of the tasks explore
    assert 0.12 < len(entered) / len(choices) < 0.28
    for c in entered:
        assert [a for a, _ in c.members][:2] == ["alpha", "beta"]  # the last seat only
        assert c.members[-1] == ("fresh", pytest.approx(panel_score(state.stats("fresh"))))
        assert c.draw < 0.2 and set(c.explored) == {"fresh"}
        assert c.explored["fresh"].startswith(f"epsilon draw {c.draw:.4f} < 0.2")
    for c in choices:
        if c.draw >= 0.2:
            assert c.members == panel(state, AGENTS, 3) and c.explored == {}


def test_the_least_observed_outsiders_are_explored_first() -> None:
    state = apply_feedback(
        seasoned(), [Observation(agent="fresh", ok=True, latency_ms=500, quality=0.0)]
    )
    more = [*AGENTS, "newer", "newest"]
    explore = PanelExploration(epsilon=1.0)
    picked = {explore_panel(state, more, 3, explore, f"t{i}").members[-1][0] for i in range(60)}
    assert picked == {"newer", "newest"}  # never observed; fresh (1 observation) waits


def test_an_optimism_bonus_lifts_the_unobserved() -> None:
    state = seasoned()
    choice = explore_panel(state, AGENTS, 3, PanelExploration(epsilon=0.0, bonus=0.8), "t")
    # bonus 0.8 / sqrt(1 + n): alpha 1.07 + 0.327 = 1.397, beta 0.97 + 0.327 = 1.297,
    # fresh 0.47 + 0.8 = 1.27 (never observed), gamma 0.87 + 0.327 = 1.197
    assert [a for a, _ in choice.members] == ["alpha", "beta", "fresh"]
    assert choice.ranking["fresh"] == pytest.approx(panel_score(state.stats("fresh")) + 0.8)
    assert choice.ranking["alpha"] == pytest.approx(
        panel_score(state.stats("alpha")) + 0.8 / math.sqrt(6)
    )
    assert set(choice.explored) == {"fresh"}
    assert choice.explored["fresh"].startswith("optimism bonus +0.800 (0 observations)")


@settings(max_examples=60, deadline=None)
@given(
    quality=st.lists(st.floats(0, 1), min_size=5, max_size=5),
    rounds=st.lists(st.integers(0, 4), min_size=5, max_size=5),
    k=st.integers(1, 6),
    epsilon=st.floats(0, 1),
    bonus=st.floats(0, 2),
    seed=st.integers(0, 2**32),
    task=st.text(max_size=20),
)
def test_exploration_is_a_function_of_state_task_and_seed(
    quality: list[float],
    rounds: list[int],
    k: int,
    epsilon: float,
    bonus: float,
    seed: int,
    task: str,
) -> None:
    batch = [
        Observation(agent=a, ok=True, latency_ms=100.0 * n, quality=q)
        for a, q, n in zip(AGENTS, quality, rounds, strict=True)
        for _ in range(n)
    ]
    state = apply_feedback(EMAState(), batch)
    explore = PanelExploration(epsilon=epsilon, bonus=bonus, seed=seed)
    choice = explore_panel(state, AGENTS, k, explore, task)
    again = explore_panel(state, list(reversed(AGENTS)), k, explore, task)
    assert choice == again  # the same panel whatever order the candidates come in
    members = [a for a, _ in choice.members]
    assert len(members) == min(k, len(AGENTS)) == len(set(members))
    assert set(choice.explored) <= set(members)
    assert 0.0 <= choice.draw < 1.0
    plain = [a for a, _ in panel(state, AGENTS, k)]
    if choice.draw >= epsilon and bonus == 0.0:
        assert members == plain and choice.explored == {}
    for a in set(members) - set(plain):
        assert a in choice.explored  # every member the plain panel lacks says why it is in


def test_exploration_config_is_checked() -> None:
    with pytest.raises(ValidationError):
        PanelExploration(epsilon=1.5)
    with pytest.raises(ValidationError):
        PanelExploration(bonus=-0.1)
    with pytest.raises(ValidationError):
        PanelExploration(bonus=float("inf"))
    with pytest.raises(ValidationError):
        OrchConfig(agents=["a"], explore={"epsilon": 0.1, "typo": 1})


def test_a_config_that_does_not_explore_keeps_its_hash() -> None:
    plain = OrchConfig(agents=AGENTS)
    assert "explore" not in plain.model_dump(mode="json")
    assert hash_value(plain) == hash_value(plain.model_dump(mode="json"))
    exploring = OrchConfig(agents=AGENTS, explore=PanelExploration())
    assert exploring.model_dump(mode="json")["explore"] == {
        "epsilon": 0.1,
        "bonus": 0.0,
        "seed": 0,
    }
    assert hash_value(exploring) != hash_value(plain)


def _answer(request: ChatRequest, model: ModelInfo) -> str:
    prompt = request.messages[0].content or ""
    if prompt.startswith("Split the question"):
        return "1. What concept?\n2. Which options go?\n3. Does B hold?"
    return "Tentative answer: B" if prompt.startswith("Analyse") else "B"


async def _orch_run(explore: dict[str, Any], question: str) -> tuple[RunResult, Any, Any]:
    store = MemoryStore()
    version = save_state(store, seasoned())
    registry = ModelRegistry.from_dict(
        {
            "providers": {"s": {"kind": "simulated"}},
            "models": {a: {"provider": "s", "name": a} for a in AGENTS},
        }
    )
    models = ModelHub(registry, clients={"s": ScriptedClient(_answer)})
    p = PipelineBuilder("orch-explore")
    p.node(
        "m",
        orch_merge.with_config(agents=AGENTS, explore=explore),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    pipeline = p.build()
    result = await arun(
        pipeline, {"question": question, "state": version}, store=store, services={"models": models}
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["m"]))
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    await aassert_replays_clean(result, store=store, pipeline=pipeline, services={"models": models})
    return result, decision, version


async def test_orch_decision_says_which_member_exploration_chose() -> None:
    explore = {"epsilon": 0.5, "seed": 3}
    # find a question whose draw explores, and one whose draw does not (deterministic)
    state, cfg = seasoned(), PanelExploration(**explore)
    questions = [f"Which {i}? A) x B) y" for i in range(40)]
    version = hash_value(state)
    draws = {q: explore_panel(state, AGENTS, 3, cfg, f"{version}\x00{q}") for q in questions}
    exploring = next(q for q, c in draws.items() if c.explored)
    staying = next(q for q, c in draws.items() if not c.explored)

    result, decision, state_key = await _orch_run(explore, exploring)
    assert state_key == version
    assert result.outputs["m"].panel == ["alpha", "beta", "fresh"]
    assert decision.chosen == ["alpha", "beta", "fresh"]
    assert decision.reason.startswith("top 3 by EMA panel score, exploring: ")
    assert "; fresh by exploration: epsilon draw " in decision.reason
    assert decision.parameters["explore"] == {"epsilon": 0.5, "bonus": 0.0, "seed": 3}
    evidence = decision.evidence["exploration"]
    assert set(evidence["explored"]) == {"fresh"} and evidence["draw"] < 0.5
    assert evidence["observations"]["fresh"] == 0 and evidence["observations"]["alpha"] == 5

    result, decision, _ = await _orch_run(explore, staying)
    assert result.outputs["m"].panel == ["alpha", "beta", "gamma"]
    assert "by exploration" not in decision.reason
    assert decision.evidence["exploration"]["explored"] == {}
