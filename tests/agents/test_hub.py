"""Model calls as recorded effects: usage and cost recorded, keys never recorded, replay
offline, and the registry's errors."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from pydantic import BaseModel
from wire_servers import Reply, ScriptedServer, openai_completion

from agents.models import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelHub,
    ModelRegistry,
    RegistryError,
)
from orch import Context, PipelineBuilder, agent, arun
from orch._replay import areplay
from traces import DirectoryStore, EffectRecord, StepRecord, verify_run

SECRET = "sk-test-DO-NOT-RECORD-7f3a9c"


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


@agent(name="asker", version="1")
async def asker(q: Q, ctx: Context) -> A:
    hub: ModelHub = ctx.service("models")
    resp = await hub.chat(
        ctx,
        ChatRequest(model="mini", messages=[ChatMessage(role="user", content=q.question)]),
    )
    return A(text=resp.text)


def registry(url: str) -> ModelRegistry:
    return ModelRegistry.from_dict(
        {
            "providers": {"oa": {"kind": "openai", "base_url": url + "/v1", "max_retries": 0}},
            "models": {
                "mini": {
                    "provider": "oa",
                    "name": "gpt-mini",
                    "input_per_mtok": 0.5,
                    "output_per_mtok": 2.0,
                }
            },
        }
    )


def pipeline() -> object:
    p = PipelineBuilder("hub")
    p.node("ask", asker, question=p.input("question", str))
    return p.build()


async def test_model_call_is_recorded_with_cost_and_replays_without_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    store = DirectoryStore(tmp_path / "store")
    with ScriptedServer(Reply(body=openai_completion("forty-two", usage=(1000, 500)))) as server:
        hub = ModelHub(registry(server.url))
        result = await arun(pipeline(), {"question": "6*7?"}, store=store, services={"models": hub})
        await hub.aclose()
    assert result.ok and result.outputs["ask"].text == "forty-two"
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    step = StepRecord.model_validate(store.get_value(dict(result.record.steps)["ask"]))
    eff = EffectRecord.model_validate(store.get_value(step.effects[0]))
    assert eff.usage == {"input_tokens": 1000, "output_tokens": 500}
    assert eff.cost_usd == pytest.approx((1000 * 0.5 + 500 * 2.0) / 1e6)
    resp = ChatResponse.model_validate(store.get_value(eff.response or ""))
    assert resp.provider_model == "served-model"
    assert verify_run(store, result.run_id).ok

    # The server is gone: replay must not need it.
    dead = ModelHub(registry("http://127.0.0.1:9"))
    report = await areplay(pipeline(), result.run_id, store, services={"models": dead})  # type: ignore[arg-type]
    assert report.clean
    store.close()

    # The key is nowhere in the store: not in artifacts, records, events or heads.
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


async def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reg = ModelRegistry.from_dict(
        {"providers": {"oa": {"kind": "openai"}}, "models": {"m": {"provider": "oa", "name": "x"}}}
    )
    from orch import OrchError

    with pytest.raises(OrchError, match=r"needs an API key in \$OPENAI_API_KEY"):
        ModelHub(reg).client("oa")


def test_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="names provider 'nope', which is not defined"):
        ModelRegistry.from_dict({"models": {"m": {"provider": "nope", "name": "x"}}})
    with pytest.raises(RegistryError, match=r"unknown model 'gpt-9' \(registry has: m\)"):
        ModelRegistry.from_dict(
            {
                "providers": {"p": {"kind": "simulated"}},
                "models": {"m": {"provider": "p", "name": "x"}},
            }
        ).model("gpt-9")
    bad = tmp_path / "models.toml"
    bad.write_text("[models.m\nprovider = 1")
    with pytest.raises(RegistryError, match="is not valid TOML"):
        ModelRegistry.load(bad)
    bad.write_text("[providers.p]\nkind = 1\n")
    with pytest.raises(RegistryError, match=r'\[providers."p"\] kind: Input should be a valid str'):
        ModelRegistry.load(bad)
    # A kind is a name in the orch.models entry-point group: checked when a hub is made.
    bad.write_text('[providers.p]\nkind = "carrier-pigeon"\n')
    with pytest.raises(RegistryError, match="kind 'carrier-pigeon', which no installed package"):
        ModelHub.load(bad)


def test_registry_file_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text(
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:8080/v1"\n'
        'max_concurrency = 2\n\n[models."llama-3b"]\nprovider = "local"\nname = "llama"\n'
        "input_per_mtok = 0.1\noutput_per_mtok = 0.2\ncontext = 8192\n"
    )
    reg = ModelRegistry.load(f)
    info = reg.model("llama-3b")
    assert (info.provider, info.name, info.context) == ("local", "llama", 8192)
    assert reg.providers["local"].max_concurrency == 2
    anyio.run(ModelHub(reg).aclose)
