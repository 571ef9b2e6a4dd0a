"""AMRO-S serving and learning agents: intent weights, transition evidence against hand
computation, seeded sampling and exploit mode, multi-layer routes, the trajectory buffer, the
quality gates, deposits, versions, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import PipelineBuilder, arun
from orch.testing import assert_order_independent
from routers import (
    AMROConfig,
    AMROParams,
    AMROResult,
    LearnEntry,
    NearestExamples,
    PheromoneState,
    TrajectoryBuffer,
    amro_learn,
    amro_router,
    save_state,
)
from traces import Decision, MemoryStore, StepRecord

EXAMPLES = [
    {"text": "integrate the function and solve the equation", "task": "math"},
    {"text": "prove the theorem about prime numbers", "task": "math"},
    {"text": "write a python function that sorts a list", "task": "code"},
    {"text": "fix the bug in this javascript code", "task": "code"},
]
NODES = [
    {"name": "cheap", "model": "cheap", "ability": {"math": 0.2, "code": 0.8}, "latency_s": 1.0},
    {"name": "smart", "model": "smart", "ability": {"math": 0.9, "code": 0.6}, "latency_s": 3.0},
]
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        "cheap": {"provider": "s", "name": "cheap", "input_per_mtok": 1.0, "output_per_mtok": 1.0},
        "smart": {
            "provider": "s",
            "name": "smart",
            "input_per_mtok": 10.0,
            "output_per_mtok": 10.0,
        },
        "judge": {"provider": "s", "name": "judge"},
    },
}


def hub(judge: str = "yes") -> tuple[ModelHub, ScriptedClient]:
    def script(request: ChatRequest, model: ModelInfo) -> str:
        if model.name == "judge":
            return judge
        return f"{model.name} says the answer is B"

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


def serving(**cfg: Any) -> Any:
    config = {"layers": [NODES], "intent_examples": EXAMPLES} | cfg
    p = PipelineBuilder("amro")
    p.node(
        "route",
        amro_router.with_config(**config),
        question=p.input("question", str),
        state=p.input("state", str),
        load=p.input("load", dict[str, float]),
    )
    return p.build()


async def serve(
    question: str,
    state: PheromoneState | None = None,
    seed: int = 0,
    load: dict | None = None,
    **cfg: Any,
) -> tuple[AMROResult, list[Decision], ScriptedClient, MemoryStore]:
    store = MemoryStore()
    version = save_state(store, state or PheromoneState())
    models, client = hub()
    result = await arun(
        serving(**cfg),
        {"question": question, "state": version, "load": load or {}},
        store=store,
        seed=seed,
        services={"models": models},
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    decisions = [Decision.model_validate(store.get_value(k)) for k in rec.decisions]
    return result.outputs["route"], decisions, client, store


def test_intent_weights() -> None:
    ne = NearestExamples([(e["text"], e["task"]) for e in EXAMPLES], k=2)
    w = ne.infer("solve this equation")
    assert w == {"code": 0.0, "math": 1.0}
    assert ne.infer("zebra") == {"code": 0.5, "math": 0.5}  # no overlap: uniform
    smooth = NearestExamples([(e["text"], e["task"]) for e in EXAMPLES], k=2, smoothing=0.2)
    assert smooth.infer("solve this equation") == pytest.approx({"code": 0.1, "math": 0.9})
    with pytest.raises(ValueError, match="labelled examples"):
        NearestExamples([])


async def test_decision_evidence_matches_hand_computation() -> None:
    # Pure math query: w = {math: 1}. Fresh state: tau = 1 on every edge.
    # eta = 0.5*ability + 0.25/(1+load) + 0.25/(1+latency)
    #   cheap: 0.5*0.2 + 0.25 + 0.125 = 0.475      smart: 0.5*0.9 + 0.25 + 0.0625 = 0.7625
    # alpha=1, beta=2: weights 0.475^2 = 0.225625 and 0.7625^2 = 0.58140625
    out, decisions, _, store = await serve("solve this equation", exploit=True)
    (d,) = decisions
    rows = {r["name"]: r for r in d.evidence["candidates"]}
    assert d.evidence["weights"] == {"code": 0.0, "math": 1.0}
    assert rows["cheap"]["eta"] == pytest.approx(0.475)
    assert rows["smart"]["eta"] == pytest.approx(0.7625)
    total = 0.225625 + 0.58140625
    assert d.scores["smart"] == pytest.approx(0.58140625 / total)
    assert d.scores["cheap"] == pytest.approx(0.225625 / total)
    assert d.chosen == ["smart"] and d.evidence["draw"] is None  # exploit: argmax, no draw
    assert d.state_version == out.state_version and store.has(d.state_version)
    assert d.parameters["alpha"] == 1.0 and d.parameters["beta"] == 2.0
    assert out.path == ["smart"] and out.answer == "B" and out.cost_usd > 0


async def test_pheromone_and_load_shift_the_choice() -> None:
    strong = PheromoneState(tables={"math": {"^->cheap": 10.0}})
    out, _decisions, _, _ = await serve("solve this equation", strong, exploit=True)
    # cheap: 10 * 0.225625 = 2.25625 > smart: 1 * 0.58140625
    assert out.path == ["cheap"]
    loaded, _, _, _ = await serve("solve this equation", exploit=True, load={"smart": 50.0})
    # smart eta = 0.45 + 0.25/51 + 0.0625 = 0.51740...; squared 0.2677 > 0.225625: still smart
    assert loaded.path == ["smart"]
    load_first = AMROParams(heuristic_weights=(0.1, 0.8, 0.1))
    swamped, _, _, _ = await serve(
        "solve this equation",
        PheromoneState(params=load_first),
        exploit=True,
        load={"smart": 50.0, "cheap": 0.0},
        params=load_first,
    )
    assert swamped.path == ["cheap"]  # when load dominates the heuristic, the idle node wins


async def test_sampling_uses_the_step_rng_reproducibly() -> None:
    picks = set()
    for seed in range(12):
        a, da, _, _ = await serve("solve this equation", seed=seed)
        b, db, _, _ = await serve("solve this equation", seed=seed)
        assert a.path == b.path and da[0].evidence["draw"] == db[0].evidence["draw"]
        draw = da[0].evidence["draw"]
        assert 0.0 <= draw < 1.0
        # the draw picks cheap exactly when it falls below cheap's probability (listed first)
        assert (a.path == ["cheap"]) == (draw < da[0].scores["cheap"])
        picks.add(a.path[0])
    assert picks == {"cheap", "smart"}


async def test_two_layers_route_and_refine() -> None:
    reviewers = [
        {"name": "rev-a", "model": "cheap", "role": "Check the answer."},
        {"name": "rev-b", "model": "smart", "role": "Check the answer."},
    ]
    out, decisions, client, _ = await serve("write a python function", layers=[NODES, reviewers])
    assert len(decisions) == 2 and len(out.path) == 2
    assert decisions[1].parameters["from"] == out.path[0]
    second_prompt = client.calls[1][1].messages[0].content
    assert (
        second_prompt.startswith("Check the answer.") and "previous stage answered" in second_prompt
    )


async def test_config_params_must_match_the_state() -> None:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    models, _ = hub()
    result = await arun(
        serving(params=AMROParams(alpha=2.0)),
        {"question": "q", "state": version, "load": {}},
        store=store,
        services={"models": models},
    )
    assert not result.ok and "fix: route with a state made with these" in result.error.message


def test_config_bad_input() -> None:
    with pytest.raises(ValidationError, match="intent examples"):
        AMROConfig(layers=[NODES])
    with pytest.raises(ValidationError, match="layer 0 has no agent nodes"):
        AMROConfig(layers=[[]], intent_examples=EXAMPLES)
    with pytest.raises(ValidationError, match="unique"):
        AMROConfig(layers=[NODES, NODES], intent_examples=EXAMPLES)
    with pytest.raises(ValidationError, match="ability priors"):
        AMROConfig(
            layers=[[{"name": "x", "model": "m", "ability": {"math": float("nan")}}]],
            intent_examples=EXAMPLES,
        )
    with pytest.raises(ValidationError):
        AMROParams(rho=1.5)


async def test_bad_load_and_missing_state_fail_clearly() -> None:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    models, _ = hub()
    for load, state, expect in (
        ({"ghost": 1.0}, version, "unknown nodes"),
        ({"cheap": -1.0}, version, "finite and >= 0"),
        ({}, "sha256:" + "0" * 64, "not in the run's store"),
    ):
        result = await arun(
            serving(),
            {"question": "q", "state": state, "load": load},
            store=store,
            services={"models": models},
        )
        assert not result.ok and result.error is not None and expect in result.error.message
        assert "route" not in result.outputs


# -- learning ------------------------------------------------------------------------------


def entry(path: str, answer: str, gold: str | None, cost: float = 0.5) -> LearnEntry:
    return LearnEntry(
        question=f"q-{path}-{answer}",
        weights={"math": 1.0},
        path=[path],
        cost_usd=cost,
        answer=answer,
        gold=gold,
    )


async def learn(entries: list[LearnEntry], gate: str = "gold", judge: str = "yes") -> Any:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    p = PipelineBuilder("learn")
    cfg = {"gate": gate} | ({"judge_model": "judge"} if gate == "judge" else {})
    p.node(
        "learn",
        amro_learn.with_config(**cfg),
        state=p.input("state", str),
        entries=p.input("entries", list[LearnEntry]),
    )
    models, client = hub(judge)
    result = await arun(
        p.build(),
        {"state": version, "entries": [e.model_dump() for e in entries]},
        store=store,
        services={"models": models},
    )
    return result, version, store, client


async def test_gold_gate_deposits_on_accepted_paths_only() -> None:
    result, version, store, _ = await learn([entry("cheap", "B", "B"), entry("smart", "C", "B")])
    assert result.ok, result.error
    new: PheromoneState = result.outputs["learn"]
    # accepted cheap path: (1 - 0.1) * 1 + 1 * 1 / (0.5 + 1e-6) = 2.899996; rejected: untouched
    assert new.tables == {"math": {"^->cheap": pytest.approx(0.9 + 1 / (0.5 + 1e-6))}}
    assert new.parent == version
    out_key = StepRecord.model_validate(store.get_value(dict(result.record.steps)["learn"])).output
    assert out_key == new.version  # the step's output artifact is the new state version
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["learn"]))
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    assert decision.chosen == ["#0"] and decision.state_version == version


async def test_gold_gate_needs_gold_labels() -> None:
    result, *_ = await learn([entry("cheap", "B", "B"), entry("smart", "C", None)])
    assert not result.ok
    assert "no gold label for entries [1]" in result.error.message
    assert "learn" not in result.outputs


async def test_judge_gate() -> None:
    accepted, _, _, client = await learn([entry("cheap", "B", None)], gate="judge", judge="Yes.")
    assert accepted.outputs["learn"].tables != {} and len(client.calls) == 1
    rejected, *_ = await learn([entry("cheap", "B", None)], gate="judge", judge="No, wrong.")
    assert rejected.outputs["learn"].tables == {}
    unreadable, *_ = await learn([entry("cheap", "B", None)], gate="judge", judge="maybe")
    assert unreadable.outputs["learn"].tables == {}  # never reinforce an unvouched path


def test_buffer_fills_samples_and_flushes() -> None:
    buf = TrajectoryBuffer(3)
    assert buf.add(entry("a", "B", "B")) is None and buf.add(entry("b", "B", "B")) is None
    batch = buf.add(entry("c", "B", "B"))
    assert batch is not None and [e.path[0] for e in batch] == ["a", "b", "c"]
    assert buf.pending == []
    half = TrajectoryBuffer(1000, sample_rate=0.5, seed=1)
    kept = [half.sampled(entry(str(i), "B", "B")) for i in range(400)]
    assert 150 < sum(kept) < 250
    assert kept == [
        TrajectoryBuffer(1000, sample_rate=0.5, seed=1).sampled(entry(str(i), "B", "B"))
        for i in range(400)
    ]
    with pytest.raises(ValueError, match="capacity"):
        TrajectoryBuffer(0)
    with pytest.raises(ValueError, match="sample_rate"):
        TrajectoryBuffer(3, sample_rate=0.0)


async def test_serving_is_order_independent() -> None:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    models, _ = hub()
    await assert_order_independent(
        serving(layers=[NODES, NODES[:1] and [dict(NODES[0], name="second")]]),
        {"question": "write a python function", "state": version, "load": {}},
        store=store,
        services={"models": models},
        seed=3,
    )


async def test_learning_gives_the_same_version_twice_and_depends_on_order() -> None:
    batch = [entry("cheap", "B", "B", cost=0.2), entry("smart", "B", "B", cost=0.9)]
    a, *_ = await learn(batch)
    b, *_ = await learn(batch)
    assert a.outputs["learn"].version == b.outputs["learn"].version
    assert a.root_hash == b.root_hash
    swapped, *_ = await learn(list(reversed(batch)))
    # different edges: order does not matter here (each edge is touched once) ...
    assert swapped.outputs["learn"].tables == a.outputs["learn"].tables
    same_edge = [entry("cheap", "B", "B", cost=0.2), entry("cheap", "B", "B", cost=0.9)]
    x, *_ = await learn(same_edge)
    y, *_ = await learn(list(reversed(same_edge)))
    # ... but evaporation makes repeated deposits on one edge order-sensitive, which is why a
    # batch is applied in input order whatever order its runs finished in
    assert x.outputs["learn"].version != y.outputs["learn"].version


class FixedIntent:
    task_types = ("code", "math")

    def infer(self, text: str) -> dict[str, float]:
        return {"math": 0.25, "code": 0.75}


async def test_pluggable_intent_model_and_bad_weights() -> None:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    models, _ = hub()
    p = serving(intent_service="intent", intent_examples=[])
    result = await arun(
        p,
        {"question": "solve this equation", "state": version, "load": {}},
        store=store,
        services={"models": models, "intent": FixedIntent()},
    )
    assert result.ok, result.error
    assert result.outputs["route"].weights == {"code": 0.75, "math": 0.25}

    class Broken(FixedIntent):
        def infer(self, text: str) -> dict[str, float]:
            return {"math": 0.5, "code": 0.2}

    bad = await arun(
        p,
        {"question": "q", "state": version, "load": {}},
        store=store,
        services={"models": models, "intent": Broken()},
    )
    assert bad.error is not None and "must sum to 1" in bad.error.message
