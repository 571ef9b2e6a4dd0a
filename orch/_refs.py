"""References that bind a node's inputs: to pipeline inputs, node outputs, or their fields.

A reference is a plain immutable value. Handles returned by the builder make them
(``builder.input(...)``, ``node.field("x")``); :func:`ref` makes one from a string so that a
node can name another that is defined later. References are resolved and type-checked when
the pipeline is built, never while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Branch", "InputRef", "NodeRef", "Ref", "input_ref", "ref"]


@dataclass(frozen=True)
class InputRef:
    """The value of pipeline input ``name``."""

    name: str

    def spec(self) -> dict[str, Any]:
        return {"input": self.name}

    def __str__(self) -> str:
        return f"input {self.name!r}"


@dataclass(frozen=True)
class NodeRef:
    """The output of node ``node``, or the field at dotted ``path`` inside it."""

    node: str
    path: tuple[str, ...] = ()

    def field(self, path: str) -> NodeRef:
        """Reference a field (dotted for nested models) of this output."""
        return NodeRef(self.node, self.path + tuple(path.split(".")))

    def __getitem__(self, path: str) -> NodeRef:
        return self.field(path)

    def selects(self, branch: str) -> Branch:
        """Condition: run only when this node's output selects ``branch``."""
        return Branch(self.node, branch)

    def spec(self) -> dict[str, Any]:
        return {"node": self.node, "path": ".".join(self.path)}

    def __str__(self) -> str:
        return f"node {self.node!r}" + (f" field {'.'.join(self.path)!r}" if self.path else "")


@dataclass(frozen=True)
class Branch:
    """A condition on a node: run only when node ``node`` selected ``label``."""

    node: str
    label: str

    def spec(self) -> dict[str, Any]:
        return {"node": self.node, "branch": self.label}


Ref = InputRef | NodeRef


def ref(target: str) -> NodeRef:
    """Reference node output ``"node"`` or field ``"node.field.sub"`` by name."""
    node, _, path = target.partition(".")
    return NodeRef(node, tuple(path.split(".")) if path else ())


def input_ref(name: str) -> InputRef:
    """Reference pipeline input ``name`` by name."""
    return InputRef(name)
