"""AMRO-S arithmetic against hand-computed values: fusion, heuristic, transition, sampling
with the step's RNG, deposits with evaporation and clamping, versions, bad input."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from routers._amro import (
    AMROParams,
    Candidate,
    PheromoneState,
    Trajectory,
    choose,
    deposit,
    fused,
    heuristic,
    transition,
)


def state_with(tables: dict[str, dict[str, float]], **params: float) -> PheromoneState:
    return PheromoneState(params=AMROParams(**params), tables=tables)


def test_fusion_mixes_task_tables() -> None:
    s = state_with({"math": {"^->m1": 4.0}, "code": {"^->m1": 2.0}})
    # 0.75*4 + 0.25*2 = 3.5 ; an unseen edge is tau0 = 1 in every table
    assert fused(s, {"math": 0.75, "code": 0.25}, "^", "m1") == pytest.approx(3.5)
    assert fused(s, {"math": 0.75, "code": 0.25}, "^", "m2") == pytest.approx(1.0)


def test_heuristic() -> None:
    c = Candidate(name="m", ability=0.8, load=1, latency_s=3)
    # 0.5*0.8 + 0.25/2 + 0.25/4 = 0.4 + 0.125 + 0.0625
    assert heuristic(c) == pytest.approx(0.5875)


def test_transition_probabilities() -> None:
    s = state_with({"math": {"^->a": 2.0, "^->b": 1.0}})
    cands = [Candidate(name="a", ability=1.0), Candidate(name="b", ability=0.0)]
    rows = transition(s, {"math": 1.0}, "^", cands)
    # eta_a = 0.5 + 0.25 + 0.25 = 1.0 ; eta_b = 0.5 ; weights 2*1^2 = 2 and 1*0.5^2 = 0.25
    assert [r["eta"] for r in rows] == [pytest.approx(1.0), pytest.approx(0.5)]
    assert rows[0]["p"] == pytest.approx(2 / 2.25)
    assert rows[1]["p"] == pytest.approx(0.25 / 2.25)
    assert choose(rows, None) == ("a", None)
    first = choose(rows, random.Random(7))
    assert first == choose(rows, random.Random(7))  # the same seed, the same draw
    picks = [choose(rows, random.Random(i))[0] for i in range(2000)]
    assert picks.count("a") / len(picks) == pytest.approx(2 / 2.25, abs=0.03)


def test_deposit_arithmetic_and_clamping() -> None:
    s0 = PheromoneState()
    traj = Trajectory(weights={"math": 0.5, "code": 0.5}, path=["a", "x"], cost_usd=0.5)
    s1 = deposit(s0, [traj])
    gain = 1.0 / (0.5 + 1e-6)
    # each table: tau <- 0.9 * 1 + 0.5 * gain on both edges of the path
    expected = 0.9 * 1.0 + 0.5 * gain
    assert s1.tau("math", "^", "a") == pytest.approx(expected)
    assert s1.tau("code", "a", "x") == pytest.approx(expected)
    assert s1.tau("math", "^", "b") == 1.0  # untouched edges keep tau0
    assert s1.parent == s0.version and s1.version != s0.version
    cheap = Trajectory(weights={"math": 1.0}, path=["a"], cost_usd=0.0)
    assert deposit(s0, [cheap]).tau("math", "^", "a") == 10.0  # clamped to tau_max
    poor = state_with({"math": {"^->a": 0.011}}, q=1e-9)
    after = deposit(poor, [Trajectory(weights={"math": 1.0}, path=["a"], cost_usd=100.0)])
    assert after.tau("math", "^", "a") == 0.01  # clamped to tau_min


def test_deposits_are_deterministic_and_ordered() -> None:
    batch = [
        Trajectory(weights={"math": 1.0}, path=["a"], cost_usd=0.1),
        Trajectory(weights={"general": 1.0}, path=["b"], cost_usd=0.2),
    ]
    assert deposit(PheromoneState(), batch).version == deposit(PheromoneState(), batch).version


def test_bad_input_is_refused() -> None:
    s = PheromoneState()
    with pytest.raises(ValueError, match="sum to 1"):
        fused(s, {"math": 0.5}, "^", "a")
    with pytest.raises(ValueError, match="finite and >= 0"):
        fused(s, {"math": math.nan}, "^", "a")
    with pytest.raises(ValueError, match="empty"):
        fused(s, {}, "^", "a")
    with pytest.raises(ValueError, match="no candidates"):
        transition(s, {"math": 1.0}, "^", [])
    with pytest.raises(ValidationError, match="within"):
        AMROParams(tau0=20)
    with pytest.raises(ValidationError):
        Candidate(name="x", ability=1.5)
    with pytest.raises(ValidationError):
        Trajectory(weights={"m": 1.0}, path=["a"], cost_usd=-1)
