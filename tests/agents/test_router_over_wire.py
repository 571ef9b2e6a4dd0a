"""TCAR's router model reached through the real OpenAI SDK on a local server speaking the
OpenAI wire protocol: the contract, the repair request on the wire, and a clean replay."""

from __future__ import annotations

import pytest
from wire_servers import Reply, ScriptedServer, openai_completion

from agents.models import ModelHub, ModelRegistry
from orch import PipelineBuilder, arun
from orch._replay import areplay
from routers import AgentCard, AgentRegistry, tcar_router
from traces import Decision, MemoryStore, StepRecord


def hub(url: str) -> ModelHub:
    return ModelHub(
        ModelRegistry.from_dict(
            {
                "providers": {"oa": {"kind": "openai", "base_url": url + "/v1", "max_retries": 0}},
                "models": {"router": {"provider": "oa", "name": "tcandon-router-4b"}},
            }
        )
    )


AGENTS = AgentRegistry(
    [
        AgentCard(id="billing", name="Billing", description="invoices and refunds"),
        AgentCard(id="travel", name="Travel", description="flights and hotels"),
    ]
)


async def test_tcar_router_model_over_the_openai_wire_with_repair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    p = PipelineBuilder("tcar-wire")
    p.node("route", tcar_router.with_config(router_model="router"), query=p.input("query", str))
    pipeline = p.build()
    store = MemoryStore()
    with ScriptedServer(
        Reply(body=openai_completion("<Reason>money</Reason><ID>payments</ID>")),
        Reply(body=openai_completion("<Reason>a refund is billing</Reason>\n<ID>billing</ID>")),
    ) as server:
        models = hub(server.url)
        result = await arun(
            pipeline,
            {"query": "refund my hotel"},
            store=store,
            services={"models": models, "agents": AGENTS},
        )
        await models.aclose()
    assert result.ok, result.error
    assert result.outputs["route"].chosen == ["billing"] and result.outputs["route"].via == "repair"
    first, second = (r["json"]["messages"] for r in server.requests)
    assert "id: billing" in first[0]["content"] and "<ID>oos</ID>" in first[0]["content"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert "unknown agent ids ['payments']" in second[2]["content"]
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    decision = Decision.model_validate(store.get_value(rec.decisions[0]))
    assert decision.reason == "a refund is billing" and len(rec.effects) == 2

    # offline replay: no server, every call served from the record
    report = await areplay(
        pipeline,
        result.run_id,
        store,
        services={"models": hub("http://127.0.0.1:9"), "agents": AGENTS},
    )
    assert report.clean, report.first_divergence
