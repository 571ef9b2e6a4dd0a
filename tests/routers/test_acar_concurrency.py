"""ACAR's concurrent calls (issue 18): its probes, verifiers and ensemble answers are made at
once, and the run's record does not depend on the order they complete in.

A gated model client holds every call until a releaser lets it go, in an order hypothesis
chooses; the root hash must be the one the sequential code recorded (pinned below, from
before the calls were made concurrently), and the run must verify and replay clean. The
gate also proves the calls overlap: it waits for all of a stage's calls at once, and says so
when they never wait together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio
import orjson
import pytest
from gated_calls import Gate, GatedClient, GateError, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry
from orch import Pipeline, PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean
from routers._acar import acar
from traces import MemoryStore, StepRecord, verify_run

REGISTRY = {
    "providers": {"g": {"kind": "simulated"}},
    "models": {
        m: {"provider": "g", "name": m, "input_per_mtok": p, "output_per_mtok": 2 * p}
        for m, p in (("probe", 0.3), ("alpha", 1.1), ("beta", 2.7), ("judge", 0.7))
    },
}


def pipeline(**cfg: Any) -> Pipeline:
    config = {
        "probe_model": "probe",
        "ensemble": ["probe", "alpha", "beta"],
        "judge_model": "judge",
    }
    p = PipelineBuilder("acar-concurrent")
    p.node("route", acar.with_config(**(config | cfg)), question=p.input("question", str))
    return p.build()


def script(replies: dict[tuple[str, int], str], judge: str = "Response 2") -> Any:
    def answer(request: ChatRequest, model: ModelInfo) -> str:
        if (request.messages[0].content or "").startswith("Several assistants"):
            return judge
        return replies[(model.name, request.sample)]

    return answer


# name: (config, replies, the calls of each stage, the mode)
SCENARIOS: dict[str, tuple[dict[str, Any], dict[tuple[str, int], str], list[int], str]] = {
    "single": ({}, {("probe", i): "answer is A" for i in range(3)}, [3], "single"),
    "two-model": (
        {},
        {("probe", 0): "A", ("probe", 1): "B", ("probe", 2): "A", ("alpha", 0): "B"}
        | {("beta", 0): "B"},
        [3, 2],
        "two-model",
    ),
    "full": (
        {},
        {("probe", 0): "A", ("probe", 1): "B", ("probe", 2): "C", ("alpha", 0): "D"}
        | {("beta", 0): "B"},
        [3, 3, 1],
        "full",
    ),
    "five-probes": (
        {"n_probes": 5},
        {("probe", i): "A" if i % 2 else "B" for i in range(5)}
        | {("alpha", 0): "B", ("beta", 0): "A"},
        [5, 2],
        "two-model",
    ),
    "full-no-probes": (
        {"fixed_mode": "full-no-probes"},
        {("probe", 0): "A", ("alpha", 0): "D", ("beta", 0): "B"},
        [3, 1],
        "full",
    ),
}

# Root hashes of the scenarios as the sequential code (before issue 18) recorded them, with
# run seed 3 and the question below: concurrency must not change a byte of the record.
PINNED = {
    "single": "sha256:17f20b5565fa149bbadcdfebfc83208b26f0c29ba0e0ea662fe8ec1c6897be0a",
    "two-model": "sha256:b7a5a5d3a7a122d0c6474223eb51837703d0d5f43f2459e0d5c64b4cd807d538",
    "full": "sha256:595aba6a47fdded7c96b917dd5283114d2620facce20e13ec217b9ac752c1f35",
    "five-probes": "sha256:189fea9e333f0c8670d6efd77f30a709eeb915045e9034c9dd104816e3aa448b",
    "full-no-probes": "sha256:c44cc84c1adb88699bbc1940d068014d08dbae246a74c427a615eae5b1bbc619",
}
PINNED_FAILURE = "sha256:636ea8b5a598c19fc1522c80ee7cd1d773d0af34d611b0340e6e67989093f334"
QUESTION = {"question": "Which one? A) x B) y C) z D) w"}


async def run_scenario(
    name: str, gate: Gate | None, store: MemoryStore | None = None
) -> tuple[RunResult, MemoryStore, ModelHub]:
    cfg, replies, _, _ = SCENARIOS[name]
    store = store or MemoryStore()
    models = ModelHub(
        ModelRegistry.from_dict(REGISTRY), clients={"g": GatedClient(script(replies), gate)}
    )
    p = pipeline(**cfg)

    async def go() -> RunResult:
        return await arun(p, QUESTION, store=store, seed=3, services={"models": models})

    result = await (go() if gate is None else gated_run(gate, go))
    return result, store, models


def in_order(labels: list[str]) -> Sequence[int]:
    return range(len(labels))


def reversed_order(labels: list[str]) -> Sequence[int]:
    return range(len(labels) - 1, -1, -1)


async def sequential_roots() -> dict[str, str]:
    """The scenarios' root hashes with calls that answer at once (how PINNED was made)."""
    return {name: (await run_scenario(name, None))[0].root_hash for name in SCENARIOS}


