"""The validated, immutable :class:`Pipeline` and the parts it is made of (nodes, bindings).

A pipeline is made only by :meth:`orch.PipelineBuilder.build` (:mod:`orch._builder`), once
:mod:`orch._validate` found no problem; it never changes. Its spec hash covers node ids, agent
names, versions, config hashes, bindings and edges. Nothing here validates or runs anything.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from orch._agent import Agent
from orch._refs import Branch, InputRef, NodeRef, Ref
from orch._retry import RetryPolicy
from orch._typecheck import field_type
from traces import canonical_bytes, digest

__all__ = ["Binding", "Const", "ListBinding", "Node", "Pipeline", "spec_bytes_of"]


@dataclass(frozen=True)
class Const:
    """A constant bound to an input field (part of the spec hash)."""

    value: Any

    def spec(self) -> dict[str, Any]:
        return {"const": self.value}


@dataclass(frozen=True)
class ListBinding:
    """Several references gathered into one list-typed field, in the order given.

    Items whose producer was skipped are left out, so a merge after conditional branches sees
    only the branches that ran.
    """

    items: tuple[Ref, ...]

    def spec(self) -> dict[str, Any]:
        return {"list": [r.spec() for r in self.items]}


Binding = InputRef | NodeRef | ListBinding | Const


@dataclass(frozen=True)
class Node:
    """One node as declared: an agent and where its inputs come from."""

    id: str
    agent: Agent[Any, Any] | str
    """The agent, or the name of a plugin agent (resolved at build)."""
    whole: Ref | None = None
    """A reference whose value becomes the whole input (fields may still override)."""
    bindings: Mapping[str, Binding] = field(default_factory=dict)
    when: tuple[Branch, ...] = ()
    optional: bool = False
    """When True, a failure of this node does not fail the run."""
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def handle(self) -> NodeRef:
        return NodeRef(self.id)


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A validated pipeline. Build with :class:`PipelineBuilder`; never mutate."""

    name: str
    inputs: Mapping[str, Any]
    """Input name -> type."""
    nodes: Mapping[str, Node]
    """Node id -> node, in definition order; every agent resolved."""
    agents: Mapping[str, Agent[Any, Any]]
    """Node id -> resolved agent."""
    outputs: Mapping[str, Ref]
    graph: nx.DiGraph
    """Nodes and data/condition edges (edge attribute ``kind``: data or condition)."""
    order: tuple[str, ...]
    """A topological order (ties broken by definition order)."""
    depth: Mapping[str, int]
    """Logical time of each node: longest path from a node with no producers."""
    producers: Mapping[str, tuple[str, ...]]
    """Node id -> node ids it waits for (data and conditions), sorted."""
    consumers: Mapping[str, tuple[str, ...]]
    spec: Mapping[str, Any]
    plugins: Mapping[str, str] = field(default_factory=dict)
    """Distribution -> version of plugin packages whose agents the pipeline uses."""
    spec_bytes: bytes = b""

    @functools.cached_property
    def spec_hash(self) -> str:
        """Key of the canonical spec document."""
        return digest(self.spec_bytes)

    def output_type(self, name: str) -> Any:
        """The type of pipeline output ``name`` (a pipeline input's, or the field its node's
        output model has at the reference's path): what a stored output value validates as."""
        ref = self.outputs[name]
        if isinstance(ref, InputRef):
            return self.inputs[ref.name]
        model = self.agents[ref.node].output_model
        if not ref.path:
            return model
        tp, _ = field_type(model, ref.path)  # checked when the pipeline was built
        return tp

    def to_mermaid(self, statuses: Mapping[str, str] | None = None) -> str:
        """The pipeline as a Mermaid flowchart; ``statuses`` colours nodes by step status."""
        from orch.render._mermaid import pipeline_to_mermaid

        return pipeline_to_mermaid(self.spec, statuses)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} nodes={len(self.nodes)} spec={self.spec_hash[:19]}>"


def spec_bytes_of(spec: Mapping[str, Any]) -> bytes:
    return canonical_bytes(dict(spec))
