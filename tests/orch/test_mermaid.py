"""Pipelines render as Mermaid flowcharts, with conditions labelled and statuses coloured."""

from __future__ import annotations

from pydantic import BaseModel

from orch import Context, PipelineBuilder, Selection, agent


class Num(BaseModel):
    x: int


class Route(Selection):
    pass


@agent(name="inc", version="1")
async def inc(n: Num, ctx: Context) -> Num:
    return n


@agent(name="route", version="1")
async def route(n: Num, ctx: Context) -> Route:
    return Route(branches=["a"])


def test_mermaid_has_nodes_edges_and_conditions() -> None:
    p = PipelineBuilder("m")
    x = p.input("x", int)
    r = p.node("router", route, x=x)
    a = p.node("a", inc, x=x, when=r.selects("yes"))
    p.node("b", inc, x=a.field("x"))
    text = p.build().to_mermaid()
    assert text.startswith("flowchart")
    for name in ("router", "a", "b", "x"):
        assert name in text
    assert '"yes"' in text  # the condition edge is labelled with its branch
    assert text.count("-->") >= 4


def test_mermaid_colours_statuses() -> None:
    p = PipelineBuilder("m2")
    p.node("a", inc, x=1)
    text = p.build().to_mermaid({"a": "failed"})
    assert "classDef failed" in text


class Many(BaseModel):
    xs: list[int]


@agent(name="total", version="1")
async def total(m: Many, ctx: Context) -> Num:
    return Num(x=sum(m.xs))


def branching_text(statuses: dict[str, str] | None = None) -> str:
    p = PipelineBuilder("m3")
    x = p.input("x", int)
    r = p.node("router", route, x=x)
    a = p.node("a", inc, x=x, when=r.selects("yes"))
    b = p.node("b", inc, a)
    c = p.node("c", total, xs=[a.field("x"), b.field("x")])
    p.node("d", inc, x=x, when=r.selects('say "no"'))
    p.output("out", c.field("x"))
    return p.build().to_mermaid(statuses)


def test_mermaid_declares_every_node_input_and_output() -> None:
    lines = branching_text().splitlines()
    assert lines[0] == "flowchart TD"
    for decl in (
        '    in_x(["x: int"])',
        '    n_router["router<br/>route@1"]',
        '    n_a["a<br/>inc@1"]',
        '    n_b["b<br/>inc@1"]',
        '    n_c["c<br/>total@1"]',
        '    n_d["d<br/>inc@1"]',
        '    out_out[/"out"/]',
    ):
        assert decl in lines


def test_mermaid_edges_data_whole_list_and_conditions() -> None:
    text = branching_text()
    edges = [line.strip() for line in text.splitlines() if "--" in line or "-." in line]
    assert sorted(edges) == edges  # stable order
    assert set(edges) == {
        'in_x -- "x" --> n_router',
        'in_x -- "x" --> n_a',
        'in_x -- "x" --> n_d',
        "n_a --> n_b",  # a whole-input edge has no label
        'n_a -- "x → xs" --> n_c',
        'n_b -- "x → xs" --> n_c',
        "n_c --> out_out",
        'n_router -. "yes" .-> n_a',
        'n_router -. "say #quot;no#quot;" .-> n_d',  # quotes in labels are escaped
    }


def test_mermaid_status_classes() -> None:
    text = branching_text({"a": "ok", "b": "skipped", "router": "not-a-status"})
    assert "    classDef ok fill:#d4f7d4,stroke:#2e7d32" in text
    assert "    class n_a ok" in text
    assert "    class n_b skipped" in text
    assert "n_router not-a-status" not in text
    assert "classDef" not in branching_text()  # no statuses, no styling


def test_mermaid_ids_of_distinct_nodes_are_distinct() -> None:
    p = PipelineBuilder("collide")
    p.node("a-b", inc, x=1)
    p.node("a_b", inc, x=2)
    decls = [line for line in p.build().to_mermaid().splitlines() if "<br/>" in line]
    ids = [line.strip().split("[", 1)[0] for line in decls]
    assert len(set(ids)) == 2, ids
