"""The baselines' concurrent fan-outs (issue 18): majority-vote's models, the cascade's weak
samples, agreement-cascade's probes and the oracle's models are asked at once, and the run's
record does not depend on the order their calls complete in.

As in ``test_acar_concurrency``: a gated client holds every call until a releaser lets it
go, in an order the test (or hypothesis) chooses. The gate proves a fan-out's calls overlap
(they all wait at it together); the effects must still be numbered in call order, the
decision and outputs be the sequential code's, and the root hash be the one the sequential
code recorded.

How ``PINNED`` was made: the root hashes are those of :func:`plain_roots` (calls that answer
at once, no gate) run against the sequential ``routers/baselines.py`` of commit 5743bfd,
before ``_Caller.ask_all`` existed (each fan-out awaited its calls one after another)::

    git -C /work/main worktree add --detach /tmp/seqtree 5743bfd
    cp tests/routers/test_baselines_concurrency.py /tmp/seqtree/tests/routers/
    cd /tmp/seqtree && PYTHONPATH=/tmp/seqtree:/tmp/seqtree/tests/fixtures python -c \\
        "import anyio, sys; sys.path.insert(0, 'tests/routers'); \\
         import test_baselines_concurrency as t; print(anyio.run(t.plain_roots))"
    git -C /work/main worktree remove --force /tmp/seqtree  # the copied test is untracked

(``routers.baselines.__file__`` was checked to be the worktree's.) Concurrency must not
change a byte of the record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import pytest
from gated_calls import Gate, GatedClient, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry
from orch import Pipeline, PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean
from routers.baselines import Routed, agreement_cascade, cascade, majority_vote, oracle
from traces import Decision, EffectRecord, MemoryStore, StepRecord, verify_run

# Prices with no round sums, so that a cost added up in another order could show in its bits.
PRICES = {"ant": 0.37, "bee": 1.13, "cat": 2.71, "dog": 0.53, "eel": 4.19}
REGISTRY = {
    "providers": {"g": {"kind": "simulated"}},
    "models": {
        m: {"provider": "g", "name": m, "input_per_mtok": p, "output_per_mtok": 2 * p}
        for m, p in PRICES.items()
    },
}
QUESTION = "Which one? A) x B) y C) z D) w"
SEED = 3


@dataclass(frozen=True)
class Scenario:
    """A baseline, its config and scripted replies, and what it must decide."""

    agent: Any
    config: dict[str, Any]
    replies: dict[tuple[str, int], str]
    """``(model, sample)``: the reply text (lengths differ, so costs differ per call)."""
    fan_out: list[tuple[str, int]]
    """The ``(model, sample)`` calls made at once, in call order."""
    stages: list[int]
    """Calls per stage at the gate: the fan-out, then a lone escalation call if any."""
    answer: str
    chosen: list[str]
    models_invoked: list[str]
    gold: str | None = None
    inputs: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        gold = {} if self.gold is None else {"gold": self.gold}
        object.__setattr__(self, "inputs", {"question": QUESTION} | gold)


SCENARIOS: dict[str, Scenario] = {
    # A and B have two votes each: the tie goes to A, the answer of ant (listed first).
    "majority-tie": Scenario(
        majority_vote,
        {"models": ["ant", "bee", "cat", "dog"]},
        {
            ("ant", 0): "The answer is A.",
            ("bee", 0): "Answer: B",
            ("cat", 0): "I'd go with option B, on balance.",
            ("dog", 0): "A",
        },
        [("ant", 0), ("bee", 0), ("cat", 0), ("dog", 0)],
        [4],
        answer="A",
        chosen=["ant", "dog"],
        models_invoked=["ant", "bee", "cat", "dog"],
    ),
    "majority-clear": Scenario(
        majority_vote,
        {"models": ["ant", "bee", "cat"]},
        {("ant", 0): "C", ("bee", 0): "The answer is D.", ("cat", 0): "answer: D, surely"},
        [("ant", 0), ("bee", 0), ("cat", 0)],
        [3],
        answer="D",
        chosen=["bee", "cat"],
        models_invoked=["ant", "bee", "cat"],
    ),
    # 4 of 5 samples agree on A (0.8 >= 0.6). The samples are no palindrome, so samples
    # recorded in completion order would show. (Calls accounted in completion order would
    # not: they are all the weak model's, and the cost is a math.fsum, exact in any order.)
    "cascade-accepted": Scenario(
        cascade,
        {"weak": "ant", "strong": "eel", "n_samples": 5, "threshold": 0.6},
        {
            ("ant", 0): "A",
            ("ant", 1): "The answer is C.",
            ("ant", 2): "answer is A, I think",
            ("ant", 3): "(A)",
            ("ant", 4): "Answer: A",
        },
        [("ant", i) for i in range(5)],
        [5],
        answer="A",
        chosen=["ant"],
        models_invoked=["ant"] * 5,
    ),
    # 2 of 5 agree on A (0.4 < 0.6): eel answers.
    "cascade-escalated": Scenario(
        cascade,
        {"weak": "ant", "strong": "eel", "n_samples": 5, "threshold": 0.6},
        {
            ("ant", 0): "A",
            ("ant", 1): "The answer is B.",
            ("ant", 2): "answer: C",
            ("ant", 3): "The answer is A, surely.",
            ("ant", 4): "D",
            ("eel", 0): "The answer is B.",
        },
        [("ant", i) for i in range(5)],
        [5, 1],
        answer="B",
        chosen=["eel"],
        models_invoked=["ant"] * 5 + ["eel"],
    ),
    # agreement-cascade
    "probes-agree": Scenario(
        agreement_cascade,
        {"probes": ["dog", "ant", "bee"], "strong": "eel"},
        {("dog", 0): "C", ("ant", 0): "The answer is C.", ("bee", 0): "Answer: (C), clearly"},
        [("dog", 0), ("ant", 0), ("bee", 0)],
        [3],
        answer="C",
        chosen=["dog"],
        models_invoked=["dog", "ant", "bee"],
    ),
    "probes-disagree": Scenario(
        agreement_cascade,
        {"probes": ["dog", "ant", "bee"], "strong": "eel"},
        {
            ("dog", 0): "C",
            ("ant", 0): "The answer is C.",
            ("bee", 0): "Answer: D",
            ("eel", 0): "The answer is D.",
        },
        [("dog", 0), ("ant", 0), ("bee", 0)],
        [3, 1],
        answer="D",
        chosen=["eel"],
        models_invoked=["dog", "ant", "bee", "eel"],
    ),
    # cat, bee and dog are right; dog, listed last, is the cheapest of them (ant, cheaper
    # still, is wrong), so costs accounted to the wrong model would pick another.
    "oracle": Scenario(
        oracle,
        {"models": ["cat", "bee", "ant", "dog"]},
        {
            ("cat", 0): "B",
            ("bee", 0): "The answer is B.",
            ("ant", 0): "A",
            ("dog", 0): "Answer: (B), because B fits best.",
        },
        [("cat", 0), ("bee", 0), ("ant", 0), ("dog", 0)],
        [4],
        answer="B",
        chosen=["dog"],
        models_invoked=["cat", "bee", "ant", "dog"],
        gold="B",
    ),
}

# Root hashes of the scenarios as the sequential code recorded them (see the module
# docstring): concurrency must not change a byte of the record.
PINNED = {
    "majority-tie": "sha256:5edfe52ff085bca68f269a76e110c93787bebdb165531ba124e1e6d01233d476",
    "majority-clear": "sha256:539ab60317200d0408f86509144e739946ebf7bce4379693ec6126e26653a21c",
    "cascade-accepted": "sha256:84d5d978247dfd749b5e97f75853daa21a9d96da67faabe3a0648fdbf2b8f332",
    "cascade-escalated": "sha256:2c147dde362832fca53389680262b0fc490985bce8b0f189a8ccbdd1018e979f",
    "probes-agree": "sha256:bb3ba02a60c3c21b8ffcb115806f583406b47d1b422c263534472c2f632ae4c7",
    "probes-disagree": "sha256:edaf0fa0fad98c165c65f88b374f33a98f7560325ea024a181154846aedb1a05",
    "oracle": "sha256:dd0bfffe5e6528f926e40177666ab5093de7368d2184e0cdcd92b9a250584630",
}


def pipeline(name: str) -> Pipeline:
    s = SCENARIOS[name]
    p = PipelineBuilder("baselines-concurrent")
    refs: dict[str, Any] = {k: p.input(k, str) for k in s.inputs}
    p.node("route", s.agent.with_config(**s.config), **refs)
    return p.build()


def replies(name: str) -> Any:
    script = SCENARIOS[name].replies

    def answer(request: ChatRequest, model: ModelInfo) -> str:
        return script[(model.name, request.sample)]

    return answer


async def run_scenario(
    name: str, gate: Gate | None
) -> tuple[RunResult, MemoryStore, ModelHub, GatedClient]:
    client = GatedClient(replies(name), gate)
    models = ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"g": client})
    store = MemoryStore()
    p = pipeline(name)

    async def go() -> RunResult:
        inputs = SCENARIOS[name].inputs
        return await arun(p, inputs, store=store, seed=SEED, services={"models": models})

    result = await (go() if gate is None else gated_run(gate, go))
    return result, store, models, client


async def plain_roots() -> dict[str, str]:
    """The scenarios' root hashes with calls that answer at once (how PINNED was made)."""
    return {name: (await run_scenario(name, None))[0].root_hash for name in SCENARIOS}


