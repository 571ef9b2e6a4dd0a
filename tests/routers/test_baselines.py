"""Baselines with scripted models: every branch of every baseline and its recorded decision,
hand-computed kNN estimates, λ trading quality against cost, the kNN index as versioned state
(old ``orch.knn-index/1`` states still routing, tampered ones refused),
seeded random choice, majority tie order, cascade acceptance and escalation, the oracle (and
its missing gold label), order independence and bad configuration."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from agents.models import ChatRequest, ModelHub, ModelInfo, ModelRegistry, ScriptedClient
from orch import AgentDefinitionError, Pipeline, PipelineBuilder, RunResult, arun
from orch.testing import assert_order_independent
from routers import WordLlamaEmbedder, sentence_embeddings_available
from routers._state import load_state, save_state, state_formats, state_history
from routers.baselines import (
    AgreementCascadeConfig,
    CascadeConfig,
    KNNConfig,
    KNNEstimator,
    KNNExample,
    KNNIndex,
    MajorityConfig,
    ModelsConfig,
    Routed,
    SingleConfig,
    agreement_cascade,
    build_knn_index,
    cascade,
    knn_embedder,
    knn_estimate,
    knn_router,
    majority_vote,
    oracle,
    random_router,
    single,
    vote,
)
from traces import Decision, MemoryStore, StepRecord, canonical_bytes

PRICES = {"cheap": 1.0, "twin": 1.0, "mid": 5.0, "dear": 20.0}
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        m: {"provider": "s", "name": m, "input_per_mtok": p, "output_per_mtok": p}
        for m, p in PRICES.items()
    },
}
QUESTION = "Which option? A B C D"


def hub(answers: dict[str, Any]) -> tuple[ModelHub, ScriptedClient]:
    """``answers[model]`` is a letter (or None: an unreadable reply), or a list of them by
    sample index. Every reply has the same length, so a call's cost is its model's price."""

    def script(request: ChatRequest, model: ModelInfo) -> str:
        a = answers[model.name]
        letter = a[request.sample] if isinstance(a, list) else a
        return f"The answer is {letter}." if letter else "I am unsure..."

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


def call_cost(model: str, question: str = QUESTION) -> float:
    # ScriptedClient: ~4 characters per token, prompt and reply
    tokens = len(question) // 4 + len("The answer is A.") // 4
    return tokens * PRICES[model] / 1e6


def pipeline(node_agent: Any, *inputs: str) -> Pipeline:
    p = PipelineBuilder("baseline")
    refs: dict[str, Any] = {k: p.input(k, str) for k in inputs}
    p.node("b", node_agent, **refs)
    return p.build()


async def run_raw(
    node_agent: Any,
    answers: dict[str, Any],
    *,
    seed: int = 0,
    store: MemoryStore | None = None,
    **inputs: str,
) -> tuple[RunResult, MemoryStore, ScriptedClient]:
    models, client = hub(answers)
    store = store if store is not None else MemoryStore()
    result = await arun(
        pipeline(node_agent, *inputs), inputs, store=store, seed=seed, services={"models": models}
    )
    return result, store, client


async def run(
    node_agent: Any,
    answers: dict[str, Any],
    *,
    seed: int = 0,
    store: MemoryStore | None = None,
    **inputs: str,
) -> tuple[Routed, Decision, ScriptedClient]:
    inputs.setdefault("question", QUESTION)
    result, store, client = await run_raw(node_agent, answers, seed=seed, store=store, **inputs)
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["b"]))
    assert len(rec.decisions) == 1  # exactly one decision per baseline step
    assert len(rec.effects) == len(client.calls)
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    return result.outputs["b"], decision, client


def called(client: ScriptedClient) -> list[str]:
    return [m for m, _ in client.calls]


# -- single ------------------------------------------------------------------------------------


async def test_single() -> None:
    out, d, client = await run(single.with_config(model="mid"), {"mid": "C"})
    assert out == Routed(
        answer="C", models_invoked=["mid"], chosen=["mid"], cost_usd=call_cost("mid")
    )
    assert called(client) == ["mid"]
    assert (d.router, d.candidates, d.chosen) == ("single-model", ["mid"], ["mid"])
    assert d.parameters["model"] == "mid" and d.parameters["extractor"] == "option"
    assert d.evidence == {"answer": "C", "cost_usd": call_cost("mid")}
    unread, _, _ = await run(single.with_config(model="mid"), {"mid": None})
    assert unread.answer is None and unread.chosen == ["mid"]


# -- random ------------------------------------------------------------------------------------


async def test_random_router_is_seeded_and_uniform_over_config_order() -> None:
    models = ["cheap", "mid", "dear"]
    router = random_router.with_config(models=models)
    answers = {"cheap": "A", "mid": "B", "dear": "C"}
    picks: dict[int, str] = {}
    for seed in range(12):
        random.seed(seed)  # the global RNG must not matter
        a, da, _ = await run(router, answers, seed=seed)
        random.seed(seed + 1000)
        b, db, _ = await run(router, answers, seed=seed)
        assert a == b and da == db  # same seed: same draw, same choice, same record
        draw, index = da.evidence["draw"], da.evidence["index"]
        assert 0 <= draw < 1 and index == math.floor(draw * 3)
        assert a.chosen == da.chosen == [models[index]] and a.models_invoked == a.chosen
        assert a.answer == answers[models[index]]
        assert da.scores == {m: pytest.approx(1 / 3) for m in models}
        assert da.evidence["probabilities"] == da.scores
        assert f"{draw:.6f}" in da.reason
        picks[seed] = a.chosen[0]
    # some other seed picks a different model than seed 0 (found, not assumed)
    assert any(p != picks[0] for p in picks.values()), picks
    assert set(picks.values()) == set(models)  # 12 seeds reach all three here


async def test_random_router_same_seed_same_root_hash() -> None:
    router = random_router.with_config(models=["cheap", "mid", "dear"])
    answers = {"cheap": "A", "mid": "B", "dear": "C"}
    first, _, _ = await run_raw(router, answers, seed=7, question=QUESTION)
    second, _, _ = await run_raw(router, answers, seed=7, question=QUESTION)
    assert first.ok and first.root_hash == second.root_hash
    hashes = set()
    for seed in range(12):
        r, _, _ = await run_raw(router, answers, seed=seed, question=QUESTION)
        hashes.add(r.root_hash)
    assert len(hashes) > 1


# -- majority ----------------------------------------------------------------------------------


def test_vote() -> None:
    assert vote(["B", "A", "A", "B"]) == ("B", {"A": 2, "B": 2})  # tie: first given wins
    assert vote(["A", "B", "B", "A"]) == ("A", {"A": 2, "B": 2})
    assert vote([None, "C", None]) == ("C", {"C": 1})  # None casts no vote
    assert vote([None, None]) == (None, {})


async def test_majority_vote_majority() -> None:
    models = ["cheap", "mid", "dear"]
    out, d, client = await run(
        majority_vote.with_config(models=models), {"cheap": "A", "mid": "B", "dear": "B"}
    )
    assert out.answer == "B" and out.chosen == ["mid", "dear"]
    assert called(client) == models  # sequential, config order
    assert out.models_invoked == models
    assert out.cost_usd == pytest.approx(sum(call_cost(m) for m in models))
    assert d.chosen == ["mid", "dear"] and d.candidates == models
    assert d.scores == {"cheap": 1.0, "mid": 2.0, "dear": 2.0}
    assert d.evidence["answers"] == {"cheap": "A", "mid": "B", "dear": "B"}
    assert d.evidence["votes"] == {"A": 1, "B": 2} and d.evidence["tied"] == []
    assert "'B' has 2 of 3 votes" in d.reason and "tie" not in d.reason


async def test_majority_vote_tie_goes_to_config_order() -> None:
    answers = {"cheap": "A", "mid": "B", "dear": "B", "twin": "A"}
    first, d1, _ = await run(majority_vote.with_config(models=["mid", "cheap"]), answers)
    assert first.answer == "B" and first.chosen == ["mid"]
    assert "tie among ['A', 'B'] broken by model order (mid is listed first)" in d1.reason
    assert d1.evidence["tied"] == ["A", "B"]
    flipped, _, _ = await run(majority_vote.with_config(models=["cheap", "mid"]), answers)
    assert flipped.answer == "A" and flipped.chosen == ["cheap"]
    four, d4, _ = await run(
        majority_vote.with_config(models=["twin", "dear", "mid", "cheap"]), answers
    )
    assert four.answer == "A" and four.chosen == ["twin", "cheap"]
    assert d4.evidence["votes"] == {"A": 2, "B": 2}
    # unreadable answers cast no vote: one readable answer beats two unreadable ones
    lone, dl, _ = await run(
        majority_vote.with_config(models=["cheap", "mid", "dear"]),
        {"cheap": None, "mid": None, "dear": "D"},
    )
    assert lone.answer == "D" and lone.chosen == ["dear"]
    assert dl.evidence["answers"] == {"cheap": None, "mid": None, "dear": "D"}
    assert dl.scores == {"cheap": 0.0, "mid": 0.0, "dear": 1.0}


async def test_majority_vote_nothing_readable() -> None:
    out, d, _ = await run(
        majority_vote.with_config(models=["mid", "cheap"]), {"cheap": None, "mid": None}
    )
    assert out.answer is None and out.chosen == [] and d.chosen == []
    assert d.reason == "no model gave a readable answer" and d.evidence["votes"] == {}


async def test_majority_vote_order_independent() -> None:
    models, _ = hub({"cheap": "A", "mid": "B", "dear": "B"})
    await assert_order_independent(
        pipeline(majority_vote.with_config(models=["cheap", "mid", "dear"]), "question"),
        {"question": QUESTION},
        services={"models": models},
    )


# -- kNN ---------------------------------------------------------------------------------------

EXAMPLES = [
    KNNExample(
        query="apple",
        quality={"cheap": 0.2, "dear": 1.0},
        cost_usd={"cheap": 0.001, "dear": 0.011},
    ),
    KNNExample(
        query="apple banana",
        quality={"cheap": 0.8, "dear": 0.9},
        cost_usd={"cheap": 0.003, "dear": 0.021},
    ),
    KNNExample(
        query="dog",
        quality={"cheap": 1.0, "dear": 1.0},
        cost_usd={"cheap": 0.001, "dear": 0.02},
    ),
]


def hand_estimate() -> tuple[float, dict[str, float], dict[str, float]]:
    """The query "apple" against EXAMPLES, k = 2, by hand. TF-IDF with smoothed idf
    log((1 + n) / (1 + df)) + 1 and n = 3: "apple" (df 2) a = 1 + ln(4/3), "banana" (df 1)
    b = 1 + ln 2. The query is the unit vector on "apple", so example 0 has cosine 1 and
    example 1 cosine a / sqrt(a² + b²); example 2 shares nothing."""
    a, b = 1 + math.log(4 / 3), 1 + math.log(2)
    s1 = a / math.sqrt(a * a + b * b)
    w0, w1 = 1 / (1 + s1), s1 / (1 + s1)
    quality = {"cheap": w0 * 0.2 + w1 * 0.8, "dear": w0 * 1.0 + w1 * 0.9}
    cost = {"cheap": w0 * 0.001 + w1 * 0.003, "dear": w0 * 0.011 + w1 * 0.021}
    return s1, quality, cost


def test_knn_estimate_by_hand() -> None:
    index = build_knn_index(EXAMPLES)
    assert index.models == ["cheap", "dear"] and index.format == "orch.knn-index/2"
    assert index.embedder == knn_embedder([e.query for e in EXAMPLES]).spec
    s1, quality, cost = hand_estimate()
    near, q, c = knn_estimate(index, "apple", 2)
    assert [i for i, _ in near] == [0, 1]
    assert near[0][1] == pytest.approx(1.0) and near[1][1] == pytest.approx(s1)
    assert s1 == pytest.approx(0.60535, abs=1e-5)
    assert q == pytest.approx(quality) and c == pytest.approx(cost)
    # no word in common: plain means over the first k examples (index order breaks ties)
    near0, q0, c0 = knn_estimate(index, "zebra", 2)
    assert near0 == [(0, 0.0), (1, 0.0)]
    assert q0 == pytest.approx({"cheap": 0.5, "dear": 0.95})
    assert c0 == pytest.approx({"cheap": 0.002, "dear": 0.016})
    # k above the number of examples uses them all; "dog" has weight 0 for "apple"
    near_all, q_all, _ = knn_estimate(index, "apple", 10)
    assert [i for i, _ in near_all] == [0, 1, 2] and q_all == pytest.approx(quality)


async def test_knn_router_lambda_trades_quality_for_cost() -> None:
    store = MemoryStore()
    version = save_state(store, build_knn_index(EXAMPLES))
    _, quality, cost = hand_estimate()
    # break-even λ: where λ·Δquality = Δcost
    even = (cost["dear"] - cost["cheap"]) / (quality["dear"] - quality["cheap"])
    assert 0.02 < even < 0.03
    answers = {"cheap": "A", "dear": "B"}
    chosen = {}
    for lam in (1.0, 0.03, 0.02, 0.0):
        out, d, client = await run(
            knn_router.with_config(k=2, lam=lam),
            answers,
            store=store,
            question="apple",
            index=version,
        )
        chosen[lam] = out.chosen[0]
        assert called(client) == out.chosen == d.chosen and out.answer == answers[out.chosen[0]]
        assert out.cost_usd == pytest.approx(call_cost(out.chosen[0], "apple"))
        assert d.router == "knn-router" and d.candidates == ["cheap", "dear"]
        assert d.scores == pytest.approx({m: lam * quality[m] - cost[m] for m in quality})
        assert d.evidence["expected_quality"] == pytest.approx(quality)
        assert d.evidence["expected_cost_usd"] == pytest.approx(cost)
        assert d.evidence["neighbours"]["index"] == [0, 1]
        assert d.evidence["neighbours"]["similarity"][0] == pytest.approx(1.0)
        assert d.evidence["weighting"] == "similarity-weighted mean"
        assert d.parameters["lam"] == lam and d.parameters["k"] == 2
        assert d.state_version == version  # the index version read
    assert chosen == {1.0: "dear", 0.03: "dear", 0.02: "cheap", 0.0: "cheap"}


async def test_knn_utility_ties_go_to_model_name() -> None:
    store = MemoryStore()
    same = [
        KNNExample(
            query="apple",
            quality={"dear": 0.5, "cheap": 0.5},
            cost_usd={"dear": 0.01, "cheap": 0.01},
        )
    ]
    version = save_state(store, build_knn_index(same))
    out, d, _ = await run(
        knn_router.with_config(), {"cheap": "A", "dear": "B"}, store=store, index=version
    )
    assert out.chosen == ["cheap"] and d.scores["cheap"] == d.scores["dear"]
    assert d.evidence["weighting"] == "plain mean" and "plain means" in d.reason


async def test_knn_index_is_versioned_state() -> None:
    store = MemoryStore()
    index = build_knn_index([e.model_dump() for e in EXAMPLES])
    assert index == build_knn_index(EXAMPLES)
    version = save_state(store, index)
    assert version == index.version
    assert {"orch.knn-index/1", "orch.knn-index/2"} <= set(state_formats())
    assert load_state(store, version, KNNIndex) == index
    (link,) = state_history(store, version)
    assert link.summary == "kNN index, 3 training queries over models cheap, dear, embedder tfidf"
    child = build_knn_index(EXAMPLES[:2], parent=version)
    child_version = save_state(store, child)
    assert [v.version for v in state_history(store, child_version)] == [child_version, version]
    # quality given in another key order: the same state, the same version
    shuffled = KNNExample(
        query="apple", quality={"dear": 1.0, "cheap": 0.2}, cost_usd={"dear": 0.011, "cheap": 0.001}
    )
    assert build_knn_index([shuffled, *EXAMPLES[1:]]).version == version
    _, d, _ = await run(
        knn_router.with_config(k=2), {"cheap": "A", "dear": "B"}, store=store, index=child_version
    )
    assert d.state_version == child_version


async def test_knn_router_unknown_index_fails_clearly() -> None:
    result, store, client = await run_raw(
        knn_router, {"cheap": "A"}, question="apple", index="sha256:" + "0" * 64
    )
    assert result.error is not None and "is not in the run's store" in result.error.message
    assert "fix:" in result.error.message and client.calls == []
    # a stored artifact that is not a kNN index is refused too
    other = store.put_value({"format": "something-else"})
    bad, _, _ = await run_raw(knn_router, {"cheap": "A"}, store=store, question="a", index=other)
    assert bad.error is not None and "not a valid KNNIndex" in bad.error.message


async def test_knn_router_order_independent() -> None:
    store = MemoryStore()
    version = save_state(store, build_knn_index(EXAMPLES))
    models, _ = hub({"cheap": "A", "dear": "B"})
    await assert_order_independent(
        pipeline(knn_router.with_config(k=2), "question", "index"),
        {"question": "apple banana", "index": version},
        store=store,
        services={"models": models},
    )


OLD_INDEX = {
    "format": "orch.knn-index/1",
    "models": ["cheap", "dear"],
    "examples": [e.model_dump(mode="json") for e in EXAMPLES],
    "parent": None,
}
"""A kNN index as knn-router version 2 saved it, before the embedding seam."""


async def test_old_knn_index_still_loads_and_routes() -> None:
    store = MemoryStore()
    version = store.put_value(OLD_INDEX)  # the bytes an old store holds
    old = load_state(store, version, KNNIndex)
    assert old.format == "orch.knn-index/1" and old.embedder is None
    assert old.version == version  # re-encoded, it is the very same bytes
    (link,) = state_history(store, version)
    assert link.summary.endswith("embedder default TF-IDF")
    _, quality, cost = hand_estimate()
    out, d, _ = await run(
        knn_router.with_config(k=2, lam=1.0),
        {"cheap": "A", "dear": "B"},
        store=store,
        question="apple",
        index=version,
    )
    # Served with the default embedder fitted on its queries: the same neighbours as a new
    # index of the same examples.
    assert d.state_version == version and out.chosen == ["dear"]
    assert d.evidence["expected_quality"] == pytest.approx(quality)
    assert d.evidence["expected_cost_usd"] == pytest.approx(cost)
    new = build_knn_index(EXAMPLES)
    assert new.version != version and knn_estimate(old, "apple", 2) == knn_estimate(new, "apple", 2)


def test_knn_index_formats_and_embedders_go_together() -> None:
    spec = knn_embedder(["apple"]).spec
    with pytest.raises(ValidationError, match=r"orch\.knn-index/2 index needs embedder"):
        KNNIndex(models=["cheap", "dear"], examples=list(EXAMPLES))
    with pytest.raises(ValidationError, match=r"orch\.knn-index/1 index has no embedder"):
        KNNIndex(
            format="orch.knn-index/1", models=["cheap", "dear"], examples=EXAMPLES, embedder=spec
        )


def test_knn_estimator_weighs_negative_similarities_zero() -> None:
    estimator = KNNEstimator(build_knn_index(EXAMPLES))
    near, quality, _ = estimator.from_similarities(np.array([0.5, -0.2, -0.9]), 2)
    assert near == [(0, 0.5), (1, -0.2)] and quality.tolist() == [0.2, 1.0]
    # no positive similarity at all: plain means over the k nearest
    near, quality, cost = estimator.from_similarities(np.array([-0.5, -0.1, -0.9]), 2)
    assert [i for i, _ in near] == [1, 0]
    assert quality == pytest.approx([0.5, 0.95]) and cost == pytest.approx([0.002, 0.016])
    batch_q, batch_c = estimator.estimates(["apple", "zebra"], 2)
    for row, text in enumerate(["apple", "zebra"]):
        _, q, c = estimator.estimate(text, 2)
        assert batch_q[row] == pytest.approx(list(q.values()))
        assert batch_c[row] == pytest.approx(list(c.values()))


@pytest.mark.skipif(not sentence_embeddings_available(), reason="the embed extra is absent")
async def test_knn_router_on_sentence_embeddings() -> None:
    store = MemoryStore()
    index = build_knn_index(EXAMPLES, embedder=WordLlamaEmbedder())
    assert index.embedder is not None and index.embedder.kind == "wordllama"
    version = save_state(store, index)
    out, d, _ = await run(
        knn_router.with_config(k=2),
        {"cheap": "A", "dear": "B"},
        store=store,
        question="a green apple",
        index=version,
    )
    assert d.evidence["neighbours"]["index"][0] == 0 and out.chosen == d.chosen


async def test_tampered_knn_index_is_refused() -> None:
    store = MemoryStore()
    honest = build_knn_index(EXAMPLES[:2])
    value = orjson.loads(canonical_bytes(honest))
    loose = store.put(orjson.dumps(value, option=orjson.OPT_INDENT_2))
    result, _, client = await run_raw(
        knn_router, {"cheap": "A"}, store=store, question="a", index=loose
    )
    assert result.error is not None and client.calls == []
    assert f"router state {loose} does not hash to its version" in result.error.message


def example(quality: dict[str, float], cost: dict[str, float], query: str = "q") -> dict[str, Any]:
    return {"query": query, "quality": quality, "cost_usd": cost}


@pytest.mark.parametrize(
    ("examples", "error"),
    [
        ([], r"needs training examples, got none; fix: give at least one"),
        ([example({"a": math.nan}, {"a": 0.0})], r"example 0 is invalid \(quality: .*nan"),
        ([example({"a": -0.1}, {"a": 0.0})], r"example 0 is invalid \(quality: .*-0\.1"),
        ([example({"a": 1.5}, {"a": 0.0})], r"example 0 is invalid \(quality: .*in \[0\.0, 1\.0\]"),
        (
            [example({"a": 1.0}, {"a": 0.0}), example({"a": 1.0}, {"a": -1.0})],
            r"example 1 is invalid \(cost_usd: .*-1\.0.*fix: correct or drop example 1",
        ),
        ([example({"a": 1.0}, {"a": math.inf})], r"example 0 is invalid \(cost_usd: .*inf"),
        ([example({"a": 1.0}, {"b": 0.0})], r"example 0 is invalid .*same models"),
        ([example({}, {})], r"example 0 is invalid .*no model is scored"),
        ([{"query": "", "quality": {"a": 1.0}, "cost_usd": {"a": 0.0}}], r"example 0 .*query"),
        (
            [example({"a": 1.0}, {"a": 0.0}), example({"b": 1.0}, {"b": 0.0})],
            r"example 1 scores models \['b'\], example 0 scores \['a'\]; fix: give every example",
        ),
    ],
)
def test_knn_index_bad_examples(examples: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ValueError, match=error) as info:
        build_knn_index(examples)
    assert "fix:" in str(info.value)


@pytest.mark.parametrize("bad", [math.nan, -0.5, math.inf])
def test_knn_example_refuses_bad_quality(bad: float) -> None:
    with pytest.raises(ValidationError, match=r"quality .*must be finite and in \[0\.0, 1\.0\]"):
        KNNExample(query="q", quality={"a": bad}, cost_usd={"a": 0.0})
    with pytest.raises(ValidationError, match=r"cost_usd .*must be finite and >= 0"):
        KNNExample(query="q", quality={"a": 0.5}, cost_usd={"a": bad if bad < 0 else math.nan})


def test_knn_index_refuses_inconsistent_models() -> None:
    with pytest.raises(ValidationError, match="fix: build the index with build_knn_index"):
        KNNIndex(models=["cheap"], examples=list(EXAMPLES))
    with pytest.raises(ValidationError, match="example 2 scores models"):
        KNNIndex(
            models=["cheap", "dear"],
            examples=[*EXAMPLES[:2], KNNExample(query="x", quality={"a": 1}, cost_usd={"a": 0})],
        )


# -- cascade -----------------------------------------------------------------------------------


async def test_cascade_accepts_when_the_weak_model_agrees() -> None:
    out, d, client = await run(
        cascade.with_config(weak="cheap", strong="dear", temperature=0.9),
        {"cheap": ["A", "A", "A"], "dear": "B"},
    )
    assert out.answer == "A" and out.chosen == ["cheap"] and d.chosen == ["cheap"]
    assert out.models_invoked == ["cheap"] * 3
    assert out.cost_usd == pytest.approx(3 * call_cost("cheap"))
    assert [(m, r.sample, r.temperature) for m, r in client.calls] == [
        ("cheap", 0, 0.9),
        ("cheap", 1, 0.9),
        ("cheap", 2, 0.9),
    ]
    assert d.candidates == ["cheap", "dear"] and d.scores == {"agreement": 1.0}
    assert d.evidence["samples"] == ["A", "A", "A"] and d.evidence["agreement"] == 1.0
    assert d.evidence["accepted"] is True and d.evidence["strong_answer"] is None
    assert "accepted" in d.reason


async def test_cascade_escalates_on_disagreement() -> None:
    out, d, client = await run(
        cascade.with_config(weak="cheap", strong="dear"), {"cheap": ["A", "C", "A"], "dear": "B"}
    )
    assert out.answer == "B" and out.chosen == ["dear"] and d.chosen == ["dear"]
    assert called(client) == ["cheap"] * 3 + ["dear"]
    assert client.calls[-1][1].sample == 0 and client.calls[-1][1].temperature is None
    assert out.cost_usd == pytest.approx(3 * call_cost("cheap") + call_cost("dear"))
    assert d.evidence["agreement"] == pytest.approx(2 / 3) and d.evidence["accepted"] is False
    assert d.evidence["majority"] == "A" and d.evidence["strong_answer"] == "B"
    assert d.evidence["votes"] == {"A": 2, "C": 1}
    assert "escalated to dear" in d.reason


async def test_cascade_threshold_and_unreadable_samples() -> None:
    lenient, dl, _ = await run(
        cascade.with_config(weak="cheap", strong="dear", threshold=0.6),
        {"cheap": ["A", "C", "A"], "dear": "B"},
    )
    assert lenient.answer == "A" and dl.evidence["accepted"] is True
    exact, de, _ = await run(
        cascade.with_config(weak="cheap", strong="dear", threshold=2 / 3),
        {"cheap": ["A", "C", "A"], "dear": "B"},
    )
    assert exact.answer == "A" and de.evidence["accepted"] is True  # >= threshold accepts
    # unreadable answers never agree, even with each other
    blank, db, _ = await run(
        cascade.with_config(weak="cheap", strong="dear", threshold=0.1),
        {"cheap": [None, None, None], "dear": "B"},
    )
    assert blank.answer == "B" and db.evidence["agreement"] == 0.0
    assert db.evidence["samples"] == [None, None, None]
    half, dh, _ = await run(
        cascade.with_config(weak="cheap", strong="dear", n_samples=4),
        {"cheap": ["C", None, "C", "C"], "dear": "B"},
    )
    assert half.answer == "B" and dh.evidence["agreement"] == 0.75


async def test_cascade_order_independent() -> None:
    models, _ = hub({"cheap": ["A", "B", "A"], "dear": "B"})
    await assert_order_independent(
        pipeline(cascade.with_config(weak="cheap", strong="dear"), "question"),
        {"question": QUESTION},
        services={"models": models},
    )


# -- agreement cascade ---------------------------------------------------------------------------


async def test_agreement_cascade_accepts_when_probes_agree() -> None:
    out, d, client = await run(
        agreement_cascade.with_config(probes=["cheap", "twin"], strong="dear"),
        {"cheap": "A", "twin": "A", "dear": "B"},
    )
    assert out.answer == "A" and out.chosen == ["cheap"] and d.chosen == ["cheap"]
    assert called(client) == ["cheap", "twin"]
    assert out.cost_usd == pytest.approx(2 * call_cost("cheap"))
    assert d.evidence["agreed"] is True and d.evidence["strong_answer"] is None
    assert d.candidates == ["cheap", "twin", "dear"] and "accepted" in d.reason


@pytest.mark.parametrize(
    ("twin", "why"), [("C", "disagree"), (None, "one unreadable"), ("unreadable-both", "none")]
)
async def test_agreement_cascade_escalates(twin: str | None, why: str) -> None:
    answers: dict[str, Any] = {"cheap": "A", "twin": twin, "dear": "B"}
    if twin == "unreadable-both":
        answers = {"cheap": None, "twin": None, "dear": "B"}  # None == None is no agreement
    out, d, client = await run(
        agreement_cascade.with_config(probes=["cheap", "twin"], strong="dear"), answers
    )
    assert out.answer == "B" and out.chosen == ["dear"], why
    assert called(client) == ["cheap", "twin", "dear"]
    if twin == "C":  # an unreadable reply is shorter, so only here is the cost this sum
        assert out.cost_usd == pytest.approx(2 * call_cost("cheap") + call_cost("dear"))
    assert d.evidence["agreed"] is False and "escalated to dear" in d.reason


def test_agreement_cascade_config_errors() -> None:
    with pytest.raises(ValidationError, match="needs at least 2 models"):
        AgreementCascadeConfig(probes=["cheap"], strong="dear")
    with pytest.raises(ValidationError, match="also a probe"):
        AgreementCascadeConfig(probes=["cheap", "dear"], strong="dear")


async def test_agreement_cascade_order_independent() -> None:
    models, _ = hub({"cheap": "A", "twin": "B", "dear": "B"})
    await assert_order_independent(
        pipeline(
            agreement_cascade.with_config(probes=["cheap", "twin"], strong="dear"), "question"
        ),
        {"question": QUESTION},
        services={"models": models},
    )


# -- oracle ------------------------------------------------------------------------------------


async def test_oracle_picks_the_cheapest_correct_model() -> None:
    models = ["dear", "mid", "cheap"]
    answers = {"cheap": "A", "mid": "B", "dear": "B"}
    out, d, client = await run(oracle.with_config(models=models), answers, gold="B")
    assert called(client) == models and out.models_invoked == models
    assert out.answer == "B" and out.chosen == ["mid"] and d.chosen == ["mid"]
    assert out.cost_usd == pytest.approx(call_cost("mid"))  # the chosen model's call only
    assert d.evidence["correct"] == ["mid", "dear"]  # cheapest first
    assert d.evidence["call_costs_usd"] == pytest.approx({m: call_cost(m) for m in models})
    assert d.evidence["total_cost_usd"] == pytest.approx(sum(call_cost(m) for m in models))
    assert d.evidence["answers"] == {"dear": "B", "mid": "B", "cheap": "A"}
    assert "cheapest correct model" in d.reason
    # the gold label is read with the extractor
    worded, _, _ = await run(oracle.with_config(models=models), answers, gold="The answer is (b)")
    assert worded.chosen == ["mid"]


async def test_oracle_when_no_model_is_correct() -> None:
    models = ["dear", "mid", "cheap"]
    out, d, _ = await run(
        oracle.with_config(models=models), {"cheap": "A", "mid": "B", "dear": "B"}, gold="D"
    )
    assert out.chosen == ["cheap"] and out.answer == "A"
    assert out.cost_usd == pytest.approx(call_cost("cheap"))
    assert d.evidence["correct"] == [] and d.evidence["gold"] == "D"
    assert "no model is correct" in d.reason and "cheapest model, cheap" in d.reason


async def test_oracle_equal_costs_go_to_config_order() -> None:
    answers = {"cheap": "A", "twin": "A", "dear": "A"}
    first, _, _ = await run(oracle.with_config(models=["twin", "cheap", "dear"]), answers, gold="A")
    assert first.chosen == ["twin"]
    second, _, _ = await run(
        oracle.with_config(models=["dear", "cheap", "twin"]), answers, gold="A"
    )
    assert second.chosen == ["cheap"]


async def test_oracle_without_gold_fails_and_records_nothing_valid() -> None:
    result, store, client = await run_raw(
        oracle.with_config(models=["cheap", "mid"]), {"cheap": "A", "mid": "A"}, question=QUESTION
    )
    assert not result.ok and result.error is not None
    assert result.error.type == "ValueError"
    assert "oracle needs a gold label" in result.error.message
    assert "fix: pass gold=" in result.error.message
    assert "b" not in result.outputs
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["b"]))
    assert rec.status == "failed" and rec.output is None
    assert rec.decisions == [] and rec.effects == [] and client.calls == []


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: ModelsConfig(models=[]), r"models\n.*at least 1 model, got 0; fix: list 1"),
        (
            lambda: MajorityConfig(models=["a"]),
            r"a majority vote needs at least 2 models, got 1; fix: list 2 or more",
        ),
        (lambda: MajorityConfig(models=[]), r"at least 2 models, got 0"),
        (
            lambda: ModelsConfig(models=["a", "b", "a"]),
            r"models lists \['a'\] more than once; fix: list each model once",
        ),
        (lambda: MajorityConfig(models=["a", "a"]), r"more than once; fix"),
        (lambda: ModelsConfig(models=["a", " "]), r"model name is empty; fix"),
        (lambda: SingleConfig(model=""), r"model\n.*model name is empty; fix"),
        (lambda: SingleConfig(model="a", max_tokens=0), r"max_tokens is 0; fix"),
        (lambda: ModelsConfig(models=["a"], extractor="bogus"), r"unknown answer extractor"),
        (
            lambda: CascadeConfig(weak="a", strong="b", n_samples=1),
            r"n_samples\n.*n_samples is 1; fix: use n_samples >= 2",
        ),
        (
            lambda: CascadeConfig(weak="a", strong="a"),
            r"weak and strong are both 'a'; fix: name two different models",
        ),
        (lambda: CascadeConfig(weak="a", strong="b", threshold=0), r"threshold is 0\.0; fix"),
        (lambda: CascadeConfig(weak="a", strong="b", threshold=1.5), r"threshold is 1\.5; fix"),
        (lambda: CascadeConfig(weak="a", strong="b", threshold=math.nan), r"threshold is nan"),
        (lambda: CascadeConfig(weak="a", strong="b", temperature=0), r"temperature is 0\.0; fix"),
        (lambda: CascadeConfig(weak="a", strong="b", temperature=-1), r"temperature is -1\.0"),
        (lambda: CascadeConfig(weak="a", strong="b", temperature=math.nan), r"temperature is nan"),
        (lambda: KNNConfig(lam=math.nan), r"lam\n.*lam \(λ\) is nan; fix: use a finite λ >= 0"),
        (lambda: KNNConfig(lam=-1.0), r"lam \(λ\) is -1\.0; fix"),
        (lambda: KNNConfig(lam=math.inf), r"lam \(λ\) is inf; fix"),
        (lambda: KNNConfig(k=0), r"k\n.*k is 0; fix: use k >= 1"),
    ],
)
def test_bad_configs_are_refused(build: Any, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        build()


def test_bad_configs_are_refused_at_with_config() -> None:
    with pytest.raises(
        AgentDefinitionError, match=r"invalid config for MajorityConfig \(models: .*at least 2"
    ):
        majority_vote.with_config(models=["cheap"])
    with pytest.raises(AgentDefinitionError, match=r"ModelsConfig \(models: .*got 0"):
        random_router.with_config(models=[])
    with pytest.raises(AgentDefinitionError, match=r"ModelsConfig \(models: .*more than once"):
        oracle.with_config(models=["cheap", "cheap"])
    with pytest.raises(AgentDefinitionError, match=r"CascadeConfig \(n_samples: .*fix"):
        cascade.with_config(weak="cheap", strong="dear", n_samples=1)
    with pytest.raises(AgentDefinitionError, match=r"KNNConfig \(lam: .*nan"):
        knn_router.with_config(lam=math.nan)
    with pytest.raises(AgentDefinitionError, match=r"SingleConfig \(model: Field required"):
        single.with_config()


def test_defaults() -> None:
    assert KNNConfig() == KNNConfig(k=5, lam=1.0, extractor="option")
    c = CascadeConfig(weak="a", strong="b")
    assert (c.n_samples, c.threshold, c.extractor) == (3, 1.0, "option") and c.temperature > 0
