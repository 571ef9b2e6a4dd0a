"""Every pipeline validation problem has a message that names the node and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from orch import Context, PipelineBuilder, Selection, agent
from orch._refs import ref
from orch.errors import PipelineValidationError, ValidationProblem


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
    from orch._refs import input_ref

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
    assert prob.fix == (
        "install the package that provides it (see 'orch plugins'), or pass an Agent instance"
    )


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


# -- more problems, and one build reporting all of them -----------------------------------------


class Cfg(BaseModel):
    model: str


class SeqIn(BaseModel):
    xs: Sequence[int]


@agent(name="listing", version="1")
async def listing(n: Num, ctx: Context) -> Many:
    return Many(xs=[n.x])


@agent(name="count", version="1")
async def count(s: SeqIn, ctx: Context) -> Num:
    return Num(x=len(s.xs))


@agent(name="needs", version="1", config=Cfg)
async def needs(n: Num, ctx: Context) -> Num:
    return n


def test_empty_pipeline() -> None:
    prob = only(PipelineBuilder("empty"), "empty")
    assert prob.node == "(pipeline)"
    assert prob.message == "the pipeline has no nodes"
    assert prob.fix == "add a node"


def test_unknown_reference_in_whole_input() -> None:
    p = PipelineBuilder("whole-unknown")
    p.node("a", inc, ref("ghost"))
    prob = only(p, "unknown-reference")
    assert prob.message == "whole input refers to node 'ghost', which does not exist (nodes: a)"


def test_unknown_references_in_outputs() -> None:
    from orch._refs import input_ref

    p = PipelineBuilder("outputs")
    a = p.node("a", inc, x=1)
    p.output("y", ref("ghost.x"))
    p.output("z", a.field("q"))
    p.output("w", input_ref("nope"))
    found = problems(p)
    assert [(q.node, q.code) for q in found] == [
        ("output:y", "unknown-reference"),
        ("output:z", "unknown-reference"),
        ("output:w", "unknown-reference"),
    ]
    assert found[0].message == "output refers to node 'ghost', which does not exist (nodes: a)"
    assert found[1].message == (
        "output refers to field 'q' of node 'a': Num has no field 'q' (fields: x)"
    )
    assert found[2].message == (
        "output refers to pipeline input 'nope', which is not declared (inputs: (none))"
    )


def test_every_cycle_is_reported_separately() -> None:
    p = PipelineBuilder("two-loops")
    p.node("a", inc, x=ref("b.x"))
    p.node("b", inc, x=ref("a.x"))
    p.node("ok", inc, x=1)
    p.node("c", inc, x=ref("d.x"))
    p.node("d", inc, x=ref("c.x"))
    found = problems(p)
    assert [(q.node, q.code, q.message) for q in found] == [
        ("a", "cycle", "cycle a -> b -> a"),
        ("c", "cycle", "cycle c -> d -> c"),
    ]


def test_cycle_through_a_condition_edge() -> None:
    p = PipelineBuilder("cond-loop")
    r = p.node("r", route, x=ref("a.x"))
    p.node("a", inc, x=1, when=r.selects("go"))
    assert only(p, "cycle").message == "cycle r -> a -> r"


def test_unconfigured_agent() -> None:
    p = PipelineBuilder("unconfigured")
    p.node("a", needs, x=1)
    prob = only(p, "unconfigured-agent")
    assert prob.message == "agent 'needs' needs a config (Cfg requires model)"
    assert prob.fix == "use needs.with_config(model=...)"
    ok = PipelineBuilder("configured")
    ok.node("a", needs.with_config(model="m"), x=1)
    ok.build()


def test_input_type_pydantic_cannot_use() -> None:
    p = PipelineBuilder("bad-type")
    p.input("x", 5)
    p.node("a", inc, x=1)
    prob = only(p, "invalid-type")
    assert prob.node == "input:x"
    assert prob.message.startswith("type 5 is not usable (")
    assert prob.fix == "declare the input with a type pydantic can validate"


def test_empty_branch_label() -> None:
    p = PipelineBuilder("label")
    r = p.node("r", route, x=1)
    p.node("a", inc, x=1, when=r.selects(""))
    prob = only(p, "invalid-condition")
    assert prob.message == "branch label '' is not a non-empty string"
    assert prob.fix == "use a string label"


def test_one_build_reports_every_kind_of_problem() -> None:
    p = PipelineBuilder("everything")
    x = p.input("x", int)
    p.node("bad id", inc, x=x)
    p.node("unk", inc, x=ref("ghost.x"))
    src = p.node("src", shout, text="t")
    p.node("badref", inc, x=src.field("nope"))
    p.node("extra", inc, x=x, y=1)
    p.node("unbound", inc)
    p.node("const", inc, x="seven")
    lab = p.node("lab", labeller, x=x)
    p.node("cond", inc, x=x, when=lab.selects("a"))
    p.node("c1", inc, x=ref("c2.x"))
    p.node("c2", inc, x=ref("c1.x"))
    p.node("plug", "no-such-agent", x=1)
    p.node("whole", inc, src)
    p.node("lst", total, xs=[x, src.field("text")])
    p.node("fine", inc, x=x)
    found = problems(p)  # also checks each names its node and has a fix
    assert sorted((q.node, q.code) for q in found) == sorted(
        [
            ("bad id", "invalid-id"),
            ("unk", "unknown-reference"),
            ("badref", "unknown-reference"),
            ("extra", "unknown-field"),
            ("unbound", "unbound-input"),
            ("const", "type-mismatch"),
            ("cond", "invalid-condition"),
            ("c1", "cycle"),
            ("plug", "unknown-agent"),
            ("whole", "type-mismatch"),
            ("lst", "type-mismatch"),
        ]
    )
    by_node = {q.node: q for q in found}
    assert by_node["c1"].message == "cycle c1 -> c2 -> c1"
    assert "no plugin agent named 'no-such-agent'" in by_node["plug"].message
    assert "item 1 expects int but node 'src' field 'text' produces str" in by_node["lst"].message
    assert by_node["badref"].message.endswith("Text has no field 'nope' (fields: text)")
    with pytest.raises(PipelineValidationError, match=r"\(11 problems\)"):
        p.build()


def test_unknown_plugin_problem_has_a_single_fix() -> None:
    p = PipelineBuilder("plugin-fix")
    p.node("a", "no-such-agent", x=1)
    prob = only(p, "unknown-agent")
    assert "; fix:" not in prob.message


def test_invalid_input_type_problem_is_one_line() -> None:
    p = PipelineBuilder("bad-type-line")
    p.input("x", 5)
    p.node("a", inc, x=1)
    assert "\n" not in only(p, "invalid-type").message


def test_list_producer_feeds_a_sequence_field() -> None:
    p = PipelineBuilder("seq")
    m = p.node("m", listing, x=1)
    p.node("c", count, xs=m.field("xs"))
    p.build()


def test_a_duplicate_id_does_not_hide_a_cycle_or_other_problems() -> None:
    p = PipelineBuilder("dup-cycle")
    x = p.input("x", int)
    p.node("a", inc, x=ref("b.x"))
    p.node("b", inc, x=ref("a.x"))  # a -> b -> a, through the duplicated id
    p.node("b", inc, x="seven")  # the second 'b' has a problem of its own
    p.node("c", "no-such-agent", x=ref("d.x"))  # an unknown agent in a cycle
    p.node("d", inc, x=ref("c.x"))
    p.node("bad id", inc, timeout=-1, x=x)  # an invalid id with another problem
    found = problems(p)
    assert sorted((q.node, q.code) for q in found) == sorted(
        [
            ("b", "duplicate-node"),
            ("b", "type-mismatch"),
            ("a", "cycle"),
            ("c", "unknown-agent"),
            ("c", "cycle"),
            ("bad id", "invalid-id"),
            ("bad id", "invalid-timeout"),
        ]
    )
    by_code = {(q.node, q.code): q for q in found}
    assert by_code[("a", "cycle")].message == "cycle a -> b -> a"
    assert by_code[("c", "cycle")].message == "cycle c -> d -> c"


def test_duplicate_definitions_with_the_same_problem_report_it_once() -> None:
    p = PipelineBuilder("dup-same")
    p.node("a", inc)
    p.node("a", inc)
    assert sorted(q.code for q in problems(p)) == ["duplicate-node", "unbound-input"]
