"""ACAR σ-routing with scripted models: every σ and mode, unreadable answers, the judge,
the verification policy, determinism and bad configuration; the fixed modes, and the
hashes of σ-routing configs and pipelines pinned from before the fixed modes existed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agents.models import ChatRequest, ChatResponse, ModelHub, ModelInfo, ModelRegistry, Usage
from orch import AgentDefinitionError, Pipeline, PipelineBuilder, arun
from orch.testing import assert_order_independent
from routers._acar import ACARConfig, acar, escalation_mode, majority, parse_verdict, sigma
from traces import Decision, MemoryStore, StepRecord


class ScriptedClient:
    """Answers from a script: (model name, sample) -> text; judge prompts -> ``judge``."""

    provider = "scripted"

    def __init__(self, script: dict[tuple[str, int], str], judge: str = "Response 2") -> None:
        self.script = script
        self.judge = judge
        self.calls: list[tuple[str, int]] = []

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        self.calls.append((model.name, request.sample))
        if request.messages[0].content.startswith("Several assistants"):
            text = self.judge
        else:
            text = self.script[(model.name, request.sample)]
        return ChatResponse(text=text, usage=Usage(input_tokens=100, output_tokens=10))

    async def aclose(self) -> None:
        return None


REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        m: {"provider": "s", "name": m, "input_per_mtok": p, "output_per_mtok": p}
        for m, p in (("probe", 1.0), ("alpha", 2.0), ("beta", 3.0), ("judge", 5.0))
    },
}


def hub(client: ScriptedClient) -> ModelHub:
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client})


def pipeline(**cfg: Any) -> Pipeline:
    config = {
        "probe_model": "probe",
        "ensemble": ["probe", "alpha", "beta"],
        "judge_model": "judge",
    }
    p = PipelineBuilder("acar")
    p.node("route", acar.with_config(**(config | cfg)), question=p.input("question", str))
    return p.build()


def probes(*answers: str) -> dict[tuple[str, int], str]:
    return {("probe", i): a for i, a in enumerate(answers)}


async def run(script: dict[tuple[str, int], str], judge: str = "Response 2", **cfg: Any) -> Any:
    client = ScriptedClient(script, judge)
    store = MemoryStore()
    result = await arun(
        pipeline(**cfg), {"question": "Q?"}, store=store, services={"models": hub(client)}
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    return result.outputs["route"], decision, client, rec


def test_sigma_and_modes() -> None:
    assert sigma(["A", "A", "A"]) == 0.0
    assert sigma(["A", "B", "A"]) == 0.5
    assert sigma(["A", "B", "C"]) == 1.0
    assert sigma([None, None, "A"]) == 1.0  # each unreadable answer is its own answer
    assert sigma(["A", "A", "B", "B", "C"]) == 0.5
    assert [escalation_mode(s) for s in (0.0, 0.5, 0.25, 1.0)] == [
        "single",
        "two-model",
        "two-model",
        "full",
    ]
    with pytest.raises(ValueError, match="at least 2 probe answers"):
        sigma(["A"])
    with pytest.raises(ValueError, match=r"σ must be in \[0, 1\]"):
        escalation_mode(float("nan"))
    assert majority(["B", "A", "A"]) == "A"
    assert majority(["B", "A"], prefer="A") == "A"
    assert majority([None, None]) is None


async def test_sigma_zero_answers_with_the_probe_only() -> None:
    out, decision, client, rec = await run(probes("\\boxed{A}", "answer is A", "A"))
    assert (out.mode, out.answer, out.sigma) == ("single", "A", 0.0)
    assert client.calls == [("probe", 0), ("probe", 1), ("probe", 2)]
    assert decision.chosen == ["single"] and decision.scores == {"sigma": 0.0}
    assert decision.reason == "all 3 probes of probe agree on 'A' (σ=0)"
    assert "fixed_mode" not in decision.parameters
    assert decision.evidence["probe_answers"] == ["A", "A", "A"]
    assert decision.evidence["models_invoked"] == ["probe"] * 3
    assert decision.evidence["cost_usd"] == pytest.approx(3 * 110 / 1e6)
    assert len(rec.effects) == 3


async def test_sigma_half_verifies_with_two_models() -> None:
    script = probes("A", "B", "A") | {("alpha", 0): "B", ("beta", 0): "B"}
    out, decision, _, _ = await run(script)
    assert (out.mode, out.sigma) == ("two-model", 0.5)
    # majority over [probe majority A, alpha B, beta B] -> B: verification overturns
    assert out.answer == "B"
    assert decision.evidence["verifier_answers"] == {"alpha": "B", "beta": "B"}
    assert out.models_invoked == ["probe", "probe", "probe", "alpha", "beta"]
    kept, _, _, _ = await run(script, verification="probe")
    assert kept.answer == "A"
    split = probes("A", "B", "A") | {("alpha", 0): "B", ("beta", 0): "C"}
    tie, _, _, _ = await run(split)
    assert tie.answer == "A"  # a three-way split goes to the probe majority


async def test_sigma_one_goes_to_the_full_ensemble_and_judge() -> None:
    script = probes("A", "B", "C") | {("probe", 0): "A", ("alpha", 0): "D", ("beta", 0): "B"}
    out, decision, _, _ = await run(script, judge="Response 2")
    assert (out.mode, out.sigma, out.answer) == ("full", 1.0, "D")
    assert decision.evidence["ensemble_answers"] == {"probe": "A", "alpha": "D", "beta": "B"}
    assert "judge judge chose response 2 (alpha: 'D')" in decision.reason
    assert out.models_invoked[-1] == "judge"


async def test_unreadable_judge_falls_back_to_the_majority() -> None:
    script = probes("A", "B", "C") | {("alpha", 0): "B", ("beta", 0): "B"}
    out, decision, _, _ = await run(script, judge="I like them all")
    assert out.answer == "B"
    assert "verdict was unreadable" in decision.reason


async def test_unreadable_probes_escalate() -> None:
    script = probes("no idea", "hmm", "A") | {("alpha", 0): "C", ("beta", 0): "C"}
    out, _, _, _ = await run(script, judge="Response 3")
    assert out.probe_answers == [None, None, "A"]
    assert out.mode == "full" and out.answer == "C"


async def test_numbers_and_more_probes() -> None:
    script = {
        ("probe", i): t for i, t in enumerate(["1,000", "1000.0", "\\boxed{1000}", "999", "1000"])
    }
    script |= {("alpha", 0): "1000", ("beta", 0): "1000"}
    out, decision, _, _ = await run(script, extractor="number", n_probes=5)
    assert out.sigma == 0.25 and out.mode == "two-model" and out.answer == "1000"
    assert decision.parameters["n_probes"] == 5


def test_parse_verdict() -> None:
    assert parse_verdict("Response 3", 3) == 2
    assert parse_verdict("I pick answer #1.", 3) == 0
    assert parse_verdict("2", 3) == 1
    assert parse_verdict("Response 4", 3) is None
    assert parse_verdict("none", 3) is None


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        ACARConfig(probe_model="p", ensemble=["a", "b", "c"], judge_model="j", n_probes=1)
    with pytest.raises(AgentDefinitionError, match=r"invalid config for ACARConfig \(n_probes"):
        acar.with_config(probe_model="p", ensemble=["a", "b", "c"], judge_model="j", n_probes=1)
    with pytest.raises(ValidationError, match="ensemble models must be distinct"):
        ACARConfig(probe_model="p", ensemble=["a", "a", "c"], judge_model="j")
    with pytest.raises(ValidationError, match="unknown answer extractor"):
        ACARConfig(probe_model="p", ensemble=["a", "b", "c"], judge_model="j", extractor="x")
    with pytest.raises(ValidationError, match="at least 3 items"):
        ACARConfig(probe_model="p", ensemble=["a", "b"], judge_model="j")


async def test_decisions_are_order_independent() -> None:
    script = probes("A", "B", "A") | {("alpha", 0): "B", ("beta", 0): "A"}
    await assert_order_independent(
        pipeline(), {"question": "Q?"}, shuffles=3, services={"models": hub(ScriptedClient(script))}
    )


# -- fixed modes -------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "probe_model": "probe",
    "ensemble": ["probe", "alpha", "beta"],
    "judge_model": "judge",
}


def test_sigma_routing_configs_keep_their_hashes() -> None:
    """Hashes computed before ``fixed_mode`` existed: unset, it is not in the canonical
    config, so no recorded ACAR config hash or spec hash changes."""
    routing = acar.with_config(**BASE)
    assert routing.config_hash == (
        "sha256:33e8f35d4962aebb0a502c3d352f7b36a71ea1e6848790c628571c7660103ee3"
    )
    assert pipeline().spec_hash == (
        "sha256:486b30b612328d785eb4edac13ad3b1a4e7bbdade0f071fafb2ab0d6c623424c"
    )
    tuned = acar.with_config(**BASE, n_probes=5, extractor="number", verification="probe")
    assert tuned.config_hash == (
        "sha256:f63758ac95034370d276be88297cc79f9cd47ff8e4f5fd89259b01a5abb90049"
    )
    assert "fixed_mode" not in ACARConfig(**BASE).model_dump()
    assert "fixed_mode" not in ACARConfig(**BASE, fixed_mode=None).model_dump()
    fixed = acar.with_config(**BASE, fixed_mode="full")
    assert fixed.config.model_dump()["fixed_mode"] == "full"
    hashes = {
        acar.with_config(**BASE, fixed_mode=m).config_hash
        for m in ("single", "two-model", "full", "full-no-probes")
    }
    assert len(hashes | {routing.config_hash}) == 5
    with pytest.raises(ValidationError, match="fixed_mode"):
        ACARConfig(**BASE, fixed_mode="sometimes")


async def test_a_fixed_mode_runs_whatever_sigma_says() -> None:
    agree = probes("A", "A", "A") | {("alpha", 0): "B", ("beta", 0): "B"}
    out, decision, client, _ = await run(agree, fixed_mode="two-model")
    # σ = 0 would stop at the probes; the fixed mode verifies, and the verifiers overturn.
    assert (out.mode, out.sigma, out.answer) == ("two-model", 0.0, "B")
    assert client.calls == [("probe", 0), ("probe", 1), ("probe", 2), ("alpha", 0), ("beta", 0)]
    assert decision.chosen == ["two-model"] and decision.scores == {"sigma": 0.0}
    assert decision.parameters["fixed_mode"] == "two-model"
    assert decision.reason.startswith("fixed mode two-model (σ=0.00): probe majority 'A'")

    split = probes("A", "B", "A")
    out, decision, client, _ = await run(split, fixed_mode="single")
    assert (out.mode, out.sigma, out.answer) == ("single", 0.5, "A")
    assert client.calls == [("probe", 0), ("probe", 1), ("probe", 2)]
    assert decision.reason == "fixed mode single (σ=0.50): the majority of 3 probes of probe, 'A'"

    out, decision, client, _ = await run(agree, judge="Response 3", fixed_mode="full")
    assert (out.mode, out.sigma, out.answer) == ("full", 0.0, "B")
    assert out.models_invoked == ["probe"] * 4 + ["alpha", "beta", "judge"]
    assert decision.evidence["ensemble_answers"] == {"probe": "A", "alpha": "B", "beta": "B"}


async def test_full_no_probes_asks_the_ensemble_and_judge_only() -> None:
    script = {("probe", 0): "A", ("alpha", 0): "D", ("beta", 0): "D"}
    out, decision, client, rec = await run(script, judge="Response 2", fixed_mode="full-no-probes")
    assert client.calls == [("probe", 0), ("alpha", 0), ("beta", 0), ("judge", 0)]
    assert len(rec.effects) == 4
    # No probes: the result assumes σ = 1 (its type has no "none"); the decision says so.
    assert (out.mode, out.sigma, out.answer, out.probe_answers) == ("full", 1.0, "D", [])
    assert decision.scores == {} and decision.evidence["sigma"] is None
    assert decision.evidence["probe_answers"] == []
    assert decision.reason.startswith("fixed mode full-no-probes (no probes): full ensemble")
    assert decision.parameters["fixed_mode"] == "full-no-probes"
