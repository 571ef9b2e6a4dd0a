"""ORCH many-analyses-one-merge: merge parsing of every answer format, sub-question parsing,
the EMA panel choice, truncation, fallbacks, variants, feedback, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import PipelineBuilder, arun
from orch.testing import assert_order_independent
from routers import EMAState, Observation, apply_feedback, ema_feedback, save_state
from routers._ema import AgentStats
from routers._orch_merge import (
    FALLBACK_SUBQUESTIONS,
    OrchConfig,
    observations,
    orch_merge,
    parse_merge,
    parse_subquestions,
)
from traces import Decision, EffectRecord, MemoryStore, StepRecord
from traces._runview import load_run_view

AGENTS = ["alpha", "beta", "gamma", "delta"]
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {a: {"provider": "s", "name": a, "input_per_mtok": 1.0} for a in AGENTS},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", "C"),
        ("(C)", "C"),
        ("C.", "C"),
        ("\\boxed{C}", "C"),
        ("The answer is C", "C"),
        ("the answer is (d)", "D"),
        ("Final: J", "J"),
        ("A reasoned guess: B", "B"),  # the article "A" is not the last stand-alone letter
        ("", "?"),
        ("I cannot tell", "I"),  # a stand-alone capital I reads as option I (A-J)
        ("no idea at all", "?"),
    ],
)
def test_parse_merge_letters(text: str, expected: str) -> None:
    assert parse_merge(text) == expected


def test_parse_merge_restricted_letters_and_numbers() -> None:
    assert parse_merge("E", letters="ABCD") == "?"
    assert parse_merge("The answer is E, or maybe B", letters="ABCD") == "B"
    assert parse_merge("42", "number") == "42"
    assert parse_merge("so x = 3.50 dollars", "number") == "3.5"
    assert parse_merge("none", "number") == "?"


def test_parse_subquestions() -> None:
    assert parse_subquestions("1. What is X?\n2) Which go?\n3: Check B.\n4. extra") == [
        "What is X?",
        "Which go?",
        "Check B.",
    ]
    assert parse_subquestions("- first one\n* second one\n• third one") == [
        "first one",
        "second one",
        "third one",
    ]
    assert parse_subquestions("1. only one\n2. two") is None
    assert parse_subquestions("no list here") is None


def d_step_key(store: MemoryStore) -> str:
    """The key of step 'm' of the one run in ``store``."""
    (run_id,) = store.run_ids()
    return load_run_view(store, run_id).steps["m"].key


def state_where_gamma_leads() -> EMAState:
    # panel score = q + 0.1*stab - 0.3*min(lat/5000, 3) - 0.1*min(cost/0.002, 3)
    #   alpha: 0.5 + 0.09 - 0.12 - 0   = 0.47   (defaults)
    #   beta:  0.2 + 0.1  - 0.06 - 0   = 0.24
    #   gamma: 0.9 + 0.1  - 0.06 - 0.05 = 0.89
    #   delta: 0.6 + 0.1  - 0.3  - 0   = 0.40
    return EMAState(
        agents={
            "beta": AgentStats(quality=0.2, latency_ms=1000, stability=1.0),
            "gamma": AgentStats(quality=0.9, latency_ms=1000, stability=1.0, cost_usd=0.001),
            "delta": AgentStats(quality=0.6, latency_ms=5000, stability=1.0),
        }
    )


def hub(
    decompose: str = "1. What concept?\n2. Which options go?\n3. Does B hold?",
    analysis: str = "Key points. Tentative answer: B",
    merge: str = "B",
) -> tuple[ModelHub, ScriptedClient]:
    def script(request: ChatRequest, model: ModelInfo) -> str:
        prompt = request.messages[0].content
        if prompt.startswith("Split the question"):
            return decompose
        if prompt.startswith("Analyse"):
            return analysis
        return merge

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


async def run(
    state: EMAState | None = None, models: tuple[ModelHub, ScriptedClient] | None = None, **cfg: Any
) -> tuple[Any, Decision, ScriptedClient, MemoryStore, Any]:
    store = MemoryStore()
    version = save_state(store, state or state_where_gamma_leads())
    p = PipelineBuilder("orch")
    p.node(
        "m",
        orch_merge.with_config(**({"agents": AGENTS} | cfg)),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    hub_, client = models or hub()
    result = await arun(
        p.build(),
        {"question": "Which? A) x B) y C) z D) w", "state": version},
        store=store,
        services={"models": hub_},
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["m"]))
    return (
        result.outputs["m"],
        Decision.model_validate(store.get_value(rec.decisions[0])),
        client,
        store,
        version,
    )


async def test_panel_from_ema_scores_and_the_flow() -> None:
    out, d, client, store, version = await run()
    rec = StepRecord.model_validate(store.get_value(d_step_key(store)))
    assert out.panel == ["gamma", "alpha", "delta"] and out.merger == "gamma"
    assert d.chosen == ["gamma", "alpha", "delta"] and d.state_version == version
    assert d.scores["gamma"] == pytest.approx(0.89) and d.scores["beta"] == pytest.approx(0.24)
    assert d.scores["alpha"] == pytest.approx(0.47) and d.scores["delta"] == pytest.approx(0.40)
    # dispatcher, 3 analysts in panel order, merger
    assert [m for m, _ in client.calls] == ["gamma", "gamma", "alpha", "delta", "gamma"]
    assert out.decomposition == "model" and out.subquestions[2] == "Does B hold?"
    assert [a.agent for a in out.analyses] == ["gamma", "alpha", "delta"]
    assert all(a.tentative == "B" for a in out.analyses) and out.answer == "B"
    merge_prompt = client.calls[-1][1].messages[0].content
    assert "[alpha] Which options go?" in merge_prompt and client.calls[-1][1].temperature == 0.0
    # the total is the cost of every recorded call: dispatcher, analysts and merger
    effects = [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]
    assert len(effects) == 5 and all(e.cost_usd for e in effects)
    assert out.cost_usd == pytest.approx(sum(e.cost_usd or 0.0 for e in effects))
    assert out.merge_cost_usd == pytest.approx(effects[-1].cost_usd)


async def test_analyses_are_truncated_to_the_limit() -> None:
    long = "x" * 880 + " Tentative answer: C"
    out, *_ = await run(models=hub(analysis=long))
    assert all(len(a.text) == 500 for a in out.analyses)
    assert all(a.tentative == "?" for a in out.analyses)  # the answer was cut off


async def test_fallback_subquestions_and_unparseable_merge() -> None:
    out, *_ = await run(models=hub(decompose="I would rather not.", merge="no idea at all"))
    assert out.decomposition == "fallback" and out.subquestions == list(FALLBACK_SUBQUESTIONS)
    assert out.answer == "?"


async def test_k2_and_number_variant() -> None:
    out, _d, _client, *_ = await run(k=2)
    assert out.panel == ["gamma", "alpha"] and len(out.analyses) == 2
    assert [a.subquestion for a in out.analyses] == ["What concept?", "Which options go?"]
    num, *_ = await run(
        models=hub(analysis="so 12", merge="The total is 12."), answer_format="number"
    )
    assert num.answer == "12" and [a.tentative for a in num.analyses] == ["12"] * 3


async def test_missing_state_is_a_clear_error() -> None:
    p = PipelineBuilder("orch")
    p.node(
        "m",
        orch_merge.with_config(agents=AGENTS),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    result = await arun(
        p.build(),
        {"question": "q", "state": "sha256:" + "1" * 64},
        store=MemoryStore(),
        services={"models": hub()[0]},
    )
    assert result.error is not None and "not in the run's store" in result.error.message


def test_bad_config() -> None:
    with pytest.raises(ValidationError, match="duplicates"):
        OrchConfig(agents=["a", "a"])
    with pytest.raises(ValidationError):
        OrchConfig(agents=[])
    with pytest.raises(ValidationError):
        OrchConfig(agents=["a"], k=0)
    with pytest.raises(ValidationError):
        OrchConfig(agents=["a"], letters="abc")


async def test_observations_and_the_feedback_step() -> None:
    out, _, _, store, version = await run(models=hub(analysis="Tentative answer: C", merge="B"))
    obs = observations(out, "B", latency_ms={"gamma": 100.0, "alpha": 300.0})
    assert [(o.agent, o.quality) for o in obs] == [
        ("gamma", 0.0),
        ("alpha", 0.0),
        ("delta", 0.0),
        ("gamma", 1.0),
    ]
    assert obs[0].latency_ms == 100.0 and obs[2].latency_ms is None  # unknown: not updated
    with pytest.raises(ValueError, match="fix:"):
        observations(out, None)
    assert all(o.quality is None for o in observations(out, None, delayed=True))
    with pytest.raises(ValueError, match="finite"):
        observations(out, "B", latency_ms={"gamma": float("nan")})

    p = PipelineBuilder("feedback")
    p.node(
        "f",
        ema_feedback,
        state=p.input("state", str),
        observations=p.input("observations", list[Observation]),
    )
    result = await arun(
        p.build(), {"state": version, "observations": [o.model_dump() for o in obs]}, store=store
    )
    assert result.ok, result.error
    new: EMAState = result.outputs["f"]
    assert new.parent == version
    gamma = new.stats("gamma")
    # gamma had stats but no counts: its first observations initialise, then EMA (alpha 0.2)
    assert gamma.quality == pytest.approx(0.2 * 1.0 + 0.8 * 0.0)
    assert gamma.latency_ms == pytest.approx(100.0)  # only the first carried a latency
    assert new.stats("delta").latency_ms == 5000  # no latency given: unchanged
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["f"]))
    assert rec.output == new.version
    assert apply_feedback(state_where_gamma_leads(), obs).version == new.version


async def test_orch_merge_order_independent() -> None:
    store = MemoryStore()
    version = save_state(store, state_where_gamma_leads())
    p = PipelineBuilder("orch-det")
    p.node(
        "m",
        orch_merge.with_config(agents=AGENTS),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    await assert_order_independent(
        p.build(),
        {"question": "Which?", "state": version},
        store=store,
        services={"models": hub()[0]},
    )


async def test_judge_feedback_gives_quality_only_observations() -> None:
    from routers._orch_merge import judge_feedback

    out, _, _, store, version = await run(models=hub(analysis="Tentative answer: C", merge="B"))

    def judge(request: ChatRequest, model: ModelInfo) -> str:
        return "yes" if "Is B the correct" in request.messages[0].content else "no"

    judge_hub = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": ScriptedClient(judge)})
    p = PipelineBuilder("judged")
    p.node(
        "j",
        judge_feedback.with_config(judge_model="alpha"),
        question=p.input("question", str),
        result=p.input("result", type(out)),
    )
    result = await arun(
        p.build(),
        {"question": "Which?", "result": out.model_dump()},
        store=store,
        services={"models": judge_hub},
    )
    assert result.ok, result.error
    obs = result.outputs["j"].observations
    assert [(o.agent, o.quality) for o in obs] == [
        ("gamma", 0.0),
        ("alpha", 0.0),
        ("delta", 0.0),
        ("gamma", 1.0),
    ]
    assert all(o.ok is None and o.cost_usd is None and o.latency_ms is None for o in obs)
    # quality-only feedback moves quality and nothing else
    before = load_state_ema(store, version)
    after = apply_feedback(before, obs)
    assert after.stats("delta").latency_ms == before.stats("delta").latency_ms
    assert after.stats("delta").quality == pytest.approx(
        0.0
    )  # delta had no quality count: initialises


def load_state_ema(store: MemoryStore, version: str) -> EMAState:
    from routers._state import load_state

    state: EMAState = load_state(store, version, EMAState)
    return state
