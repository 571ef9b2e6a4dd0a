"""Trained model routers' state: deterministic training in any order, JSON round trips,
learned predictions, the quality-cost and threshold rules, threshold calibration to a
strong-call share, and damaged states refused."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routers import (
    ArrayData,
    ClassifierTraining,
    MFRouterState,
    MFTraining,
    SWRouterState,
    SWTraining,
    TfidfEmbedder,
    calibrate_threshold,
    load_state,
    predict_quality,
    save_state,
    state_history,
    threshold_for_share,
    train_classifier_router,
    train_mf_router,
    train_sw_router,
    two_model_scores,
)
from routers._quality import (
    ALWAYS_STRONG,
    NEVER_STRONG,
    choose_by_cost,
    choose_by_threshold,
    quality_table,
    strong_and_weak,
)
from routers._quality_sw import bradley_terry
from routers.errors import RouterStateError
from traces import MemoryStore, canonical_bytes, hash_value

TOPICS = {
    "math": "solve the equation integral derivative algebra",
    "chat": "hello how are you today friendly greeting",
    "code": "python function compile loop variable",
}
COST = {"cheap": 1e-4, "mid": 5e-4, "dear": 2e-3}


def examples(models: tuple[str, ...] = ("cheap", "dear"), n: int = 36) -> list[dict[str, Any]]:
    """Math needs the dear model, chat any model, code the mid one (and the dear one)."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        words = TOPICS[topic].split()
        text = " ".join(rng.sample(words, 4)) + f" case {i}"
        right = {
            "cheap": topic == "chat",
            "mid": topic != "math",
            "dear": True,
        }
        out.append(
            {
                "query": text,
                "quality": {m: float(right[m]) for m in models},
                "cost_usd": {m: COST[m] for m in models},
            }
        )
    return out


def tfidf(ex: list[dict[str, Any]]) -> TfidfEmbedder:
    return TfidfEmbedder.fit([e["query"] for e in ex], ngram_range=(1, 1))


TRAINERS = {
    "classifier": (train_classifier_router, ClassifierTraining(sentence=False)),
    "MF": (train_mf_router, MFTraining(sentence=False, iterations=150, learning_rate=0.05)),
    "SW": (train_sw_router, SWTraining(sentence=False, gamma=10.0)),
}


def train(kind: str, ex: list[dict[str, Any]], **update: Any) -> Any:
    fn, config = TRAINERS[kind]
    return fn(ex, config=config.model_copy(update=update))


# -- training data ---------------------------------------------------------------------------


def test_quality_table_is_canonical() -> None:
    ex = examples(("cheap", "mid", "dear"))
    table = quality_table(ex)
    shuffled = quality_table(random.Random(1).sample(ex, len(ex)))
    assert table.texts == shuffled.texts and table.training_set == shuffled.training_set
    assert np.array_equal(table.quality, shuffled.quality)
    assert table.models == ["cheap", "dear", "mid"]
    assert table.mean_cost == pytest.approx([1e-4, 2e-3, 5e-4])
    assert table.mean_quality[1] == 1.0 and table.mean_quality[0] == pytest.approx(1 / 3)
    assert quality_table(ex[:-1]).training_set != table.training_set
    with pytest.raises(ValueError, match=r"example 1 scores models .*fix: give every example"):
        quality_table([ex[0], {**ex[1], "quality": {"cheap": 1.0}, "cost_usd": {"cheap": 0.0}}])


@pytest.mark.parametrize("kind", list(TRAINERS))
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_training_is_deterministic_in_any_order(kind: str, seed: int) -> None:
    ex = examples()
    state = train(kind, ex)
    again = train(kind, random.Random(seed).sample(ex, len(ex)))
    assert again.version == state.version
    assert state.training_set == quality_table(ex).training_set and state.examples == len(ex)


