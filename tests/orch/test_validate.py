"""Every pipeline validation problem has a message that names the node and the fix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from orch import Context, PipelineBuilder, Selection, agent
from orch.errors import PipelineValidationError, ValidationProblem
from orch.refs import ref


class Num(BaseModel):
    x: int


class Text(BaseModel):
    text: str


class Many(BaseModel):
    xs: list[int]


class MaybeNum(BaseModel):
    x: int
    note: str | None = None


class Route(Selection):
    pass


class NoBranches(BaseModel):
    label: str


@agent(name="inc", version="1")
async def inc(n: Num, ctx: Context) -> Num:
    return Num(x=n.x + 1)


@agent(name="shout", version="1")
async def shout(t: Text, ctx: Context) -> Text:
    return t


@agent(name="total", version="1")
async def total(m: Many, ctx: Context) -> Num:
    return Num(x=sum(m.xs))


@agent(name="route", version="1")
async def route(n: Num, ctx: Context) -> Route:
    return Route(branches=["a"], reason="always a")


@agent(name="labeller", version="1")
async def labeller(n: Num, ctx: Context) -> NoBranches:
    return NoBranches(label="a")


def problems(p: PipelineBuilder) -> list[ValidationProblem]:
    with pytest.raises(PipelineValidationError) as info:
        p.build()
    err = info.value
    assert err.pipeline == p.name
    assert str(err).startswith(f"pipeline {p.name!r} is invalid ({len(err.problems)} problem")
    for prob in err.problems:
        assert prob.fix, f"{prob} has no fix"
        assert f"node {prob.node!r}" in str(prob) and "; fix: " in str(prob)
    return err.problems


def only(p: PipelineBuilder, code: str) -> ValidationProblem:
    found = problems(p)
    assert [q.code for q in found] == [code], found
    return found[0]


def test_duplicate_node_id() -> None:
    p = PipelineBuilder("dup")
    x = p.input("x", int)
    p.node("a", inc, x=x)
    p.node("a", inc, x=x)
    prob = only(p, "duplicate-node")
    assert prob.node == "a"
    assert prob.message == "node id is used by 2 nodes"
    assert prob.fix == "give every node a unique id"


def test_node_named_like_an_input() -> None:
    p = PipelineBuilder("clash")
    x = p.input("x", int)
    p.node("x", inc, x=x)
    assert only(p, "duplicate-node").message == "a pipeline input has the same name"


@pytest.mark.parametrize("bad", ["", "a/b", "9lives", "has space", "x" * 129])
def test_invalid_node_id(bad: str) -> None:
    p = PipelineBuilder("ids")
    p.node(bad, inc, x=1)
    prob = only(p, "invalid-id")
    assert "'/' is reserved for child steps" in prob.message
    assert prob.fix == "rename the node"


def test_invalid_and_duplicate_input_names() -> None:
    p = PipelineBuilder("inputs")
    p.input("bad name", int)
    p.input("x", int)
    p.input("x", int)
    p.node("a", inc, x=p.input("y", int))
    found = {q.code: q for q in problems(p)}
    assert found["invalid-id"].message == "input name 'bad name' is not a valid name"
    assert found["duplicate-input"].message == "input 'x' is declared twice"


def test_unknown_node_reference() -> None:
    p = PipelineBuilder("unknown")
    p.input("x", int)
    p.node("a", inc, x=ref("ghost.x"))
    prob = only(p, "unknown-reference")
    assert prob.node == "a"
    assert "refers to node 'ghost', which does not exist (nodes: a)" in prob.message
    assert prob.fix == "define that node or fix the reference"


def test_unknown_input_reference() -> None:
    from orch.refs import input_ref

    p = PipelineBuilder("unknown-input")
    p.input("x", int)
    p.node("a", inc, x=input_ref("y"))
    prob = only(p, "unknown-reference")
    assert "refers to pipeline input 'y', which is not declared (inputs: x)" in prob.message
    assert "builder.input('y', TYPE)" in prob.fix


def test_unknown_field_of_producer() -> None:
    p = PipelineBuilder("badfield")
    a = p.node("a", inc, x=1)
    p.node("b", inc, x=a.field("y"))
    prob = only(p, "unknown-reference")
    assert prob.node == "b"
    assert "refers to field 'y' of node 'a'" in prob.message
    assert prob.fix == "reference an existing field of that node's output"


def test_binding_a_field_the_agent_does_not_have() -> None:
    p = PipelineBuilder("extra")
    p.node("a", inc, x=1, y=2)
    prob = only(p, "unknown-field")
    assert prob.message == "agent 'inc' input Num has no field 'y' (fields: x)"
    assert prob.fix == "bind one of the agent's input fields"


def test_unbound_required_input() -> None:
    p = PipelineBuilder("unbound")
    p.node("a", inc)
    prob = only(p, "unbound-input")
    assert prob.node == "a"
    assert "required input field 'x' (int) of agent 'inc' is not bound" in prob.message


def test_optional_fields_may_stay_unbound() -> None:
    @agent(name="maybe", version="1")
    async def maybe(m: MaybeNum, ctx: Context) -> Num:
        return Num(x=m.x)

    p = PipelineBuilder("optional")
    p.node("a", maybe, x=1)
    p.build()


def test_type_mismatch_between_field_and_producer() -> None:
    p = PipelineBuilder("types")
    a = p.node("a", shout, text="hi")
    p.node("b", inc, x=a.field("text"))
    prob = only(p, "type-mismatch")
    assert prob.node == "b"
    assert "input field 'x' expects int but node 'a' field 'text' produces str" in prob.message


def test_type_mismatch_of_whole_input() -> None:
    p = PipelineBuilder("whole")
    a = p.node("a", shout, text="hi")
    p.node("b", inc, a)
    prob = only(p, "type-mismatch")
    assert prob.message == (
        "whole input expects test_validate.Num but node 'a' produces test_validate.Text"
    )


def test_type_mismatch_of_constant() -> None:
    p = PipelineBuilder("const")
    p.node("a", inc, x="not a number")
    prob = only(p, "type-mismatch")
    assert "expects int but is bound to the constant 'not a number'" in prob.message


def test_type_mismatch_in_list_binding() -> None:
    p = PipelineBuilder("list")
    a = p.node("a", inc, x=1)
    t = p.node("t", shout, text="x")
    p.node("sum", total, xs=[a.field("x"), t.field("text")])
    prob = only(p, "type-mismatch")
    assert "field 'xs' item 1 expects int but node 't' field 'text' produces str" in prob.message


def test_list_bound_to_scalar_field() -> None:
    p = PipelineBuilder("list-scalar")
    a = p.node("a", inc, x=1)
    b = p.node("b", inc, x=1)
    p.node("c", inc, x=[a.field("x"), b.field("x")])
    prob = only(p, "type-mismatch")
    assert "expects int but is bound to a list of 2 references" in prob.message


def test_cycle_is_shown() -> None:
    p = PipelineBuilder("loop")
    p.node("a", inc, x=ref("c.x"))
    p.node("b", inc, x=ref("a.x"))
    p.node("c", inc, x=ref("b.x"))
    prob = only(p, "cycle")
    assert prob.node == "a"
    assert prob.message == "cycle a -> b -> c -> a"
    assert "remove one of these edges" in prob.fix


def test_self_loop_is_a_cycle() -> None:
    p = PipelineBuilder("self")
    p.node("a", inc, x=ref("a.x"))
    assert only(p, "cycle").message == "cycle a -> a"


def test_condition_on_a_node_without_branches() -> None:
    p = PipelineBuilder("cond")
    lab = p.node("lab", labeller, x=1)
    p.node("a", inc, x=1, when=lab.selects("a"))
    prob = only(p, "invalid-condition")
    assert "its output NoBranches has no 'branches'" in prob.message
    assert "branches: list[str]" in prob.fix


def test_condition_on_an_unknown_node() -> None:
    p = PipelineBuilder("cond2")
    p.node("a", inc, x=1, when=ref("ghost").selects("a"))
    prob = only(p, "unknown-reference")
    assert prob.message == "condition refers to node 'ghost', which does not exist"


def test_valid_condition_builds() -> None:
    p = PipelineBuilder("cond3")
    r = p.node("r", route, x=1)
    p.node("a", inc, x=1, when=r.selects("a"))
    assert p.build().producers["a"] == ("r",)


def test_invalid_timeout() -> None:
    p = PipelineBuilder("timeout")
    p.node("a", inc, x=1, timeout=0)
    assert only(p, "invalid-timeout").message == "timeout 0 is not > 0"


def test_not_an_agent() -> None:
    p = PipelineBuilder("notagent")
    p.node("a", print, x=1)  # type: ignore[arg-type]
    prob = only(p, "not-an-agent")
    assert "not an agent" in prob.message
    assert "@agent" in prob.fix


def test_unknown_plugin_agent_name() -> None:
    p = PipelineBuilder("plugin")
    p.node("a", "no-such-agent", x=1)
    prob = only(p, "unknown-agent")
    assert "no-such-agent" in prob.message
    assert prob.fix == "install the plugin package, or pass an Agent instance"


def test_duplicate_output() -> None:
    p = PipelineBuilder("outs")
    a = p.node("a", inc, x=1)
    p.output("y", a.field("x"))
    p.output("y", a)
    prob = only(p, "duplicate-output")
    assert prob.message == "output 'y' is declared twice"


def test_every_problem_is_reported_at_once() -> None:
    p = PipelineBuilder("many")
    x = p.input("x", int)
    p.node("a", inc, x=x)
    p.node("a", inc, x=x)
    p.node("b", inc)
    p.node("c", inc, x=ref("ghost.x"))
    p.node("d", inc, x="text")
    codes = sorted(q.code for q in problems(p))
    assert codes == ["duplicate-node", "type-mismatch", "unbound-input", "unknown-reference"]
    with pytest.raises(PipelineValidationError) as info:
        p.build()
    text = str(info.value)
    assert "(4 problems)" in text
    for node in ("'a'", "'b'", "'c'", "'d'"):
        assert f"node {node}" in text
