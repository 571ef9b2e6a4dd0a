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