def reversed_order(labels: list[str]) -> Sequence[int]:
    return range(len(labels) - 1, -1, -1)


def step_record(store: MemoryStore, result: RunResult) -> StepRecord:
    return StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))


def decision(store: MemoryStore, result: RunResult) -> Decision:
    (key,) = step_record(store, result).decisions  # one decision per baseline step
    return Decision.model_validate(store.get_value(key))


def effect_calls(store: MemoryStore, result: RunResult) -> list[tuple[str, int]]:
    """``(model, sample)`` of the step's effects, by effect index."""
    calls = []
    for i, key in enumerate(step_record(store, result).effects):
        effect = EffectRecord.model_validate(store.get_value(key))
        assert effect.index == i
        request = store.get_value(effect.request)
        calls.append((effect.target, request["sample"]))
    return calls


def effect_completion_order(store: MemoryStore, result: RunResult) -> list[int]:
    """Effect indexes of the step in the order their calls ended (the event log's order)."""
    events = [orjson.loads(line) for line in store.read_events(result.run_id)]
    return [e["data"]["index"] for e in events if e["type"] == "effect"]


async def check_record(name: str, result: RunResult, store: MemoryStore, models: ModelHub) -> None:
    assert result.ok, result.error
    assert result.root_hash == PINNED[name]
    assert verify_run(store, result.run_id).ok
    await aassert_replays_clean(
        result, store=store, pipeline=pipeline(name), services={"models": models}
    )