def test_configs_and_seeds_change_the_state() -> None:
    ex = examples()
    assert train("MF", ex).version != train("MF", ex, seed=1).version
    assert train("classifier", ex).version != train("classifier", ex, c=0.1).version
    assert train("SW", ex).version != train("SW", ex, gamma=1.0).version


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_state_round_trips_through_json_and_the_store(kind: str) -> None:
    state = train(kind, examples())
    again = type(state).model_validate_json(canonical_bytes(state))
    assert again == state and hash_value(again) == state.version
    store = MemoryStore()
    version = save_state(store, state)
    assert version == state.version and load_state(store, version, type(state)) == state
    (link,) = state_history(store, version)
    assert f"over 2 models, {len(examples())} training queries" in link.summary
    texts = ["solve the integral", "hello friendly greeting"]
    assert np.array_equal(predict_quality(again, texts), predict_quality(state, texts))


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_predictions_learn_which_model_a_query_needs(kind: str) -> None:
    ex = examples()
    state = train(kind, ex)
    q = predict_quality(state, ["algebra integral derivative", "hello greeting friendly"])
    cheap, dear = state.models.index("cheap"), state.models.index("dear")
    assert ((q >= 0) & (q <= 1)).all()
    gap_math, gap_chat = q[0, dear] - q[0, cheap], q[1, dear] - q[1, cheap]
    assert gap_math > 0.2 and gap_math > gap_chat + 0.2


def test_default_embedder_follows_the_config() -> None:
    state = train("classifier", examples())
    assert state.embedder.kind == "tfidf"
    given_one = train_classifier_router(examples(), tfidf(examples()))
    assert given_one.embedder == tfidf(examples()).spec


def test_classifier_soft_labels_and_constant_models() -> None:
    ex = [
        {"query": f"word{i} other", "quality": {"a": 0.5, "b": 1.0}, "cost_usd": {"a": 0, "b": 0}}
        for i in range(8)
    ]
    state = train_classifier_router(ex, config=ClassifierTraining(sentence=False))
    bias = state.bias.to_numpy()
    # a: half right everywhere, so the soft-label fit is even; b: right on every example.
    assert abs(float(bias[0])) < 1e-3
    assert float(bias[1]) == pytest.approx(math.log((8 + 0.5) / 0.5), rel=1e-6)
    assert not state.weight.to_numpy()[:, 1].any()
    q = predict_quality(state, ["word3 other"])[0]
    assert q[0] == pytest.approx(0.5, abs=0.05) and q[1] > 0.9


def test_mf_state_holds_the_factorisation() -> None:
    state: MFRouterState = train("MF", examples(), dim=4)
    dim, features = state.projection.shape
    assert dim == 4 and state.model_vectors.shape == [2, 4] and state.weight.shape == [4]
    assert features == len(state.embedder.terms)  # type: ignore[union-attr]


def test_sw_state_keeps_texts_and_quality() -> None:
    ex = examples()
    state: SWRouterState = train("SW", ex)
    assert state.texts == quality_table(ex).texts
    assert state.quality.to_numpy().shape == (len(ex), 2)


def test_bradley_terry_two_models_is_the_win_ratio() -> None:
    wins = np.array([[[0.0, 3.0], [1.0, 0.0]]])
    theta = bradley_terry(wins, 50)
    assert theta[0, 0] - theta[0, 1] == pytest.approx(math.log(3.0))
    assert theta.sum() == pytest.approx(0.0, abs=1e-12)
    # Three models: a MLE's gradient is zero (each model's expected wins = its wins).
    w3 = np.array([[[0.0, 4.0, 2.0], [1.0, 0.0, 3.0], [2.0, 1.0, 0.0]]])
    t3 = bradley_terry(w3, 50)[0]
    p = 1 / (1 + np.exp(-(t3[:, None] - t3[None, :])))
    games = w3[0] + w3[0].T
    assert (games * p).sum(axis=1) == pytest.approx(w3[0].sum(axis=1))


# -- damaged states and embedders ------------------------------------------------------------


def test_damaged_arrays_and_wrong_embedders_are_refused() -> None:
    state = train("classifier", examples())
    wrong = state.model_copy(update={"bias": ArrayData.of(np.zeros(3, np.float32))})
    with pytest.raises(RouterStateError, match="fix: the state is damaged, retrain it"):
        predict_quality(wrong, ["x"])
    other = TfidfEmbedder.fit(["another vocabulary entirely"])
    with pytest.raises(RouterStateError, match="not the one this router state was trained with"):
        predict_quality(state, ["x"], embedder=other)
    mf = train("MF", examples())
    bad = mf.model_copy(update={"weight": ArrayData.of(np.ones(5, np.float32))})
    with pytest.raises(RouterStateError, match="MF router arrays"):
        predict_quality(bad, ["x"])
    with pytest.raises(ValueError, match="texts or features"):
        predict_quality(state)


