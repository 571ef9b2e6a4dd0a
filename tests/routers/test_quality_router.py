"""The trained model routers as agents: λ and threshold choices with their recorded evidence,
one call to the chosen model, runs that verify and replay, order independence, a tampered
state refused by hash, bad configuration refused."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from test_quality import TRAINERS, examples, train

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import AgentDefinitionError, PipelineBuilder, RunResult, arun
from orch.testing import aassert_replays_clean, assert_order_independent
from routers import (
    ArrayData,
    QualityRouterConfig,
    classifier_router,
    mf_router,
    predict_quality,
    save_state,
    sw_router,
)
from routers._served import _CHECKED
from traces import Decision, MemoryStore, StepRecord, canonical_bytes, verify_run

AGENTS = {"classifier": classifier_router, "MF": mf_router, "SW": sw_router}
ANSWERS = {"cheap": "A", "mid": "B", "dear": "C"}
MATH = "integral algebra derivative equation"
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        m: {"provider": "s", "name": m, "input_per_mtok": 1.0, "output_per_mtok": 1.0}
        for m in ANSWERS
    },
}


def hub(answers: dict[str, str]) -> tuple[ModelHub, ScriptedClient]:
    def script(request: ChatRequest, model: ModelInfo) -> str:
        return f"The answer is {answers[model.name]}."

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


def pipeline(agent: Any) -> Any:
    p = PipelineBuilder("trained")
    p.output(
        "answer",
        p.node("route", agent, question=p.input("question", str), state=p.input("state", str)),
    )
    return p.build()


async def route(
    agent: Any, state: str, store: MemoryStore, question: str = MATH
) -> tuple[RunResult, Any, Decision]:
    models, client = hub(ANSWERS)
    result = await arun(
        pipeline(agent),
        {"question": question, "state": state},
        store=store,
        services={"models": models},
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    assert len(rec.decisions) == 1 and len(client.calls) == 1
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    return result, result.outputs["answer"], decision


@pytest.mark.parametrize("kind", list(AGENTS))
async def test_lambda_trades_predicted_quality_for_cost(kind: str) -> None:
    state = train(kind, examples(("cheap", "mid", "dear")))
    store = MemoryStore()
    version = save_state(store, state)
    q = dict(zip(state.models, predict_quality(state, [MATH])[0], strict=True))
    for lam, expected in ((0.0, max(q, key=q.__getitem__)), (1e6, "cheap")):
        _, out, d = await route(AGENTS[kind].with_config(lam=lam), version, store)
        assert out.chosen == [expected] == d.chosen and out.models_invoked == [expected]
        assert out.answer == ANSWERS[expected]
        assert d.router == f"{kind.lower()}-router" and d.state_version == version
        assert d.candidates == ["cheap", "dear", "mid"]
        assert d.evidence["predicted_quality"] == pytest.approx(q)
        assert d.evidence["mean_cost_usd"] == {"cheap": 1e-4, "dear": 2e-3, "mid": 5e-4}
        assert d.evidence["lam"] == lam and d.parameters["lam"] == lam
        assert d.scores == pytest.approx(
            {m: q[m] - lam * c for m, c in d.evidence["mean_cost_usd"].items()}
        )
        assert f"{expected} has the best q̂ - λ·cost" in d.reason


@pytest.mark.parametrize("kind", list(AGENTS))
async def test_threshold_routes_between_two_models(kind: str) -> None:
    state = train(kind, examples())
    store = MemoryStore()
    version = save_state(store, state)
    q = dict(zip(state.models, predict_quality(state, [MATH])[0], strict=True))
    gap = q["dear"] - q["cheap"]
    low, high = gap - 1e-6, gap + 1e-6
    _, out, d = await route(AGENTS[kind].with_config(threshold=low), version, store)
    assert out.chosen == ["dear"] and d.evidence["strong"] == "dear"
    assert d.evidence["gap"] == pytest.approx(gap) and d.evidence["threshold"] == low
    assert d.scores == pytest.approx(q) and ">= threshold" in d.reason
    _, out, d = await route(AGENTS[kind].with_config(threshold=high), version, store)
    assert out.chosen == ["cheap"] and "< threshold" in d.reason
    # The strong model named: the threshold compares q̂(cheap) - q̂(dear) instead.
    _, out, d = await route(
        AGENTS[kind].with_config(threshold=-gap + 1e-6, strong="cheap"), version, store
    )
    assert out.chosen == ["dear"] and d.evidence["gap"] == pytest.approx(-gap)


async def test_threshold_needs_two_models() -> None:
    store = MemoryStore()
    version = save_state(store, train("classifier", examples(("cheap", "mid", "dear"))))
    models, client = hub(ANSWERS)
    result = await arun(
        pipeline(classifier_router.with_config(threshold=0.1)),
        {"question": MATH, "state": version},
        store=store,
        services={"models": models},
    )
    assert result.error is not None and "route by λ" in result.error.message
    assert client.calls == []


@pytest.mark.parametrize("kind", list(AGENTS))
async def test_runs_verify_and_replay(kind: str) -> None:
    store = MemoryStore()
    version = save_state(store, train(kind, examples(("cheap", "mid", "dear"))))
    models, _ = hub(ANSWERS)
    for lam, question in ((0.0, MATH), (300.0, "hello friendly greeting"), (50.0, "python loop")):
        result = await arun(
            pipeline(AGENTS[kind].with_config(lam=lam)),
            {"question": question, "state": version},
            store=store,
            services={"models": models},
        )
        assert result.ok and verify_run(store, result.run_id, ledger=False).ok
        again = await aassert_replays_clean(
            result.run_id,
            store=store,
            pipeline=pipeline(AGENTS[kind].with_config(lam=lam)),
            services={"models": models},
        )
        assert again.root_hash == result.root_hash


async def test_order_independent() -> None:
    store = MemoryStore()
    version = save_state(store, train("SW", examples()))
    models, _ = hub(ANSWERS)
    await assert_order_independent(
        pipeline(sw_router.with_config(lam=100.0)),
        {"question": MATH, "state": version},
        store=store,
        services={"models": models},
    )


async def test_a_tampered_state_is_refused_by_hash() -> None:
    store = MemoryStore()
    # States no other test trains (the engine and the routers cache loaded states).
    state = train("classifier", examples(), c=0.77)
    version = save_state(store, state)
    w = state.weight.to_numpy().copy()
    w[0, 0] += 1.0
    forged = state.model_copy(update={"weight": ArrayData.of(w)})
    # The forged weights stored under the honest version's key, as a tampered store holds them.
    store._tamper(version, canonical_bytes(forged))
    # Bytes that match their key but are not a state's canonical encoding: the key is not
    # the state's version, so a decision naming it would not name what decided.
    other = train("classifier", examples(), c=0.78)
    indented = orjson.dumps(orjson.loads(canonical_bytes(other)), option=orjson.OPT_INDENT_2)
    loose = store.put(indented)
    assert loose != other.version
    _CHECKED.clear()
    models, client = hub(ANSWERS)
    for key, says in ((version, "is corrupt"), (loose, "does not hash to its version")):
        result = await arun(
            pipeline(classifier_router),
            {"question": MATH, "state": key},
            store=store,
            services={"models": models},
        )
        assert not result.ok and result.error is not None
        message = result.error.message
        assert key in message and says in message and "\n" not in message.strip()
    assert client.calls == []


async def test_a_state_of_another_kind_is_refused() -> None:
    store = MemoryStore()
    version = save_state(store, train("MF", examples(), seed=5))
    models, _ = hub(ANSWERS)
    result = await arun(
        pipeline(sw_router),
        {"question": MATH, "state": version},
        store=store,
        services={"models": models},
    )
    assert result.error is not None and "not a valid SWRouterState" in result.error.message


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"lam": math.nan}, r"lam \(λ\) is nan; fix"),
        ({"lam": -1.0}, r"lam \(λ\) is -1\.0; fix"),
        ({"threshold": math.inf}, r"threshold is inf; fix"),
        ({"strong": " "}, r"model name is empty"),
    ],
)
def test_bad_config_is_refused(config: dict[str, Any], error: str) -> None:
    with pytest.raises(AgentDefinitionError, match=error):
        classifier_router.with_config(**config)
    assert QualityRouterConfig() == QualityRouterConfig(lam=0.0, threshold=None, strong=None)


def test_trainers_and_agents_cover_the_same_routers() -> None:
    assert set(TRAINERS) == set(AGENTS)
