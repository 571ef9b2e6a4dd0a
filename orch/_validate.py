"""Build-time validation of a pipeline definition.

Every check runs and every problem is collected, so that one ``build()`` reports them all:
invalid or duplicate node ids, unknown agents, unknown references, unbound or unknown input
fields, type mismatches, bad conditions, and cycles (each shown as a path). A broken node (a
duplicate id, an invalid id, an unknown agent) is still checked for everything else, and its
edges still count when cycles are looked for, so one problem never hides another. Only when
the list is empty is a :class:`~orch._pipeline.Pipeline` made. Nothing here runs an agent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import networkx as nx
from pydantic import BaseModel, TypeAdapter, ValidationError

from orch._agent import Agent
from orch._pipeline import Binding, Const, ListBinding, Node, Pipeline, spec_bytes_of
from orch._refs import InputRef, NodeRef, Ref
from orch._typecheck import compatible, describe, element_type, field_type, spec_type
from orch.errors import PipelineValidationError, PluginError, ValidationProblem
from traces import CanonicalEncodingError, to_canonical

__all__ = ["SELECTION_FIELDS", "validate"]

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
SELECTION_FIELDS = ("branches", "branch")
"""Output fields a router may use to select successor branches: a list of labels, or one."""


class _Checker:
    def __init__(
        self,
        name: str,
        inputs: Sequence[tuple[str, Any]],
        nodes: Sequence[Node],
        outputs: Sequence[tuple[str, Ref]],
    ) -> None:
        self.name = name
        self.raw_inputs = inputs
        self.raw_nodes = nodes
        self.raw_outputs = outputs
        self.problems: list[ValidationProblem] = []
        self.inputs: dict[str, Any] = {}
        self.nodes: dict[str, Node] = {}
        self.agents: dict[str, Agent[Any, Any]] = {}
        # Nodes with a resolved agent that cannot be built (a duplicate or invalid id): their
        # inputs are still checked.
        self.unbuilt: list[tuple[Node, Agent[Any, Any]]] = []
        self.plugins: dict[str, str] = {}

    def problem(self, node: str, code: str, message: str, fix: str) -> None:
        self.problems.append(ValidationProblem(node, code, message, fix))

    # -- declarations --------------------------------------------------------------------

    def check_inputs(self) -> None:
        for name, tp in self.raw_inputs:
            where = f"input:{name}"
            if not isinstance(name, str) or not _ID_RE.match(name):
                self.problem(
                    where,
                    "invalid-id",
                    f"input name {name!r} is not a valid name",
                    "use letters, digits, '_' or '-', starting with a letter or '_'",
                )
                continue
            if name in self.inputs:
                self.problem(
                    where,
                    "duplicate-input",
                    f"input {name!r} is declared twice",
                    "declare each pipeline input once",
                )
                continue
            try:
                TypeAdapter(tp)
            except Exception as exc:
                self.problem(
                    where,
                    "invalid-type",
                    f"type {tp!r} is not usable ({str(exc).splitlines()[0]})",
                    "declare the input with a type pydantic can validate",
                )
                continue
            self.inputs[name] = tp

    def check_nodes(self) -> None:
        seen: dict[str, int] = {}
        for node in self.raw_nodes:
            seen[node.id] = seen.get(node.id, 0) + 1
        for node_id, count in seen.items():
            if count > 1:
                self.problem(
                    node_id,
                    "duplicate-node",
                    f"node id is used by {count} nodes",
                    "give every node a unique id",
                )
        invalid: set[str] = set()
        for node in self.raw_nodes:
            valid_id = isinstance(node.id, str) and _ID_RE.match(node.id) is not None
            if not valid_id:
                if str(node.id) not in invalid:  # once per id, however many nodes use it
                    invalid.add(str(node.id))
                    self.problem(
                        str(node.id),
                        "invalid-id",
                        "node id must be 1-128 letters, digits, '_' or '-', starting with "
                        "a letter or '_' ('/' is reserved for child steps)",
                        "rename the node",
                    )
            elif node.id in self.inputs:
                self.problem(
                    node.id,
                    "duplicate-node",
                    "a pipeline input has the same name",
                    "rename the node or the input",
                )
            if node.timeout is not None and not node.timeout > 0:
                self.problem(
                    str(node.id),
                    "invalid-timeout",
                    f"timeout {node.timeout!r} is not > 0",
                    "give a positive number of seconds, or None",
                )
            agent = self.resolve_agent(node)
            if agent is None:
                continue
            if agent.unconfigured:
                fix = agent.unconfigured.split("; fix: ")
                self.problem(str(node.id), "unconfigured-agent", fix[0], fix[-1])
                continue
            if not valid_id or seen[node.id] > 1:
                if isinstance(node.id, str):
                    self.unbuilt.append((node, agent))
                continue
            self.nodes[node.id] = node
            self.agents[node.id] = agent

    def resolve_agent(self, node: Node) -> Agent[Any, Any] | None:
        if isinstance(node.agent, Agent):
            return node.agent
        if isinstance(node.agent, str):
            from orch._plugins import load_agent  # plugins reach across packages; load lazily

            try:
                agent, dist = load_agent(node.agent)
            except PluginError as exc:
                # The plugin error carries its own "; fix: ..." part; keep one of each.
                message, _, fix = str(exc).partition("; fix: ")
                self.problem(
                    node.id,
                    "unknown-agent",
                    message,
                    f"{fix or 'install the plugin package'}, or pass an Agent instance",
                )
                return None
            if dist is not None:
                self.plugins[dist[0]] = dist[1]
            return agent
        self.problem(
            node.id,
            "not-an-agent",
            f"{node.agent!r} is a {type(node.agent).__name__}, not an agent",
            "pass an Agent instance, a function decorated with @agent, or the name "
            "of a plugin agent",
        )
        return None

    # -- references and types ------------------------------------------------------------

    def ref_type(self, where: str, what: str, ref: Ref) -> tuple[bool, Any]:
        """Resolve a reference: (ok, produced type)."""
        if isinstance(ref, InputRef):
            if ref.name not in self.inputs:
                known = ", ".join(sorted(self.inputs)) or "(none)"
                self.problem(
                    where,
                    "unknown-reference",
                    f"{what} refers to pipeline input {ref.name!r}, which is not "
                    f"declared (inputs: {known})",
                    f"declare it with builder.input({ref.name!r}, TYPE) or fix the name",
                )
                return False, None
            return True, self.inputs[ref.name]
        if ref.node not in self.agents:
            if ref.node in self.nodes or any(n.id == ref.node for n in self.raw_nodes):
                return False, None  # the producer itself is broken and already reported
            known = ", ".join(sorted(self.agents)) or "(none)"
            self.problem(
                where,
                "unknown-reference",
                f"{what} refers to node {ref.node!r}, which does not exist (nodes: {known})",
                "define that node or fix the reference",
            )
            return False, None
        out_model = self.agents[ref.node].output_model
        if not ref.path:
            return True, out_model
        tp, err = field_type(out_model, ref.path)
        if err is not None:
            self.problem(
                where,
                "unknown-reference",
                f"{what} refers to field {'.'.join(ref.path)!r} of node {ref.node!r}: {err}",
                "reference an existing field of that node's output",
            )
            return False, None
        return True, tp

    def check_binding(self, node_id: str, field: str, expected: Any, binding: Binding) -> None:
        what = f"input field {field!r}"
        if isinstance(binding, Const):
            try:
                to_canonical(binding.value)
                TypeAdapter(expected).validate_python(binding.value)
            except (ValidationError, CanonicalEncodingError) as exc:
                first = str(exc).splitlines()[0]
                self.problem(
                    node_id,
                    "type-mismatch",
                    f"{what} expects {describe(expected)} but is bound to the constant "
                    f"{binding.value!r} ({first})",
                    "bind a value of the expected type, or a reference",
                )
            return
        if isinstance(binding, ListBinding):
            elem = element_type(expected)
            if elem is None:
                self.problem(
                    node_id,
                    "type-mismatch",
                    f"{what} expects {describe(expected)} but is bound to a list of "
                    f"{len(binding.items)} references",
                    "bind a single reference, or declare the field as list[...]",
                )
                return
            for i, item in enumerate(binding.items):
                ok, produced = self.ref_type(node_id, f"{what} item {i}", item)
                if ok and not compatible(produced, elem):
                    self.problem(
                        node_id,
                        "type-mismatch",
                        f"{what} item {i} expects {describe(elem)} but {item} "
                        f"produces {describe(produced)}",
                        "bind a producer of the expected type, or change the field type",
                    )
            return
        ok, produced = self.ref_type(node_id, what, binding)
        if ok and not compatible(produced, expected):
            self.problem(
                node_id,
                "type-mismatch",
                f"{what} expects {describe(expected)} but {binding} produces {describe(produced)}",
                "bind a producer of the expected type, or change one of the two types",
            )

    def check_node_inputs(self, node: Node, agent: Agent[Any, Any] | None = None) -> None:
        agent = agent if agent is not None else self.agents[node.id]
        model: type[BaseModel] = agent.input_model
        fields = model.model_fields
        if node.whole is not None:
            ok, produced = self.ref_type(node.id, "whole input", node.whole)
            if ok and not compatible(produced, model):
                self.problem(
                    node.id,
                    "type-mismatch",
                    f"whole input expects {describe(model)} but {node.whole} produces "
                    f"{describe(produced)}",
                    "bind the whole input to a producer of that model, or bind fields",
                )
        for name, binding in node.bindings.items():
            if name not in fields:
                known = ", ".join(sorted(fields)) or "(none)"
                self.problem(
                    node.id,
                    "unknown-field",
                    f"agent {agent.name!r} input {model.__name__} has no field "
                    f"{name!r} (fields: {known})",
                    "bind one of the agent's input fields",
                )
                continue
            self.check_binding(node.id, name, fields[name].annotation, binding)
        if node.whole is None:
            for name, info in fields.items():
                if info.is_required() and name not in node.bindings:
                    self.problem(
                        node.id,
                        "unbound-input",
                        f"required input field {name!r} "
                        f"({describe(info.annotation)}) of agent {agent.name!r} is "
                        "not bound",
                        f"pass {name}=<reference or value> to builder.node({node.id!r}, ...)",
                    )
        for cond in node.when:
            self.check_condition(node.id, cond.node, cond.label)

    def check_condition(self, node_id: str, gate: str, label: str) -> None:
        if gate not in self.agents:
            if not any(n.id == gate for n in self.raw_nodes):
                self.problem(
                    node_id,
                    "unknown-reference",
                    f"condition refers to node {gate!r}, which does not exist",
                    "make the node conditional on an existing router node",
                )
            return
        if gate == node_id:
            return  # reported as a cycle
        out = self.agents[gate].output_model
        if not any(f in out.model_fields for f in SELECTION_FIELDS):
            self.problem(
                node_id,
                "invalid-condition",
                f"condition on node {gate!r}: its output {out.__name__} has no "
                "'branches' (list of labels) or 'branch' (one label) field",
                "give the router's output model a 'branches: list[str]' field, e.g. "
                "by subclassing orch.Selection",
            )
        if not isinstance(label, str) or not label:
            self.problem(
                node_id,
                "invalid-condition",
                f"branch label {label!r} is not a non-empty string",
                "use a string label",
            )

    def check_outputs(self) -> dict[str, Ref]:
        outputs: dict[str, Ref] = {}
        for name, source in self.raw_outputs:
            where = f"output:{name}"
            if name in outputs:
                self.problem(
                    where,
                    "duplicate-output",
                    f"output {name!r} is declared twice",
                    "name each output once",
                )
                continue
            if not isinstance(source, (InputRef, NodeRef)):
                self.problem(
                    where,
                    "unknown-reference",
                    f"output source {source!r} is not a reference",
                    "pass a node handle, node.field(...) or an input",
                )
                continue
            ok, _ = self.ref_type(where, "output", source)
            if ok:
                outputs[name] = source
        return outputs

    # -- graph -----------------------------------------------------------------------------

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for node_id in self.nodes:
            g.add_node(node_id)
        for node in self.nodes.values():
            for producer in _producers(node):
                if producer in self.nodes:
                    g.add_edge(producer, node.id, kind="data")
            for cond in node.when:
                if cond.node in self.nodes:
                    g.add_edge(cond.node, node.id, kind="condition", label=cond.label)
        return g

    def cycle_graph(self) -> nx.DiGraph:
        """Data and condition edges between every declared node id, broken nodes included
        (definitions sharing an id share a vertex): a cycle through a duplicate, an invalid
        id or an unknown agent is a problem of its own."""
        ids = {n.id for n in self.raw_nodes if isinstance(n.id, str)}
        g = nx.DiGraph()
        g.add_nodes_from(n.id for n in self.raw_nodes if isinstance(n.id, str))
        for node in self.raw_nodes:
            if not isinstance(node.id, str):
                continue
            for producer in _producers(node):
                if producer in ids:
                    g.add_edge(producer, node.id)
            for cond in node.when:
                if cond.node in ids:
                    g.add_edge(cond.node, node.id)
        return g

    def check_cycles(self, g: nx.DiGraph) -> None:
        order: dict[str, int] = {}
        for i, n in enumerate(g.nodes):  # insertion order: the order nodes were declared
            order.setdefault(n, i)
        for component in sorted(
            nx.strongly_connected_components(g), key=lambda c: min(order[n] for n in c)
        ):
            first = min(component, key=order.__getitem__)
            if len(component) == 1 and not g.has_edge(first, first):
                continue
            cycle = nx.find_cycle(g.subgraph(component), source=first)
            path = [edge[0] for edge in cycle] + [cycle[0][0]]
            self.problem(
                first,
                "cycle",
                "cycle " + " -> ".join(path),
                "remove one of these edges: a pipeline must be acyclic (loop inside an "
                "agent with ctx.call instead)",
            )


def _producers(node: Node) -> list[str]:
    refs: list[Ref] = []
    if node.whole is not None:
        refs.append(node.whole)
    for binding in node.bindings.values():
        if isinstance(binding, ListBinding):
            refs.extend(binding.items)
        elif isinstance(binding, (InputRef, NodeRef)):
            refs.append(binding)
    return sorted({r.node for r in refs if isinstance(r, NodeRef)})


def _binding_spec(binding: Binding) -> dict[str, Any]:
    return binding.spec()


def _spec(c: _Checker, outputs: dict[str, Ref], depth: dict[str, int]) -> dict[str, Any]:
    nodes = []
    for node_id, node in c.nodes.items():
        agent = c.agents[node_id]
        nodes.append(
            {
                "id": node_id,
                "agent": {
                    "name": agent.name,
                    "version": agent.version,
                    "config_hash": agent.config_hash,
                    "input": spec_type(agent.input_model),
                    "output": spec_type(agent.output_model),
                },
                "whole": node.whole.spec() if node.whole is not None else None,
                "bind": {k: _binding_spec(v) for k, v in sorted(node.bindings.items())},
                "when": [b.spec() for b in node.when],
                "optional": node.optional,
                "timeout": node.timeout,
                "retry": node.retry.spec(),
                "depth": depth[node_id],
            }
        )
    return {
        "format": "orch.spec/1",
        "name": c.name,
        "inputs": [{"name": n, "type": spec_type(t)} for n, t in c.inputs.items()],
        "nodes": nodes,
        "outputs": {k: v.spec() for k, v in sorted(outputs.items())},
    }


def validate(
    name: str,
    inputs: Sequence[tuple[str, Any]],
    nodes: Sequence[Node],
    outputs: Sequence[tuple[str, Ref]],
) -> Pipeline:
    """Check a definition; return the :class:`Pipeline` or raise with every problem."""
    c = _Checker(name, inputs, nodes, outputs)
    c.check_inputs()
    c.check_nodes()
    for node in c.nodes.values():
        c.check_node_inputs(node)
    for node, agent in c.unbuilt:
        c.check_node_inputs(node, agent)
    resolved_outputs = c.check_outputs()
    g = c.graph()
    c.check_cycles(c.cycle_graph())
    if not c.nodes and not c.problems:
        c.problem("(pipeline)", "empty", "the pipeline has no nodes", "add a node")
    if c.problems:
        # Two definitions of one id may share a problem: say it once.
        raise PipelineValidationError(name, list(dict.fromkeys(c.problems)))

    definition = {n: i for i, n in enumerate(c.nodes)}
    order = tuple(nx.lexicographical_topological_sort(g, key=definition.__getitem__))
    depth: dict[str, int] = {}
    for node_id in order:
        preds = list(g.predecessors(node_id))
        depth[node_id] = 1 + max(depth[p] for p in preds) if preds else 0
    if not resolved_outputs:
        resolved_outputs = {n: NodeRef(n) for n in order if g.out_degree(n) == 0}
    spec = _spec(c, resolved_outputs, depth)
    return Pipeline(
        name=name,
        inputs=dict(c.inputs),
        nodes=dict(c.nodes),
        agents=dict(c.agents),
        outputs=resolved_outputs,
        graph=g,
        order=order,
        depth=depth,
        producers={n: tuple(sorted(g.predecessors(n))) for n in order},
        consumers={n: tuple(sorted(g.successors(n))) for n in order},
        spec=spec,
        plugins=dict(sorted(c.plugins.items())),
        spec_bytes=spec_bytes_of(spec),
    )