async def test_plain_runs_record_the_pinned_roots() -> None:
    assert await plain_roots() == PINNED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_fan_out_overlaps_completes_in_reverse_and_records_in_call_order(
    name: str,
) -> None:
    s = SCENARIOS[name]
    n = len(s.fan_out)
    gate = Gate(s.stages, reversed_order)
    result, store, models, client = await run_scenario(name, gate)
    plain, plain_store, _, _ = await run_scenario(name, None)
    assert result.ok, result.error
    assert plain.ok, plain.error

    # the fan-out's calls all waited at the gate at once, and were let go last one first
    assert gate.most_waiting == n
    assert [c.split(":")[0] for c in gate.arrivals[:n]] == [f"{m}#{i}" for m, i in s.fan_out]
    assert gate.released[:n] == gate.arrivals[:n][::-1]
    assert effect_completion_order(store, result)[:n] == list(range(n - 1, -1, -1))
    # ... yet effect i is the i-th call, as in the plain run
    calls = effect_calls(store, result)
    assert calls[:n] == s.fan_out
    assert calls == effect_calls(plain_store, plain)
    assert len(calls) == sum(s.stages) == len(client.calls)

    out: Routed = result.outputs["route"]
    assert (out.answer, out.chosen, out.models_invoked) == (s.answer, s.chosen, s.models_invoked)
    assert out.cost_usd.hex() == plain.outputs["route"].cost_usd.hex()
    assert out == plain.outputs["route"]
    assert decision(store, result) == decision(plain_store, plain)
    await check_record(name, result, store, models)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_root_hash_is_the_same_for_every_completion_order(name: str, data: st.DataObject) -> None:
    def chosen(labels: list[str]) -> Sequence[int]:
        return data.draw(st.permutations(range(len(labels))), label=f"release {labels}")

    async def check() -> None:
        gate = Gate(SCENARIOS[name].stages, chosen)
        result, store, models, _ = await run_scenario(name, gate)
        assert gate.most_waiting == len(SCENARIOS[name].fan_out)
        await check_record(name, result, store, models)

    anyio.run(check)
