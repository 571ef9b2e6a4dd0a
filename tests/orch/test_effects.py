"""Effects: recorded in record mode, served in replay (with divergence reports), reused in
resume so that no finished call is made twice."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent, arun
from orch._effects import EffectSource
from orch._replay import areplay
from traces import EffectRecord, MemoryStore, StepRecord, verify_run
from traces._diff import field_diff


class Prompt(BaseModel):
    question: str


class Reply(BaseModel):
    text: str
    tokens_in: int
    tokens_out: int


class Cfg(BaseModel):
    template: str = "Q: {q}"
    model: str = "m-small"


class FakeServer:
    """Stands in for a model server: counts the requests it sees."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0

    async def chat(self, request: dict[str, Any]) -> Reply:
        self.requests.append(request)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("server went away")
        prompt = request["prompt"]
        return Reply(text=prompt.upper(), tokens_in=len(prompt), tokens_out=len(prompt))


SERVER = FakeServer()


def meter(r: Reply) -> tuple[dict[str, int], float]:
    return {"input_tokens": r.tokens_in, "output_tokens": r.tokens_out}, r.tokens_in * 1e-6


@agent(name="ask", version="1", config=Cfg)
async def ask(p: Prompt, ctx: Context) -> Reply:
    cfg: Cfg = ctx.config
    request = {"model": cfg.model, "prompt": cfg.template.format(q=p.question)}
    first = await ctx.effect(
        "model", cfg.model, request, lambda: SERVER.chat(request), response_model=Reply, meter=meter
    )
    follow = {"model": cfg.model, "prompt": "again: " + first.text}
    return await ctx.effect(
        "model", cfg.model, follow, lambda: SERVER.chat(follow), response_model=Reply, meter=meter
    )


def pipeline(template: str = "Q: {q}") -> Pipeline:
    p = PipelineBuilder("effects")
    q = p.input("question", str)
    a = p.node("a", ask.with_config(template=template), question=q)
    p.node("b", ask.with_config(template=template), question=a.field("text"))
    return p.build()


@pytest.fixture(autouse=True)
def _fresh_server() -> None:
    SERVER.requests.clear()
    SERVER.fail_next = 0


async def test_effects_are_recorded_with_usage_and_verified() -> None:
    store = MemoryStore()
    result = await arun(pipeline(), {"question": "hi"}, store=store)
    assert result.ok
    assert len(SERVER.requests) == 4
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["a"]))
    assert len(rec.effects) == 2
    eff = EffectRecord.model_validate(store.get_value(rec.effects[0]))
    assert (eff.step_id, eff.index, eff.kind, eff.target) == ("a", 0, "model", "m-small")
    assert store.get_value(eff.request) == {"model": "m-small", "prompt": "Q: hi"}
    assert eff.usage == {"input_tokens": 5, "output_tokens": 5}
    assert eff.cost_usd == pytest.approx(5e-6)
    report = verify_run(store, result.run_id)
    assert report.ok and report.checked["effects"] == 4


async def test_replay_is_clean_and_calls_nothing() -> None:
    store = MemoryStore()
    original = await arun(pipeline(), {"question": "hi"}, store=store, seed=5)
    SERVER.requests.clear()
    report = await areplay(pipeline(), original.run_id, store)
    assert report.clean, [d.describe() for d in report.divergences]
    assert report.result.root_hash == original.root_hash
    assert SERVER.requests == []
    assert report.result.run_id != original.run_id
    assert verify_run(store, report.result.run_id).ok


async def test_changed_prompt_is_reported_at_the_right_step_with_a_diff() -> None:
    store = MemoryStore()
    original = await arun(pipeline(), {"question": "hi"}, store=store)
    SERVER.requests.clear()
    report = await areplay(pipeline("Question: {q}"), original.run_id, store)
    assert not report.clean
    assert report.spec_changed
    first = report.first_divergence
    assert first is not None
    assert (first.step_id, first.index, first.kind) == ("a", 0, "request-changed")
    assert [c.path for c in first.changes] == ["$.prompt"]
    text = first.describe()
    assert "step 'a', effect #0 (m-small): the request changed" in text
    assert '$.prompt: "Q: hi" -> "Question: hi"' in text
    assert report.result.status == "failed"
    assert SERVER.requests == []  # replay never calls out, even when it diverges
    assert report.to_json()["first_divergence"]["expected_request"] == first.expected_request


