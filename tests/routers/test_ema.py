"""EMA statistics and panel ranking against hand-computed values; versioned, deterministic
state; bad feedback refused."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from routers._ema import AgentStats, EMAState, Observation, apply_feedback, panel, panel_score


def test_defaults_score() -> None:
    # 0.5 + 0.1*0.9 - 0.3*min(2000/5000, 3) - 0.1*min(0/0.002, 3) = 0.5 + 0.09 - 0.12 = 0.47
    assert panel_score(AgentStats()) == pytest.approx(0.47)


def test_first_observation_initialises_then_ema() -> None:
    s0 = EMAState()
    s1 = apply_feedback(
        s0, [Observation(agent="a", ok=True, latency_ms=1000, cost_usd=0.001, quality=1.0)]
    )
    a = s1.stats("a")
    assert (a.quality, a.latency_ms, a.cost_usd, a.stability) == (1.0, 1000.0, 0.001, 1.0)
    s2 = apply_feedback(
        s1, [Observation(agent="a", ok=False, latency_ms=3000, cost_usd=0.003, quality=0.0)]
    )
    a = s2.stats("a")
    assert a.quality == pytest.approx(0.2 * 0 + 0.8 * 1.0)  # 0.8
    assert a.latency_ms == pytest.approx(0.2 * 3000 + 0.8 * 1000)  # 1400
    assert a.cost_usd == pytest.approx(0.2 * 0.003 + 0.8 * 0.001)  # 0.0014
    assert a.stability == pytest.approx(0.8)
    assert a.counts == {"cost_usd": 2, "latency_ms": 2, "quality": 2, "stability": 2}
    # 0.8 + 0.1*0.8 - 0.3*(1400/5000) - 0.1*(0.0014/0.002) = 0.8 + 0.08 - 0.084 - 0.07
    assert panel_score(a) == pytest.approx(0.726)


def test_quality_waits_for_feedback() -> None:
    s = apply_feedback(EMAState(), [Observation(agent="a", ok=True, latency_ms=500, cost_usd=0)])
    a = s.stats("a")
    assert a.quality == 0.5 and "quality" not in a.counts  # the default stands in
    s = apply_feedback(s, [Observation(agent="a", ok=True, latency_ms=500, cost_usd=0, quality=0)])
    assert s.stats("a").quality == 0.0  # first quality observation initialises


def test_caps_in_the_score() -> None:
    slow = AgentStats(latency_ms=50_000, cost_usd=1.0)
    # both penalties capped at 3: 0.5 + 0.09 - 0.9 - 0.3
    assert panel_score(slow) == pytest.approx(-0.61)


def test_panel_ranking_and_ties() -> None:
    state = apply_feedback(
        EMAState(),
        [
            Observation(agent="fast", ok=True, latency_ms=500, cost_usd=0.0, quality=1.0),
            Observation(agent="slow", ok=True, latency_ms=9000, cost_usd=0.0, quality=1.0),
            Observation(agent="cheap", ok=True, latency_ms=500, cost_usd=0.0, quality=1.0),
        ],
    )
    ranked = panel(state, ["slow", "fast", "cheap", "new"], k=3)
    assert [a for a, _ in ranked] == ["cheap", "fast", "slow"]  # cheap/fast tie -> by name
    assert ranked[0][1] == pytest.approx(1.0 + 0.1 - 0.3 * 0.1)
    assert ranked[2][1] == pytest.approx(1.0 + 0.1 - 0.3 * 1.8)  # 0.56 beats new's 0.47
    assert panel(state, ["slow", "fast", "cheap", "new"], k=4)[3] == ("new", pytest.approx(0.47))
    with pytest.raises(ValueError, match="at least one agent"):
        panel(state, [])
    with pytest.raises(ValueError, match="k >= 1"):
        panel(state, ["a"], k=0)


def test_versions_chain_and_are_deterministic() -> None:
    batch = [
        Observation(agent=a, ok=True, latency_ms=100 * i, cost_usd=0.0, quality=i % 2)
        for i, a in enumerate(["x", "y", "x", "z"])
    ]
    s0 = EMAState()
    s1 = apply_feedback(s0, batch)
    assert s1.parent == s0.version
    assert apply_feedback(s0, batch).version == s1.version
    assert apply_feedback(s0, list(reversed(batch))).version != s1.version  # order matters


def test_bad_feedback_is_refused() -> None:
    with pytest.raises(ValidationError, match="finite"):
        Observation(agent="a", ok=True, latency_ms=math.inf, cost_usd=0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Observation(agent="a", ok=True, latency_ms=1, cost_usd=-0.5)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Observation(agent="a", ok=True, latency_ms=1, cost_usd=0, quality=2)
