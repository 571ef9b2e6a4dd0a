"""TCAR: the output contract, the registry and onboarding, repair then fallback, the offline
trained router, the refining team, determinism and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from tcar_cards import CARDS

from agents.models import (
    ChatMessage,
    ChatRequest,
    ModelHub,
    ModelInfo,
    ModelRegistry,
    ScriptedClient,
)
from agents.refiner import AgentAnswer, AgentReply, offline_refine
from orch import Context, PipelineBuilder, agent, arun
from orch.testing import assert_order_independent
from routers._tcar import TCARQuery, parse_route, repair_prompt, router_prompt, tcar_router
from routers._tcar_registry import OOS, AgentCard, AgentRegistry
from routers._tcar_team import tcar
from routers._tcar_trained import TrainedRouter, train_tcar
from traces import Decision, MemoryStore, StepRecord


def make_runner(agent_id: str, answer: str | None = None, *, fail: bool = False) -> Any:
    @agent(name=f"domain-{agent_id}", version="1")
    async def run(q: TCARQuery, ctx: Context) -> AgentReply:
        if fail:
            raise RuntimeError(f"{agent_id} is down")
        return AgentReply(text=f"{agent_id} handles: {q.query}", answer=answer or agent_id)

    return run


def registry(**answers: str) -> AgentRegistry:
    return AgentRegistry([(c, make_runner(c.id, answers.get(c.id))) for c in CARDS])


REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {"router": {"provider": "s", "name": "router", "input_per_mtok": 1.0}},
}


def hub(*replies: str) -> tuple[ModelHub, ScriptedClient]:
    """A router model that gives ``replies`` in turn (the last one repeats)."""
    seen: list[int] = []

    def script(request: ChatRequest, model: ModelInfo) -> str:
        seen.append(1)
        return replies[min(len(seen), len(replies)) - 1]

    client = ScriptedClient(script)
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": client}), client


async def route(
    query: str, *replies: str, reg: AgentRegistry | None = None, **cfg: Any
) -> tuple[Any, Decision, ScriptedClient]:
    config = {"router_model": "router"} | cfg if replies else cfg
    p = PipelineBuilder("tcar-route")
    p.node("route", tcar_router.with_config(**config), query=p.input("query", str))
    models, client = hub(*(replies or ("unused",)))
    store = MemoryStore()
    result = await arun(
        p.build(),
        {"query": query},
        store=store,
        services={"models": models, "agents": reg or registry()},
    )
    assert result.ok, result.error
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    return (
        result.outputs["route"],
        Decision.model_validate(store.get_value(rec.decisions[0])),
        client,
    )


# -- the contract --------------------------------------------------------------------------


def test_parse_route_contract() -> None:
    ok = parse_route(
        "<Reason>refund</Reason>\n<ID>billing</ID>\n<ID>travel</ID>", ["billing", "travel"]
    )
    assert ok.ok and ok.ids == ["billing", "travel"] and ok.reason == "refund"
    oos = parse_route("<reason> none fits </reason><id> OOS </id>", ["billing"])
    assert oos.ok and oos.ids == [OOS] and oos.reason == "none fits"
    dup = parse_route("<Reason>r</Reason><ID>billing</ID><ID>billing</ID>", ["billing"])
    assert dup.ok and dup.ids == ["billing"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<ID>billing</ID>", "no <Reason>"),
        ("<Reason>r</Reason> billing", "no <ID>"),
        ("<Reason>r</Reason><ID>payroll</ID>", "unknown agent ids ['payroll']"),
        ("<Reason>r</Reason><ID>billing</ID><ID>oos</ID>", "'oos' given together"),
        ("<Reason>r</Reason>" + "".join(f"<ID>{i}</ID>" for i in "abcd"), "at most 3"),
        ("", "no <Reason>"),
    ],
)
def test_parse_route_errors(text: str, error: str) -> None:
    parsed = parse_route(text, ["billing", "a", "b", "c", "d"])
    assert not parsed.ok
    assert any(error in e for e in parsed.errors), parsed.errors


def test_prompts_list_agents_sorted_and_state_the_contract() -> None:
    reg = AgentRegistry(list(reversed(CARDS)))
    text = router_prompt(reg.snapshot(), "hello", [], 3)
    assert text.index("id: billing") < text.index("id: network") < text.index("id: travel")
    assert "<Reason>" in text and "<ID>oos</ID>" in text and "at most 3" in text
    assert "unknown agent ids" in repair_prompt(["unknown agent ids ['x']"], ["billing"], 3)


# -- the registry ---------------------------------------------------------------------------


def test_registry_onboarding_changes_the_version() -> None:
    reg = registry()
    before = reg.version
    assert AgentRegistry(list(reversed(CARDS))).version == before  # order of onboarding
    reg.add(AgentCard(id="hr", name="HR", description="payroll and leave"))
    assert reg.version != before and reg.ids() == ["billing", "hr", "network", "travel"]
    reg.remove("hr")
    assert reg.version == before
    with pytest.raises(ValueError, match="already registered"):
        reg.add(CARDS[0])
    with pytest.raises(KeyError, match="no agent 'nobody'"):
        reg.remove("nobody")


def test_bad_cards_and_empty_registry() -> None:
    with pytest.raises(ValidationError, match="fix: rename"):
        AgentCard(id="oos", name="x", description="y")
    with pytest.raises(ValidationError, match="fix: rename"):
        AgentCard(id="has space", name="x", description="y")
    with pytest.raises(ValueError, match="registry is empty"):
        AgentRegistry().snapshot()


async def test_empty_registry_fails_the_step_and_records_no_decision() -> None:
    p = PipelineBuilder("empty")
    p.node("route", tcar_router, query=p.input("query", str))
    store = MemoryStore()
    result = await arun(
        p.build(), {"query": "hi"}, store=store, services={"agents": AgentRegistry()}
    )
    assert result.error is not None and "registry is empty" in result.error.message
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["route"]))
    assert rec.status == "failed" and rec.decisions == [] and rec.output is None


# -- routing with a model: ok, oos, repair, fallback -------------------------------------


async def test_router_model_first_try() -> None:
    out, decision, client = await route("refund", "<Reason>money back</Reason>\n<ID>billing</ID>")
    assert out.chosen == ["billing"] and out.via == "router"
    assert decision.chosen == ["billing"] and decision.reason == "money back"
    assert decision.candidates == ["billing", "network", "travel", OOS]
    assert decision.evidence["registry_version"] == registry().version
    assert len(client.calls) == 1


async def test_router_model_oos() -> None:
    out, decision, _ = await route("weather?", "<Reason>nothing fits</Reason><ID>oos</ID>")
    assert out.chosen == [OOS] and decision.chosen == [OOS]


async def test_unknown_id_is_repaired() -> None:
    out, decision, client = await route(
        "refund",
        "<Reason>r</Reason><ID>payments</ID>",
        "<Reason>fixed</Reason><ID>billing</ID>",
    )
    assert out.via == "repair" and out.chosen == ["billing"]
    attempts = decision.evidence["attempts"]
    assert (
        attempts[0]["errors"] == ["unknown agent ids ['payments']"] and attempts[1]["errors"] == []
    )
    repair = client.calls[1][1].messages
    assert [m.role for m in repair] == ["user", "assistant", "user"]
    assert "unknown agent ids" in repair[-1].content


async def test_malformed_twice_goes_to_the_offline_fallback() -> None:
    out, decision, client = await route("my wifi keeps dropping", "I think network", "still no")
    assert out.via == "fallback" and out.chosen == ["network"]
    assert [a["by"] for a in decision.evidence["attempts"]] == ["router", "router", "offline"]
    assert decision.scores["network"] > decision.scores["billing"]
    assert len(client.calls) == 2


async def test_fallback_oos_and_no_repair() -> None:
    out, _decision, client = await route("x", "garbage", fallback="oos", repair=False)
    assert out.chosen == [OOS] and out.via == "fallback" and len(client.calls) == 1


async def test_fallback_fail_is_a_clear_step_error() -> None:
    p = PipelineBuilder("fail")
    p.node(
        "route",
        tcar_router.with_config(router_model="router", fallback="fail"),
        query=p.input("query", str),
    )
    models, _ = hub("garbage")
    result = await arun(
        p.build(),
        {"query": "x"},
        store=MemoryStore(),
        services={"models": models, "agents": registry()},
    )
    assert not result.ok and "broke the output contract" in (
        result.error.message if result.error else ""
    )


# -- offline trained router -------------------------------------------------------------------


async def test_offline_router_meets_the_contract() -> None:
    out, decision, client = await route("lost luggage on my flight")
    assert out.via == "offline" and out.chosen == ["travel"] and client.calls == []
    assert decision.evidence["attempts"][0]["by"] == "offline"
    assert "travel" in decision.reason
    assert decision.evidence["offline"]["top"][0]["agent"] == "travel"
    assert decision.state_version is not None  # the trained state that routed


def test_trained_router_oos_multi_and_no_overlap() -> None:
    r = TrainedRouter(train_tcar(CARDS), CARDS)
    ids = [c.id for c in CARDS]
    text, _scores, evidence = r.reply("zebra quantum", 3)
    assert parse_route(text, ids).ids == [OOS] and evidence["decline_score"] == 0.0
    both = parse_route(r.reply("refund for my lost luggage flight invoice", 3)[0], ids)
    assert set(both.ids) == {"billing", "travel"}
    one = parse_route(r.reply("refund for my lost luggage flight invoice", 1)[0], ids)
    assert len(one.ids) == 1
    assert parse_route(r.reply("", 3)[0], ids).ids == [OOS]  # nothing to go on: declined


# -- the refining team ----------------------------------------------------------------------


def test_offline_refiner_rules() -> None:
    def ans(a: str, answer: str | None, declined: bool = False) -> AgentAnswer:
        return AgentAnswer(
            agent=a, reply=AgentReply(text=f"{a} text", answer=answer, declined=declined)
        )

    none, _ = offline_refine(
        "q", [ans("a", "x", declined=True), AgentAnswer(agent="b", error="down")]
    )
    assert none.kind == "declined" and none.sources == [] and "a, b" in none.text
    single, _ = offline_refine("q", [ans("a", "x"), ans("b", "y", declined=True)])
    assert single.kind == "single" and single.text == "a text"
    agree, _ = offline_refine("q", [ans("a", "x"), ans("b", "x")])
    assert agree.kind == "integrated" and "agreed by a, b" in agree.text
    conflict, _reason = offline_refine("q", [ans("a", "x"), ans("b", "y")])
    assert conflict.kind == "conflict" and "a says x; b says y" in conflict.text
    free, _ = offline_refine("q", [ans("a", None), ans("b", None)])
    assert free.kind == "integrated" and free.text == "- a: a text\n- b: b text"


async def run_team(
    query: str, reg: AgentRegistry, **router_cfg: Any
) -> tuple[Any, MemoryStore, Any]:
    p = PipelineBuilder("tcar-team")
    p.node("team", tcar.with_config(router=router_cfg), query=p.input("query", str))
    store = MemoryStore()
    result = await arun(p.build(), {"query": query}, store=store, services={"agents": reg})
    assert result.ok, result.error
    return result.outputs["team"], store, result


async def test_team_runs_chosen_agents_in_parallel_and_refines() -> None:
    out, _store, result = await run_team(
        "refund for my lost luggage flight invoice",
        registry(billing="refund", travel="lost"),
    )
    assert set(out.route.chosen) == {"billing", "travel"}
    assert out.final.kind == "conflict" and set(out.final.sources) == {"billing", "travel"}
    steps = dict(result.record.steps)
    assert {"team/0", "team/1", "team/2", "team/3"} <= set(steps)  # router, 2 agents, refiner


async def test_team_survives_a_failing_agent() -> None:
    reg = AgentRegistry(
        [
            (CARDS[0], make_runner("billing", fail=True)),
            (CARDS[1], make_runner("network")),
            (CARDS[2], make_runner("travel")),
        ]
    )
    out, _store, _result = await run_team("refund for my lost luggage flight invoice", reg)
    by_agent = {a.agent: a for a in out.answers}
    assert by_agent["billing"].error and "billing is down" in by_agent["billing"].error
    assert out.final.kind == "single" and out.final.sources == ["travel"]


async def test_team_oos_declines_without_running_agents() -> None:
    out, _, result = await run_team("zebra quantum", registry())
    assert out.route.chosen == [OOS] and out.answers == [] and out.final.kind == "declined"
    assert set(dict(result.record.steps)) == {"team", "team/0", "team/1"}


class Other(BaseModel):
    value: int


async def test_agent_with_wrong_output_type_is_a_clear_error() -> None:
    @agent(name="odd", version="1")
    async def odd(q: TCARQuery, ctx: Context) -> Other:
        return Other(value=1)

    reg = AgentRegistry([(CARDS[2], odd)])
    p = PipelineBuilder("odd")
    p.node("team", tcar, query=p.input("query", str))
    result = await arun(
        p.build(), {"query": "book a flight"}, store=MemoryStore(), services={"agents": reg}
    )
    assert not result.ok and "fix: make TCAR agents return" in (
        result.error.message if result.error else ""
    )


async def test_team_is_completion_order_independent() -> None:
    p = PipelineBuilder("tcar-det")
    p.node(
        "team", tcar.with_config(router={"train": {"set_ratio": 0.5}}), query=p.input("query", str)
    )
    await assert_order_independent(
        p.build(),
        {"query": "refund for my lost luggage flight invoice"},
        services={"agents": registry()},
    )


async def test_offline_router_reads_the_previous_user_turn() -> None:
    p = PipelineBuilder("tcar-history")
    p.node(
        "route",
        tcar_router,
        query=p.input("query", str),
        history=p.input("history", list[ChatMessage]),
    )
    history = [
        ChatMessage(role="user", content="my luggage was lost on the flight"),
        ChatMessage(role="assistant", content="Sorry to hear that."),
    ]
    result = await arun(
        p.build(),
        {"query": "what now?", "history": [m.model_dump() for m in history]},
        store=MemoryStore(),
        services={"agents": registry()},
    )
    assert result.ok, result.error
    assert result.outputs["route"].chosen == ["travel"]
