"""AMRO-S learning's judge gate asks its verdicts at once (issue 18), and the new pheromone
version and the run's record do not depend on the order the verdicts arrive in.

As in ``test_acar_concurrency``: a gated client releases the calls in an order hypothesis
chooses; the root hash must be the one the sequential code recorded (pinned below, from
before the calls were made concurrently), and the run verifies and replays clean."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from gated_calls import Gate, GatedClient, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry
from orch import Pipeline, PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean
from routers import LearnEntry, PheromoneState, amro_learn, save_state
from traces import MemoryStore, verify_run

REGISTRY = {
    "providers": {"g": {"kind": "simulated"}},
    "models": {"judge": {"provider": "g", "name": "judge", "input_per_mtok": 0.5}},
}
ENTRIES = [
    LearnEntry(
        question=f"question {i}",
        weights={"math": 0.75, "code": 0.25},
        path=[path],
        cost_usd=0.25 * (i + 1),
        answer=answer,
        response=f"the answer is {answer}",
    )
    for i, (path, answer) in enumerate([("cheap", "B"), ("smart", "C"), ("cheap", "A")] * 2)
]
# The root hash the sequential code (before issue 18) recorded with run seed 4.
PINNED = "sha256:0cafbaa4aa43d3bbcaee887533ac52673c853d53d0536c55a985b52a13345602"


def verdict(request: ChatRequest, model: ModelInfo) -> str:
    return "no" if "answer is C" in (request.messages[0].content or "") else "yes"


def pipeline() -> Pipeline:
    p = PipelineBuilder("learn-concurrent")
    p.node(
        "learn",
        amro_learn.with_config(gate="judge", judge_model="judge"),
        state=p.input("state", str),
        entries=p.input("entries", list[LearnEntry]),
    )
    return p.build()


async def run(gate: Gate | None) -> tuple[RunResult, MemoryStore, ModelHub]:
    store = MemoryStore()
    version = save_state(store, PheromoneState())
    client = GatedClient(verdict, gate)
    models = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"g": client})
    inputs = {"state": version, "entries": [e.model_dump() for e in ENTRIES]}

    async def go() -> RunResult:
        return await arun(pipeline(), inputs, store=store, seed=4, services={"models": models})

    return (await (go() if gate is None else gated_run(gate, go))), store, models


async def test_pinned_root_without_a_gate() -> None:
    result, _, _ = await run(None)
    assert result.ok, result.error
    assert result.root_hash == PINNED


async def test_verdicts_are_asked_at_once() -> None:
    gate = Gate([len(ENTRIES)], lambda labels: range(len(labels) - 1, -1, -1))
    result, _, _ = await run(gate)
    assert result.ok, result.error
    assert gate.most_waiting == len(ENTRIES)
    assert result.root_hash == PINNED
    new: PheromoneState = result.outputs["learn"]
    assert set(new.tables) == {"math", "code"}  # the accepted cheap paths deposited


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_root_hash_is_the_same_for_every_completion_order(data: st.DataObject) -> None:
    def chosen(labels: list[str]) -> Sequence[int]:
        return data.draw(st.permutations(range(len(labels))), label="release order")

    async def check() -> None:
        result, store, models = await run(Gate([len(ENTRIES)], chosen))
        assert result.ok, result.error
        assert result.root_hash == PINNED
        assert verify_run(store, result.run_id).ok
        await aassert_replays_clean(
            result, store=store, pipeline=pipeline(), services={"models": models}
        )

    anyio.run(check)