# -- decisions -------------------------------------------------------------------------------


def test_choose_by_cost_trades_quality_for_cost_with_ties_by_name() -> None:
    models = ["cheap", "dear"]
    assert choose_by_cost(models, [0.5, 0.9], [1e-4, 2e-3], 0.0)[0] == "dear"
    # break-even λ = Δq / Δc = 0.4 / 1.9e-3 ≈ 210.5
    assert choose_by_cost(models, [0.5, 0.9], [1e-4, 2e-3], 200.0)[0] == "dear"
    model, utility = choose_by_cost(models, [0.5, 0.9], [1e-4, 2e-3], 220.0)
    assert model == "cheap" and utility == pytest.approx({"cheap": 0.478, "dear": 0.46})
    assert choose_by_cost(["b", "a"], [0.5, 0.5], [0.0, 0.0], 1.0)[0] == "a"


def test_choose_by_threshold_and_strong_default() -> None:
    assert choose_by_threshold({"s": 0.8, "w": 0.5}, "s", "w", 0.3) == ("s", pytest.approx(0.3))
    assert choose_by_threshold({"s": 0.8, "w": 0.5}, "s", "w", 0.31)[0] == "w"
    state = train("classifier", examples())
    assert strong_and_weak(state) == ("dear", "cheap")  # dear is right more often
    assert strong_and_weak(state, "cheap") == ("cheap", "dear")
    with pytest.raises(ValueError, match="not one of the state's models"):
        strong_and_weak(state, "other")
    three = train("classifier", examples(("cheap", "mid", "dear")))
    with pytest.raises(ValueError, match=r"has 3 .*fix: train on two models, or route by λ"):
        strong_and_weak(three)


def test_threshold_for_share_ends_ties_and_bad_shares() -> None:
    scores = [0.9, 0.1, 0.5, 0.7]
    assert threshold_for_share(scores, 0.0) == NEVER_STRONG
    assert threshold_for_share(scores, 1.0) == ALWAYS_STRONG
    assert threshold_for_share(scores, 0.5) == pytest.approx(0.6)
    assert threshold_for_share(scores, 0.25) == pytest.approx(0.8)
    tied = [0.5, 0.5, 0.5, 0.1]
    t = threshold_for_share(tied, 0.5)  # 2 wanted: all three tied (3) or none (0) -> 3
    assert sum(s >= t for s in tied) == 3
    t1 = threshold_for_share(tied, 0.25)  # 1 wanted: 0 or 3 -> 0 (fewer on a near draw)
    assert sum(s >= t1 for s in tied) == 0
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="fix: use a share in"):
            threshold_for_share(scores, bad)
    with pytest.raises(ValueError, match="at least one calibration text"):
        threshold_for_share([], 0.5)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=60, unique=True),
    share=st.floats(0, 1),
)
def test_threshold_for_share_hits_the_share_on_distinct_scores(
    scores: list[float], share: float
) -> None:
    t = threshold_for_share(scores, share)
    strong = sum(s >= t for s in scores)
    assert strong == math.floor(share * len(scores) + 0.5)
    assert t == threshold_for_share(list(reversed(scores)), share)


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_calibrate_threshold_hits_the_target_share(kind: str) -> None:
    state = train(kind, examples())
    texts = [e["query"] for e in examples(n=60)] + ["unseen words here", "zebra"]
    scores = two_model_scores(state, texts)
    for share in (0.1, 0.3, 0.5, 0.9):
        t = calibrate_threshold(state, texts, share)
        got = float(np.mean(scores >= t))
        # Exact unless scores tie across the cut (then within the tied block).
        ties = len(scores) - len(np.unique(scores))
        assert abs(got - share) <= (0.5 + ties) / len(texts)
