"""agents' pytest plugin (agents.testing): a pipeline that calls models, tested the way a
user tests theirs, with the ``scripted_models`` fixture for the models and orch's
``replays_clean`` for the record."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel

import orch
from agents.errors import RegistryError
from agents.models import ChatMessage, ChatRequest, ModelHub
from agents.testing import SCRIPTED_PROVIDER, scripted_hub
from orch import Context, PipelineBuilder, agent
from traces import EffectRecord, MemoryStore, StepRecord


class Question(BaseModel):
    question: str


class Verdict(BaseModel):
    answers: list[str]
    agreed: bool


@agent(name="two-opinions", version="1")
async def two_opinions(q: Question, ctx: Context) -> Verdict:
    hub: ModelHub = ctx.service("models")
    answers = []
    for model in ("fast", "slow"):
        reply = await hub.chat(
            ctx,
            ChatRequest(model=model, messages=[ChatMessage(role="user", content=q.question)]),
        )
        answers.append(reply.text)
    ctx.decide(
        candidates=["agree", "disagree"],
        chosen="agree" if len(set(answers)) == 1 else "disagree",
        reason=f"answers {answers}",
    )
    return Verdict(answers=answers, agreed=len(set(answers)) == 1)


@agent(name="sampler", version="1")
async def sampler(q: Question, ctx: Context) -> Verdict:
    hub: ModelHub = ctx.service("models")
    answers = []
    for sample in range(3):
        request = ChatRequest(
            model="fast", messages=[ChatMessage(role="user", content=q.question)], sample=sample
        )
        answers.append((await hub.chat(ctx, request)).text)
    return Verdict(answers=answers, agreed=len(set(answers)) == 1)


def pipeline(step: orch.FunctionAgent = two_opinions) -> orch.Pipeline:
    p = PipelineBuilder("opinions")
    p.output("verdict", p.node("ask", step, question=p.input("question", str)))
    return p.build()


def test_pipeline_on_scripted_models_replays_clean(
    scripted_models: Callable[..., ModelHub],
    orch_store: MemoryStore,
    replays_clean: Callable[..., orch.RunResult],
) -> None:
    hub = scripted_models({"fast": "B", "slow": lambda request: "C"})
    p = pipeline()
    result = orch.run(p, {"question": "Which?"}, store=orch_store, services={"models": hub})
    assert result.ok
    assert result.outputs["verdict"] == Verdict(answers=["B", "C"], agreed=False)
    calls = hub.client(SCRIPTED_PROVIDER).calls  # type: ignore[attr-defined]
    assert [model for model, _ in calls] == ["fast", "slow"]

    # Replay serves both calls from the record: the scripted client is not called again.
    replayed = replays_clean(result, pipeline=p, services={"models": hub})
    assert replayed.outputs["verdict"] == result.outputs["verdict"]
    assert len(calls) == 2


def test_the_fixture_is_the_factory(scripted_models: Callable[..., ModelHub]) -> None:
    assert scripted_models is scripted_hub


def test_a_list_answers_by_sample_and_a_missing_sample_fails_the_step() -> None:
    store = MemoryStore()
    hub = scripted_hub({"fast": ["A", "A", "B"]})
    result = orch.run(pipeline(sampler), {"question": "q"}, store=store, services={"models": hub})
    assert result.outputs["verdict"].answers == ["A", "A", "B"]

    short = scripted_hub({"fast": ["A", "A"]})
    failed = orch.run(pipeline(sampler), {"question": "q"}, store=store, services={"models": short})
    assert failed.status == "failed"
    assert failed.error is not None
    assert "scripted model 'fast' has 2 replies, none for sample 2" in failed.error.message
    assert "fix: give it a reply per sample" in failed.error.message


def test_a_function_sees_the_request() -> None:
    hub = scripted_hub(
        {"fast": lambda r: r.messages[0].content[::-1], "slow": lambda r: f"#{r.sample}"}
    )
    result = orch.run(
        pipeline(), {"question": "abc"}, store=MemoryStore(), services={"models": hub}
    )
    assert result.outputs["verdict"].answers == ["cba", "#0"]


def test_prices_make_costs_and_unknown_models_are_named() -> None:
    store = MemoryStore()
    hub = scripted_hub({"fast": "B", "slow": "B"}, prices={"fast": (1.0, 2.0)})
    result = orch.run(pipeline(), {"question": "q" * 40}, store=store, services={"models": hub})
    step = StepRecord.model_validate(store.get_value(dict(result.record.steps)["ask"]))
    costs = [EffectRecord.model_validate(store.get_value(k)).cost_usd for k in step.effects]
    # 40 characters are 10 input tokens, "B" is 1 output token: (10*1 + 1*2) / 1e6 USD.
    assert costs == [pytest.approx(12e-6), 0.0]

    with pytest.raises(ValueError, match=r"prices name models with no scripted replies: \['x'\]"):
        scripted_hub({"fast": "B"}, prices={"x": (1.0, 1.0)})
    with pytest.raises(ValueError, match=r"scripted model 'fast': its reply is a int; fix:"):
        scripted_hub({"fast": 3})  # type: ignore[dict-item]
    with pytest.raises(RegistryError, match="unknown model 'nope'"):
        scripted_hub({"fast": "B"}).registry.model("nope")
