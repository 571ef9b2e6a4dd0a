"""ORCH's concurrent calls (issue 18): the panel's analysts, and the judge's verdicts in
:func:`judge_feedback`, are asked at once, and the run's record does not depend on the
order their calls complete in.

As in ``test_acar_concurrency``: a gated client releases each stage's calls in an order
hypothesis chooses, and the root hash must be the one the sequential code recorded (pinned
below, from before the calls were made concurrently); the run verifies and replays clean."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest
from gated_calls import Gate, GatedClient, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry
from orch import Pipeline, PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean
from routers import EMAState, save_state
from routers._ema import AgentStats
from routers._orch_merge import Analysis, OrchMergeResult, judge_feedback, orch_merge
from traces import MemoryStore, verify_run

AGENTS = ["alpha", "beta", "gamma", "delta"]
REGISTRY = {
    "providers": {"g": {"kind": "simulated"}},
    "models": {
        a: {"provider": "g", "name": a, "input_per_mtok": p, "output_per_mtok": 3 * p}
        for a, p in zip(AGENTS, (1.3, 0.7, 2.9, 0.11), strict=True)
    },
}
QUESTION = "Which? A) x B) y C) z D) w"


def state() -> EMAState:
    # panel scores: gamma 0.89, alpha 0.47 (defaults), delta 0.40, beta 0.24
    return EMAState(
        agents={
            "beta": AgentStats(quality=0.2, latency_ms=1000, stability=1.0),
            "gamma": AgentStats(quality=0.9, latency_ms=1000, stability=1.0, cost_usd=0.001),
            "delta": AgentStats(quality=0.6, latency_ms=5000, stability=1.0),
        }
    )


def answer(request: ChatRequest, model: ModelInfo) -> str:
    prompt = request.messages[0].content or ""
    if prompt.startswith("Split the question"):
        return "1. What concept?\n2. Which options go?\n3. Does B hold?"
    if prompt.startswith("Analyse"):
        return f"{model.name} thinks hard. Tentative answer: {'BCD'[len(model.name) % 3]}"
    if prompt.startswith("Is "):
        return "yes" if prompt.startswith("Is B ") else "no"
    return "B"


def analyst_fails(name: str) -> Callable[[ChatRequest, ModelInfo], bool]:
    def fails(request: ChatRequest, model: ModelInfo) -> bool:
        prompt = request.messages[0].content or ""
        return model.name == name and prompt.startswith("Analyse")

    return fails


def decompose_fails(request: ChatRequest, model: ModelInfo) -> bool:
    return (request.messages[0].content or "").startswith("Split the question")


def merge_pipeline(**cfg: Any) -> Pipeline:
    p = PipelineBuilder("orch-concurrent")
    p.node(
        "m",
        orch_merge.with_config(**({"agents": AGENTS} | cfg)),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    return p.build()


def judge_pipeline() -> Pipeline:
    p = PipelineBuilder("orch-judged")
    p.node(
        "j",
        judge_feedback.with_config(judge_model="beta"),
        question=p.input("question", str),
        result=p.input("result", OrchMergeResult),
    )
    return p.build()


def judged_result(version: str) -> OrchMergeResult:
    analyses = [
        Analysis(agent=a, subquestion="s", text=f"Tentative answer: {t}", tentative=t)
        for a, t in (("gamma", "D"), ("alpha", "B"), ("delta", "C"))
    ]
    return OrchMergeResult(
        answer="B",
        panel=["gamma", "alpha", "delta"],
        merger="gamma",
        subquestions=["s"] * 3,
        decomposition="model",
        analyses=analyses,
        merge_text="B",
        merge_cost_usd=0.0,
        cost_usd=0.0,
        state_version=version,
    )


# name: (pipeline config or None for the judge, failing calls, the calls of each stage)
Fails = Callable[[ChatRequest, ModelInfo], bool] | None
SCENARIOS: dict[str, tuple[dict[str, Any] | None, Fails, list[int]]] = {
    "panel": ({}, None, [1, 3, 1]),
    "panel-of-four": ({"k": 4}, None, [1, 4, 1]),
    "analyst-fails": ({}, analyst_fails("alpha"), [1, 3, 1]),
    "fallback": ({}, decompose_fails, [1, 3, 1]),
    "judge-feedback": (None, None, [3]),
}

# Root hashes of the scenarios as the sequential code (before issue 18) recorded them, with
# run seed 2: concurrency must not change a byte of the record.
PINNED = {
    "panel": "sha256:7f90d66655d99d1ca883d3d51614bd6df5602cb8d299435cd17c5b6afeb058ef",
    "panel-of-four": "sha256:2862f9069ea373b83031f7d1e4132323adb2dcf04d1d7a3959dd0430e60faba2",
    "analyst-fails": "sha256:413fbe0993315da2c89c45437fd0a563b8c50e034e65d4eae0b9fb5ff7bcab06",
    "fallback": "sha256:eb2d66bc9dfedf00ba94bab76303651fa810be6063be6a202c7c45472560f4fc",
    "judge-feedback": "sha256:96268ebdf5bac0a007c8c88129bb9788b287685c2b831b9b3cf6e687859bf508",
}


def pipeline_of(name: str) -> Pipeline:
    cfg = SCENARIOS[name][0]
    return judge_pipeline() if cfg is None else merge_pipeline(**cfg)


async def run_scenario(name: str, gate: Gate | None) -> tuple[RunResult, MemoryStore, ModelHub]:
    cfg, fails, _ = SCENARIOS[name]
    store = MemoryStore()
    version = save_state(store, state())
    client = GatedClient(answer, gate, fails=fails)
    models = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"g": client})
    if cfg is None:
        inputs: dict[str, Any] = {"question": QUESTION, "result": judged_result(version)}
    else:
        inputs = {"question": QUESTION, "state": version}
    p = pipeline_of(name)

    async def go() -> RunResult:
        return await arun(p, inputs, store=store, seed=2, services={"models": models})

    return (await (go() if gate is None else gated_run(gate, go))), store, models


async def sequential_roots() -> dict[str, str]:
    """The scenarios' root hashes with calls that answer at once (how PINNED was made)."""
    return {name: (await run_scenario(name, None))[0].root_hash for name in SCENARIOS}