def effect_completion_order(store: MemoryStore, result: RunResult) -> list[int]:
    """Effect indexes of the step in the order their calls ended (the event log's order)."""
    events = [orjson.loads(line) for line in store.read_events(result.run_id)]
    return [e["data"]["index"] for e in events if e["type"] == "effect"]


async def test_pinned_roots_without_a_gate() -> None:
    assert await sequential_roots() == PINNED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_calls_of_a_stage_overlap_and_complete_in_any_order(name: str) -> None:
    _, _, stages, mode = SCENARIOS[name]
    gate = Gate(stages, reversed_order)
    result, store, models = await run_scenario(name, gate)
    assert result.ok, result.error
    assert result.outputs["route"].mode == mode
    assert gate.most_waiting == max(stages)  # a stage's calls all waited at once
    completed = effect_completion_order(store, result)
    # the calls ended in the reverse order of each stage, yet their indexes are in call order
    first = stages[0]
    assert completed[:first] == list(range(first - 1, -1, -1))
    assert result.root_hash == PINNED[name]
    assert verify_run(store, result.run_id).ok
    await aassert_replays_clean(
        result, store=store, pipeline=pipeline(**SCENARIOS[name][0]), services={"models": models}
    )


async def test_models_invoked_and_cost_are_in_call_order() -> None:
    gate = Gate(SCENARIOS["full"][2], reversed_order)
    result, _, _ = await run_scenario("full", gate)
    plain, _, _ = await run_scenario("full", None)
    out = result.outputs["route"]
    assert out.models_invoked == ["probe"] * 3 + ["probe", "alpha", "beta", "judge"]
    assert out.cost_usd == plain.outputs["route"].cost_usd  # summed in call order: same bits


async def test_sequential_calls_are_caught_by_the_gate() -> None:
    """Guard against a vacuous gate: calls made one after another never wait together."""
    gate = Gate([2], in_order)

    async def one_by_one() -> None:
        client = GatedClient(lambda r, m: "x", gate)
        info = ModelRegistry.from_dict(REGISTRY).model("probe")
        for sample in range(2):
            await client.complete(ChatRequest(model="probe", messages=[], sample=sample), info)

    with pytest.raises(GateError, match="only 1 of 2 calls"):
        await gated_run(gate, one_by_one)


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
            result,
            store=store,
            pipeline=pipeline(**SCENARIOS[name][0]),
            services={"models": models},
        )

    anyio.run(check)


def _failing(sample: int) -> Callable[[ChatRequest, ModelInfo], bool]:
    return lambda request, model: model.name == "probe" and request.sample == sample


async def failing_run(gate: Gate | None) -> tuple[RunResult, MemoryStore]:
    """ACAR whose second probe fails for good (a non-retryable provider error)."""
    client = GatedClient(script(SCENARIOS["single"][1]), gate, fails=_failing(1))
    models = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"g": client})
    store = MemoryStore()

    async def go() -> RunResult:
        return await arun(pipeline(), QUESTION, store=store, seed=3, services={"models": models})

    return (await (go() if gate is None else gated_run(gate, go))), store


async def test_a_failed_probe_fails_the_step_with_its_own_error() -> None:
    """A failure stops no other call: every probe runs to its end, then the failure is
    raised as it was (no exception group); the record is the same whatever order the probes
    end in (that of the probes made in turn, each failure caught), and replays clean."""
    for gate in (None, Gate([3], in_order), Gate([3], reversed_order)):
        result, store = await failing_run(gate)
        assert not result.ok and result.error is not None
        assert result.error.type == "agents.models.retrying.ProviderError"
        assert "a scripted failure" in result.error.message
        rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
        assert len(rec.effects) == 3  # probe 2 ran too, after probe 1 failed
        assert result.root_hash == PINNED_FAILURE
        assert verify_run(store, result.run_id).ok
        client = GatedClient(script(SCENARIOS["single"][1]), None, fails=_failing(1))
        models = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"g": client})
        await aassert_replays_clean(
            result, store=store, pipeline=pipeline(), services={"models": models}
        )
