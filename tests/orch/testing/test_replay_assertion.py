"""The replay assertion (orch.testing.assert_replays_clean) and its pytest fixture: a clean
run passes and writes nothing; a deliberately changed pipeline fails with a message that names
the step, the effect and the field that changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, agent
from orch.testing import aassert_replays_clean, assert_replays_clean
from traces import MemoryStore


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    text: str


class Prompt(BaseModel):
    prefix: str = "Q: "


@agent(name="ask", version="1", config=Prompt)
async def ask(q: Question, ctx: Context) -> Answer:
    request = {"prompt": ctx.config.prefix + q.question}

    async def call() -> dict[str, Any]:  # the "model": deterministic, local
        return {"text": f"echo {request['prompt']}"}

    response = await ctx.effect("model", "echo-model", request, call)
    return Answer(text=response["text"])


def make_shout(suffix: str) -> orch.FunctionAgent:
    @agent(name="shout", version="1")
    async def shout(a: Answer, ctx: Context) -> Answer:
        return Answer(text=a.text.upper() + suffix)

    return shout


def build(prefix: str = "Q: ", suffix: str = "!") -> orch.Pipeline:
    p = PipelineBuilder("ask-and-shout")
    asked = p.node("ask", ask.with_config(prefix=prefix), question=p.input("question", str))
    p.output("answer", p.node("shout", make_shout(suffix), asked))
    return p.build()


def test_clean_replay_passes_and_writes_nothing() -> None:
    store = MemoryStore()
    pipeline = build()
    result = orch.run(pipeline, {"question": "2+2?"}, store=store, seed=3)
    assert result.ok
    runs = store.run_ids()
    replay = assert_replays_clean(result, store=store, pipeline=pipeline)
    assert replay.root_hash == result.root_hash
    assert replay.outputs["answer"].text == "ECHO Q: 2+2?!"
    assert store.run_ids() == runs  # the replay ran on an overlay


def test_a_run_id_prefix_is_accepted() -> None:
    store = MemoryStore()
    pipeline = build()
    result = orch.run(pipeline, {"question": "hi"}, store=store)
    replay = assert_replays_clean(result.run_id[:-2], store=store, pipeline=pipeline)
    assert replay.root_hash == result.root_hash


def test_changed_prompt_fails_naming_step_effect_and_field() -> None:
    store = MemoryStore()
    result = orch.run(build(), {"question": "2+2?"}, store=store)
    changed = build(prefix="Question: ")
    with pytest.raises(AssertionError) as info:
        assert_replays_clean(result, store=store, pipeline=changed)
    message = str(info.value)
    assert message.startswith(f"run {result.run_id} of pipeline 'ask-and-shout' does not replay")
    assert "first divergence: step 'ask', effect #0 (echo-model): the request changed" in message
    assert '$.prompt: "Q: 2+2?" -> "Question: 2+2?"' in message
    assert "note: the pipeline spec changed since the run" in message


def test_changed_code_without_effects_names_the_step() -> None:
    # Same name, version and config: only the step's output can tell, and the message says
    # which step records differ (a version bump was forgotten).
    store = MemoryStore()
    result = orch.run(build(), {"question": "x"}, store=store)
    with pytest.raises(AssertionError) as info:
        assert_replays_clean(result, store=store, pipeline=build(suffix="?"))
    message = str(info.value)
    assert "every effect matched, but the root hash is" in message
    assert f"not the recorded {result.root_hash}" in message
    assert "steps whose records differ: 'shout'" in message
    assert "spec changed" not in message


async def test_async_form_and_the_sync_form_refused_in_a_loop() -> None:
    store = MemoryStore()
    pipeline = build()
    result = await orch.arun(pipeline, {"question": "q"}, store=store)
    replay = await aassert_replays_clean(result, store=store, pipeline=pipeline)
    assert replay.root_hash == result.root_hash
    with pytest.raises(RuntimeError, match=r"fix: await orch.testing.aassert_replays_clean"):
        assert_replays_clean(result, store=store, pipeline=pipeline)


def test_fixture_uses_the_tests_store(
    orch_store: MemoryStore, replays_clean: Callable[..., orch.RunResult]
) -> None:
    pipeline = build()
    result = orch.run(pipeline, {"question": "q"}, store=orch_store)
    assert replays_clean(result, pipeline=pipeline).root_hash == result.root_hash
    with pytest.raises(AssertionError, match="does not replay clean"):
        replays_clean(result, pipeline=build(prefix="A: "))