def reversed_order(labels: list[str]) -> Sequence[int]:
    return range(len(labels) - 1, -1, -1)


async def test_pinned_roots_without_a_gate() -> None:
    assert await sequential_roots() == PINNED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_calls_overlap_and_complete_in_reverse(name: str) -> None:
    stages = SCENARIOS[name][2]
    gate = Gate(stages, reversed_order)
    result, store, models = await run_scenario(name, gate)
    assert result.ok, result.error
    assert gate.most_waiting == max(stages)
    assert result.root_hash == PINNED[name]
    assert verify_run(store, result.run_id).ok
    await aassert_replays_clean(
        result, store=store, pipeline=pipeline_of(name), services={"models": models}
    )


async def test_analyses_keep_panel_order_and_a_failed_one_is_marked() -> None:
    gate = Gate(SCENARIOS["analyst-fails"][2], reversed_order)
    result, _, _ = await run_scenario("analyst-fails", gate)
    plain, _, _ = await run_scenario("analyst-fails", None)
    out = result.outputs["m"]
    assert [(a.agent, a.ok) for a in out.analyses] == [
        ("gamma", True),
        ("alpha", False),
        ("delta", True),
    ]
    assert "a scripted failure" in out.analyses[1].text
    assert out.cost_usd == plain.outputs["m"].cost_usd  # summed in call order: same bits
    # the released order was the reverse of the call order in each stage
    assert gate.released[1:4] == gate.arrivals[1:4][::-1]


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_root_hash_is_the_same_for_every_completion_order(name: str, data: st.DataObject) -> None:
    def chosen(labels: list[str]) -> Sequence[int]:
        return data.draw(st.permutations(range(len(labels))), label=f"release {labels}")

    async def check() -> None:
        gate = Gate(SCENARIOS[name][2], chosen)
        result, store, models = await run_scenario(name, gate)
        assert result.ok, result.error
        assert result.root_hash == PINNED[name]
        assert verify_run(store, result.run_id).ok
        await aassert_replays_clean(
            result, store=store, pipeline=pipeline_of(name), services={"models": models}
        )

    anyio.run(check)
