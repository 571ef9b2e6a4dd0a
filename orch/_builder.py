"""Defining pipelines: :class:`PipelineBuilder` collects inputs, nodes and outputs without
judging them; ``build()`` checks everything at once (:mod:`orch._validate`) and either returns a
:class:`~orch._pipeline.Pipeline` or raises one :class:`~orch.errors.PipelineValidationError`
listing every problem. Nothing here runs an agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orch._agent import Agent
from orch._pipeline import Binding, Const, ListBinding, Node, Pipeline
from orch._refs import Branch, InputRef, NodeRef, Ref
from orch._retry import RetryPolicy
from orch._validate import validate

__all__ = ["PipelineBuilder"]


def _binding(value: object) -> Binding:
    if isinstance(value, (InputRef, NodeRef, ListBinding, Const)):
        return value
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (InputRef, NodeRef)) for v in value)
    ):
        return ListBinding(tuple(value))
    return Const(value)


class PipelineBuilder:
    """Collects a pipeline's definition; call :meth:`build` to validate it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._inputs: list[tuple[str, Any]] = []
        self._nodes: list[Node] = []
        self._outputs: list[tuple[str, Ref]] = []

    def input(self, name: str, type_: Any = str) -> InputRef:
        """Declare pipeline input ``name`` of type ``type_``; return a reference to it."""
        self._inputs.append((name, type_))
        return InputRef(name)

    def node(
        self,
        node_id: str,
        agent: Agent[Any, Any] | str,
        whole: Ref | None = None,
        /,
        *,
        when: Branch | Sequence[Branch] = (),
        optional: bool = False,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        **bindings: object,
    ) -> NodeRef:
        """Add node ``node_id`` running ``agent``.

        ``whole`` binds the agent's entire input to a reference; keyword arguments bind input
        fields to a reference, a list of references (gathered into a list) or a constant.
        ``when`` makes the node conditional on a router's selection.
        """
        node = Node(
            id=node_id,
            agent=agent,
            whole=whole,
            bindings={k: _binding(v) for k, v in bindings.items()},
            when=(when,) if isinstance(when, Branch) else tuple(when),
            optional=optional,
            timeout=timeout,
            retry=retry or RetryPolicy(),
        )
        self._nodes.append(node)
        return NodeRef(node_id)

    def output(self, name: str, source: Ref) -> None:
        """Name a pipeline output; without any, every sink node's output is one."""
        self._outputs.append((name, source))

    def build(self) -> Pipeline:
        """Validate everything and return the pipeline, or raise with every problem."""
        return validate(self.name, self._inputs, self._nodes, self._outputs)
