"""The bad inputs issue 4 names, in one place: each is refused with a clear error that names
the thing and the fix, and nothing is recorded as if it were valid."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from agents.models import ModelRegistry, RegistryError
from orch import PipelineBuilder, arun
from routers import (
    ACARConfig,
    AgentRegistry,
    EMAState,
    LearnEntry,
    Observation,
    OrchConfig,
    orch_observations,
    panel,
    sigma,
    tcar_router,
)
from routers._amro import PheromoneState, Trajectory, deposit
from routers._orch_merge import OrchMergeResult
from traces import MemoryStore, StepRecord


async def test_empty_agent_registry() -> None:
    p = PipelineBuilder("empty-registry")
    p.node("route", tcar_router, query=p.input("query", str))
    store = MemoryStore()
    result = await arun(
        p.build(), {"query": "hi"}, store=store, services={"agents": AgentRegistry()}
    )
    assert result.error is not None and "registry is empty" in result.error.message
    assert "fix:" in result.error.message
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    assert rec.status == "failed" and rec.output is None and rec.decisions == []


def test_zero_models() -> None:
    with pytest.raises(ValidationError, match="agents"):
        OrchConfig(agents=[])
    with pytest.raises(ValueError, match="at least one agent"):
        panel(EMAState(), [], 3)
    with pytest.raises(ValidationError, match="ensemble"):
        ACARConfig(probe_model="p", ensemble=[], judge_model="j")


def test_fewer_than_two_probes() -> None:
    with pytest.raises(ValidationError, match="n_probes"):
        ACARConfig(probe_model="a", ensemble=["a", "b", "c"], judge_model="j", n_probes=1)
    with pytest.raises(ValueError, match="fix: use n_probes >= 2"):
        sigma(["A"])


@pytest.mark.parametrize("price", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_prices(price: float) -> None:
    with pytest.raises(RegistryError, match=r"input_per_mtok.*fix: correct that entry"):
        ModelRegistry.from_dict(
            {
                "providers": {"s": {"kind": "simulated"}},
                "models": {"m": {"provider": "s", "name": "m", "input_per_mtok": price}},
            }
        )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_nan_scores(bad: float) -> None:
    with pytest.raises(ValidationError):
        Observation(agent="a", ok=True, latency_ms=bad, cost_usd=0.0)
    with pytest.raises(ValidationError):
        Observation(agent="a", ok=True, latency_ms=1.0, cost_usd=0.0, quality=bad)
    with pytest.raises(ValidationError):
        LearnEntry(question="q", weights={"t": 1.0}, path=["a"], cost_usd=bad, answer="A")
    with pytest.raises(ValueError, match="finite"):
        deposit(PheromoneState(), [Trajectory(weights={"t": bad}, path=["a"], cost_usd=0.1)])


def test_missing_gold_labels() -> None:
    result = OrchMergeResult(
        answer="B",
        panel=["a"],
        merger="a",
        subquestions=["s1", "s2", "s3"],
        decomposition="fallback",
        analyses=[],
        merge_text="B",
        merge_cost_usd=0.0,
        cost_usd=0.0,
        state_version="sha256:" + "0" * 64,
    )
    with pytest.raises(ValueError, match=r"needs the gold answer.*fix:"):
        orch_observations(result, None)
    assert orch_observations(result, None, delayed=True)[0].quality is None
