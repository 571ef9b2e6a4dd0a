"""Baselines with scripted models: every branch, hand-computed kNN estimates, λ trading
quality against cost, seeded random choice, majority tie order, cascade acceptance, the oracle,
determinism and bad configuration."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import PipelineBuilder, arun
from orch.testing import assert_order_independent
from routers.baselines import (
    CascadeConfig,
    KNNConfig,
    KNNExample,
    ModelsConfig,
    build_knn_index,
    cascade,
    knn_estimate,
    knn_router,
    majority_vote,
    oracle,
    random_router,
    single,
    vote,
)
from routers.lexical import LexicalIndex
from routers.state import load_state, save_state
from traces import Decision, MemoryStore, StepRecord

PRICES = {"cheap": 1.0, "mid": 5.0, "dear": 20.0}
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        m: {"provider": "s", "name": m, "input_per_mtok": p, "output_per_mtok": p}
        for m, p in PRICES.items()
    },
}


def hub(answers: dict[str, Any]) -> tuple[ModelHub, ScriptedClient]:
    """``answers[model]`` is a letter, or a list of letters by sample index."""

    def script(request: ChatRequest, model: ModelInfo) -> str:
        a = answers[model.name]
        letter = a[request.sample] if isinstance(a, list) else a
        return f"The answer is {letter}." if letter else "I do not know."

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


async def run(
    node_agent: Any,
    answers: dict[str, Any],
    seed: int = 0,
    store: MemoryStore | None = None,
    **inputs: Any,
) -> tuple[Any, Decision, ScriptedClient]:
    p = PipelineBuilder("baseline")
    p.node(
        "b",
        node_agent,
        **{k: p.input(k, type(v) if v is not None else str | None) for k, v in inputs.items()},
    )
    models, client = hub(answers)
    store = store or MemoryStore()
    result = await arun(p.build(), inputs, store=store, seed=seed, services={"models": models})
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["b"]))
    return result.outputs["b"], Decision.model_validate(store.get_value(rec.decisions[0])), client


async def test_single() -> None:
    out, d, client = await run(single.with_config(model="mid"), {"mid": "C"}, question="Q?")
    assert out.answer == "C" and out.chosen == ["mid"] and d.chosen == ["mid"]
    assert [m for m, _ in client.calls] == ["mid"] and out.cost_usd > 0


async def test_random_router_is_seeded() -> None:
    models = list(PRICES)
    picks = {}
    for seed in range(10):
        a, da, _ = await run(
            random_router.with_config(models=models),
            dict.fromkeys(PRICES, "A"),
            seed=seed,
            question="Q",
        )
        b, _, _ = await run(
            random_router.with_config(models=models),
            dict.fromkeys(PRICES, "A"),
            seed=seed,
            question="Q",
        )
        assert a.chosen == b.chosen
        draw = da.evidence["draw"]
        assert a.chosen == [models[int(draw * 3)]]
        assert da.scores == {m: pytest.approx(1 / 3) for m in models}
        picks[seed] = a.chosen[0]
    assert len(set(picks.values())) > 1  # different seeds reach different models


def test_vote_tie_order() -> None:
    assert vote(["B", "A", "A", "B"]) == ("B", {"A": 2, "B": 2})  # tie: first listed wins
    assert vote([None, "C", None]) == ("C", {"C": 1})
    assert vote([None, None]) == (None, {})


async def test_majority_vote() -> None:
    out, d, _ = await run(
        majority_vote.with_config(models=["cheap", "mid", "dear"]),
        {"cheap": "A", "mid": "B", "dear": "B"},
        question="Q",
    )
    assert out.answer == "B" and d.chosen == ["mid", "dear"] and d.scores == {"A": 1, "B": 2}
    tie, dt, _ = await run(
        majority_vote.with_config(models=["mid", "cheap"]), {"cheap": "A", "mid": "B"}, question="Q"
    )
    assert tie.answer == "B" and "tie broken by model order" in dt.reason
    none, dn, _ = await run(
        majority_vote.with_config(models=["mid", "cheap"]),
        {"cheap": None, "mid": None},
        question="Q",
    )
    assert none.answer is None and dn.chosen == [] and "no model" in dn.reason


EXAMPLES = [
    KNNExample(
        query="integrate the function",
        quality={"cheap": 0.0, "dear": 1.0},
        cost_usd={"cheap": 0.001, "dear": 0.02},
    ),
    KNNExample(
        query="integrate the polynomial function",
        quality={"cheap": 1.0, "dear": 1.0},
        cost_usd={"cheap": 0.001, "dear": 0.03},
    ),
    KNNExample(
        query="capital of france",
        quality={"cheap": 1.0, "dear": 1.0},
        cost_usd={"cheap": 0.001, "dear": 0.02},
    ),
]


def test_knn_estimate_by_hand() -> None:
    index = build_knn_index(EXAMPLES)
    lexical = LexicalIndex([e.query for e in index.examples])
    near, quality, cost = knn_estimate(index, lexical, "integrate the function", 2)
    (i0, s0), (i1, s1) = near
    assert (i0, i1) == (0, 1) and s0 == pytest.approx(1.0) and 0 < s1 < 1
    w0, w1 = s0 / (s0 + s1), s1 / (s0 + s1)
    assert quality["cheap"] == pytest.approx(w1 * 1.0)
    assert quality["dear"] == pytest.approx(1.0)
    assert cost["dear"] == pytest.approx(w0 * 0.02 + w1 * 0.03)
    # no overlap at all: plain mean over the k neighbours (the first k in order)
    _, q0, _ = knn_estimate(index, lexical, "zebra", 2)
    assert q0["cheap"] == pytest.approx(0.5)


async def test_knn_router_lambda_trades_quality_for_cost() -> None:
    store = MemoryStore()
    version = save_state(store, build_knn_index(EXAMPLES))
    answers = {"cheap": "A", "dear": "B"}
    high, d, _ = await run(
        knn_router.with_config(k=2, lam=1.0),
        answers,
        store=store,
        question="integrate the function",
        index=version,
    )
    low, dl, _ = await run(
        knn_router.with_config(k=2, lam=0.001),
        answers,
        store=store,
        question="integrate the function",
        index=version,
    )
    assert high.chosen == ["dear"] and low.chosen == ["cheap"]
    assert d.state_version == version and dl.state_version == version
    q, c = d.evidence["expected_quality"], d.evidence["expected_cost_usd"]
    assert d.scores["dear"] == pytest.approx(1.0 * q["dear"] - c["dear"])
    assert load_state(store, version).models == ["cheap", "dear"]


@pytest.mark.parametrize(
    ("examples", "error"),
    [
        ([], "needs training examples"),
        (
            [{"query": "q", "quality": {"a": math.nan}, "cost_usd": {"a": 0.0}}],
            "example 0 has invalid",
        ),
        ([{"query": "q", "quality": {"a": -0.1}, "cost_usd": {"a": 0.0}}], "example 0 has invalid"),
        ([{"query": "q", "quality": {"a": 1.0}, "cost_usd": {"a": -1.0}}], "example 0 has invalid"),
        (
            [
                {"query": "q", "quality": {"a": 1.0}, "cost_usd": {"a": 0.0}},
                {"query": "r", "quality": {"b": 1.0}, "cost_usd": {"b": 0.0}},
            ],
            "example 1 scores models",
        ),
    ],
)
def test_knn_index_bad_input(examples: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build_knn_index(examples)


async def test_cascade_accepts_and_escalates() -> None:
    cfg = {"weak": "cheap", "strong": "dear"}
    acc, d, client = await run(
        cascade.with_config(**cfg), {"cheap": ["A", "A", "A"], "dear": "B"}, question="Q"
    )
    assert acc.answer == "A" and acc.chosen == ["cheap"] and d.evidence["accepted"]
    assert [m for m, _ in client.calls] == ["cheap"] * 3
    esc, de, client = await run(
        cascade.with_config(**cfg), {"cheap": ["A", "C", "A"], "dear": "B"}, question="Q"
    )
    assert (
        esc.answer == "B"
        and esc.chosen == ["dear"]
        and de.scores["agreement"] == pytest.approx(2 / 3)
    )
    assert [m for m, _ in client.calls] == ["cheap"] * 3 + ["dear"]
    lenient, _, _ = await run(
        cascade.with_config(**cfg, threshold=0.6),
        {"cheap": ["A", "C", "A"], "dear": "B"},
        question="Q",
    )
    assert lenient.answer == "A"
    blank, db, _ = await run(
        cascade.with_config(**cfg), {"cheap": [None, None, None], "dear": "B"}, question="Q"
    )
    assert blank.answer == "B" and db.scores["agreement"] == 0.0


async def test_oracle() -> None:
    models = ["dear", "mid", "cheap"]
    right, d, _ = await run(
        oracle.with_config(models=models),
        {"cheap": "A", "mid": "B", "dear": "B"},
        question="Q",
        gold="B",
    )
    assert right.chosen == ["mid"] and d.evidence["correct"] == ["mid", "dear"]
    assert right.cost_usd == pytest.approx(d.scores["mid"])  # only the chosen model's cost
    wrong, dw, _ = await run(
        oracle.with_config(models=models),
        {"cheap": "A", "mid": "B", "dear": "B"},
        question="Q",
        gold="D",
    )
    assert wrong.chosen == ["cheap"] and "no model is correct" in dw.reason


async def test_oracle_without_gold_fails_and_records_nothing_valid() -> None:
    p = PipelineBuilder("oracle")
    p.node("b", oracle.with_config(models=["cheap"]), question=p.input("question", str))
    models, client = hub({"cheap": "A"})
    store = MemoryStore()
    result = await arun(p.build(), {"question": "Q"}, store=store, services={"models": models})
    assert result.error is not None and "needs the gold label" in result.error.message
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["b"]))
    assert rec.status == "failed" and rec.output is None and rec.decisions == []
    assert client.calls == []


def test_bad_configs() -> None:
    with pytest.raises(ValidationError):
        ModelsConfig(models=[])
    with pytest.raises(ValidationError, match="duplicates"):
        ModelsConfig(models=["a", "a"])
    with pytest.raises(ValidationError, match="n_samples"):
        CascadeConfig(weak="a", strong="b", n_samples=1)
    with pytest.raises(ValidationError, match="two models"):
        CascadeConfig(weak="a", strong="a")
    with pytest.raises(ValidationError):
        KNNConfig(lam=math.nan)
    with pytest.raises(ValidationError, match="unknown answer extractor"):
        ModelsConfig(models=["a"], extractor="bogus")


async def test_majority_needs_two_models() -> None:
    p = PipelineBuilder("mv")
    p.node("b", majority_vote.with_config(models=["cheap"]), question=p.input("question", str))
    models, _ = hub({"cheap": "A"})
    result = await arun(
        p.build(), {"question": "Q"}, store=MemoryStore(), services={"models": models}
    )
    assert result.error is not None and "at least 2 models" in result.error.message


async def test_majority_vote_order_independent() -> None:
    p = PipelineBuilder("mv-det")
    p.node(
        "b",
        majority_vote.with_config(models=["cheap", "mid", "dear"]),
        question=p.input("question", str),
    )
    models, _ = hub({"cheap": "A", "mid": "B", "dear": "B"})
    await assert_order_independent(p.build(), {"question": "Q"}, services={"models": models})
