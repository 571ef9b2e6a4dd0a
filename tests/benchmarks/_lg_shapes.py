"""The LangGraph twins of the benchmarks' no-op shapes, for the comparisons against LangGraph.

``langgraph_graph(shape, n)`` builds, uncompiled, the StateGraph that does what
``_shapes.chain``/``_shapes.wide`` (and ``ctx.map`` for ``mapped``) do in orch: nodes that pass
a number on, a fan-out whose leaves each add theirs to a list, and a sink that counts it. Each
benchmark compiles it with or without a checkpointer. LangGraph is an optional dependency (the
``bench`` extra): it is imported when a graph is built, never when this module is imported.

Imported by name (``from _lg_shapes import ...``), as ``_shapes`` is.
"""

from __future__ import annotations

import itertools
import operator
from typing import Annotated, Any, TypedDict

__all__ = ["LgState", "langgraph_graph"]


class LgState(TypedDict):
    x: int
    xs: Annotated[list[int], operator.add]


def _lg_node(state: LgState) -> dict[str, Any]:
    return {"x": state["x"]}


def _lg_leaf(state: LgState) -> dict[str, Any]:
    return {"xs": [state["x"]]}


def _lg_sink(state: LgState) -> dict[str, Any]:
    return {"x": len(state["xs"])}


def langgraph_graph(shape: str, n: int) -> Any:
    """The uncompiled StateGraph of ``shape`` (``chain``, ``wide`` or ``mapped``) at ``n``
    nodes; raises ImportError when LangGraph is not installed."""
    from langgraph.graph import END, START, StateGraph

    g: Any = StateGraph(LgState)
    names = [f"n{i:05d}" for i in range(n)]
    if shape == "chain":
        for name in names:
            g.add_node(name, _lg_node)
        g.add_edge(START, names[0])
        for a, b in itertools.pairwise(names):
            g.add_edge(a, b)
        g.add_edge(names[-1], END)
    elif shape == "wide":
        g.add_node("source", _lg_node)
        g.add_node("sink", _lg_sink)
        g.add_edge(START, "source")
        for name in names:
            g.add_node(name, _lg_leaf)
            g.add_edge("source", name)
        g.add_edge(names, "sink")
        g.add_edge("sink", END)
    elif shape == "mapped":
        from langgraph.types import Send

        g.add_node("source", _lg_node)
        g.add_node("worker", _lg_leaf)
        g.add_node("sink", _lg_sink)
        g.add_edge(START, "source")
        g.add_conditional_edges(
            "source", lambda s: [Send("worker", {"x": i, "xs": []}) for i in range(n)]
        )
        g.add_edge("worker", "sink")
        g.add_edge("sink", END)
    else:
        raise ValueError(f"unknown shape {shape!r}; fix: use chain, wide or mapped")
    return g