async def test_extra_and_missing_effects_are_divergences() -> None:
    store = MemoryStore()
    original = await arun(pipeline(), {"question": "hi"}, store=store)

    @agent(name="ask", version="1", config=Cfg)
    async def ask_once(p: Prompt, ctx: Context) -> Reply:
        request = {"model": "m-small", "prompt": f"Q: {p.question}"}
        return await ctx.effect(
            "model", "m-small", request, lambda: SERVER.chat(request), response_model=Reply
        )

    p = PipelineBuilder("effects")
    q = p.input("question", str)
    a = p.node("a", ask_once, question=q)
    p.node("b", ask_once, question=a.field("text"))
    report = await areplay(p.build(), original.run_id, store)
    first = report.first_divergence
    assert first is not None and (first.step_id, first.index) == ("a", 1)
    assert first.kind == "missing-effect"
    assert "the record has this effect" in first.describe()


async def test_failed_effect_is_recorded_and_replayed_identically() -> None:
    store = MemoryStore()
    SERVER.fail_next = 1
    original = await arun(pipeline(), {"question": "hi"}, store=store)
    assert original.status == "failed"
    assert original.error is not None and "server went away" in original.error.message
    report = await areplay(pipeline(), original.run_id, store)
    assert report.clean
    assert report.result.root_hash == original.root_hash


async def test_resume_reuses_finished_steps_and_recorded_effects() -> None:
    reference = await arun(pipeline(), {"question": "hi"}, store=MemoryStore())
    SERVER.requests.clear()

    store = MemoryStore()
    SERVER.fail_next = 0
    # Step b's second call fails: a finished, b made one successful effect and one failed.
    calls = 0

    original_chat = SERVER.chat

    async def flaky_chat(request: dict[str, Any]) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise ConnectionError("dropped")
        return await original_chat(request)

    SERVER.chat = flaky_chat  # type: ignore[method-assign]
    try:
        broken = await arun(pipeline(), {"question": "hi"}, store=store)
    finally:
        SERVER.chat = original_chat  # type: ignore[method-assign]
    assert broken.status == "failed"
    seen_before = len(SERVER.requests)
    assert seen_before == 3

    resumed = await arun(pipeline(), store=store, resume=broken.run_id)
    assert resumed.ok
    assert resumed.root_hash == reference.root_hash
    # Only the failed call was made again: a's two and b's first came from the record.
    assert len(SERVER.requests) == seen_before + 1
    assert SERVER.requests[-1]["prompt"].startswith("again: ")
    assert verify_run(store, resumed.run_id).ok


async def test_resume_refuses_another_pipeline_and_inputs() -> None:
    from orch import OrchError

    store = MemoryStore()
    run = await arun(pipeline(), {"question": "hi"}, store=store)
    with pytest.raises(OrchError, match="made by another version of pipeline 'effects'"):
        await arun(pipeline("Other {q}"), store=store, resume=run.run_id)
    with pytest.raises(OrchError, match="uses its recorded inputs"):
        await arun(pipeline(), {"question": "x"}, store=store, resume=run.run_id)


def test_effect_source_and_field_diff() -> None:
    assert field_diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": None}) != []
    paths = [c.path for c in field_diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": 0})]
    assert paths == ["$.b[1]", "$.c"]
    assert field_diff([1, 2], [1, 2, 3])[0].path == "$"
    assert len(EffectSource("r", [])) == 0


async def test_effect_record_dict_is_the_canonical_effect_record() -> None:
    import orjson

    from traces import canonical_bytes

    store = MemoryStore()
    SERVER.fail_next = 1
    await arun(pipeline(), {"question": "hi"}, store=store)  # one failed effect
    SERVER.fail_next = 0
    await arun(pipeline(), {"question": "hi"}, store=store)
    effects = 0
    for key in store.keys():
        value = orjson.loads(store.get(key))
        if isinstance(value, dict) and value.get("format") == "orch.effect/1":
            effects += 1
            assert store.get(key) == canonical_bytes(EffectRecord.model_validate(value))
    assert effects >= 5


async def test_a_bad_meter_is_a_clear_error() -> None:
    @agent(name="badmeter", version="1")
    async def badmeter(p: Prompt, ctx: Context) -> Reply:
        return await ctx.effect(
            "model",
            "m",
            {"q": p.question},
            lambda: SERVER.chat({"prompt": p.question}),
            response_model=Reply,
            meter=lambda r: ({"tokens": 1.5}, 0.0),  # type: ignore[dict-item]
        )

    p = PipelineBuilder("bad")
    p.node("a", badmeter, question="x")
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.error is not None
    assert "return token counts as {name: int}" in result.error.message
