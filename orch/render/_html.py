"""Shared pieces of the static HTML reports: page skeleton and CSS, escaping, tables, values,
and a pipeline's DAG drawn as inline SVG.

A report is one self-contained file that a browser opens from disk: no script, and no
stylesheet, font or image from anywhere else. The page's Content-Security-Policy says so, and
a browser enforces it, so a report that tried to load anything would show it broken instead
of quietly phoning out. Every text that comes from a record goes through :func:`esc`. Output
is a function of the input only: never the time of now, and sorted wherever the input gives
no order, so the same input gives the same bytes. This module never reads a store.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import orjson

__all__ = [
    "DAG_CSS",
    "DagNode",
    "dag_svg",
    "esc",
    "fmt_seconds",
    "fmt_usd",
    "json_text",
    "kv_table",
    "page",
    "table",
    "value_html",
]

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

#: The rules of the DAG's SVG (:func:`dag_svg`): the report inlines them, ``orch ui`` serves them.
DAG_CSS = """\
.dag-wrap { overflow: auto; border: 1px solid #d8dee4; border-radius: 6px; padding: 8px; }
.dag-wrap svg { display: block; margin: 0 auto; }
svg.dag text { font: 12px system-ui, sans-serif; fill: #1d2430; }
svg.dag text.title { font-weight: 700; }
svg.dag text.dim { fill: #5b6573; }
svg.dag .edge { fill: none; stroke: #7b8794; stroke-width: 1.4; }
svg.dag .edge.cond { stroke-dasharray: 5 4; stroke: #8e44ad; }
svg.dag text.edge-label { fill: #8e44ad; font-size: 11px; }
svg.dag .dag-node rect { stroke-width: 1.6; fill: #ffffff; stroke: #7b8794; }
svg.dag .dag-node.status-ok rect { fill: #d4f7d4; stroke: #2e7d32; }
svg.dag .dag-node.status-failed rect { fill: #fbd5d5; stroke: #c62828; }
svg.dag .dag-node.status-skipped rect { fill: #eeeeee; stroke: #9e9e9e;
                                        stroke-dasharray: 4 3; }
svg.dag .dag-node.status-cancelled rect { fill: #fff3cd; stroke: #b28704; }
svg.dag .dag-node.status-waiting rect { fill: #ead7f7; stroke: #6a1b9a; }
svg.dag .dag-io rect { fill: #e8f0fe; stroke: #4a6fa5; }
"""

_CSS = (
    """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px;
       padding: 0 16px; color: #1d2430; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5b6573; margin: 0 0 16px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-all; margin: 4px 0; background: #f6f8fa;
      padding: 6px; border-radius: 4px; max-height: 320px; overflow: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d8dee4; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 150px; }
td.hash, .hash { font-family: ui-monospace, Menlo, monospace; font-size: 12px;
                 word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; }
.status-ok { color: #1b5e20; } .status-failed { color: #b71c1c; }
.status-skipped { color: #757575; } .status-cancelled { color: #8d6e00; }
.status-waiting { color: #6a1b9a; }
.status-running, .status-none { color: #01579b; }
.badge.good { background: #d4f7d4; color: #1b5e20; }
.badge.bad { background: #fbd5d5; color: #b71c1c; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 6px 10px; }
"""
    + DAG_CSS
    + """.timeline { position: relative; height: 10px; min-width: 160px; background: #f0f3f6; }
.timeline span { position: absolute; top: 0; height: 10px; background: #4a6fa5; }
ul.candidates { margin: 0; padding-left: 18px; }
li.chosen { font-weight: 700; color: #1b5e20; }
details { margin: 4px 0; } summary { cursor: pointer; }
dl { margin: 0; } dt { font-weight: 600; } dd { margin: 0 0 4px 12px; }
img.plot { max-width: 100%; border: 1px solid #d8dee4; }
"""
)


def esc(value: object) -> str:
    """``value`` as text, escaped for HTML text and attribute values alike."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, kind: str) -> str:
    """A whole HTML document: ``body`` is trusted HTML, ``title`` is text."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="orch report">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-report="{esc(kind)}">\n{body}\n</body>\n</html>\n'
    )


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    id: str | None = None,
    cls: str = "",
    caption: str | None = None,
    row_attrs: Sequence[str] | None = None,
) -> str:
    """A table; ``columns`` and ``caption`` are text, each cell of ``rows`` is trusted HTML
    (a cell starting with ``<td`` is used as it is, so callers can set its class).
    ``row_attrs`` gives each row's extra attributes (trusted)."""
    attrs = (f' id="{esc(id)}"' if id else "") + (f' class="{esc(cls)}"' if cls else "")
    parts = [f"<table{attrs}>"]
    if caption is not None:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead>")
    parts.append("<tbody>")
    for i, row in enumerate(rows):
        extra = f" {row_attrs[i]}" if row_attrs is not None and row_attrs[i] else ""
        cells = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
        parts.append(f"<tr{extra}>{cells}</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def kv_table(pairs: Iterable[tuple[str, str]], *, id: str | None = None) -> str:
    """A two-column table of (text name, trusted HTML value)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    ident = f' id="{esc(id)}"' if id else ""
    return f'<table class="kv"{ident}><tbody>{rows}</tbody></table>'


def json_text(value: Any, *, indent: bool = False) -> str:
    """``value`` as JSON text with sorted keys (strings as they are)."""
    if isinstance(value, str):
        return value
    option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(value, option=option).decode()
    except TypeError:
        return repr(value)


def value_html(value: Any, limit: int = 160, full_limit: int = 20_000) -> str:
    """A value inline when short; else its start, with the whole (up to ``full_limit``
    characters, so one huge artifact cannot swell the page) in a collapsed block."""
    short = json_text(value)
    if len(short) <= limit:
        return f"<code>{esc(short)}</code>"
    whole = json_text(value, indent=True)
    cut = f"\n… ({len(whole) - full_limit} more characters)" if len(whole) > full_limit else ""
    return (
        f"<details><summary><code>{esc(short[: limit - 1])}…</code></summary>"
        f"<pre>{esc(whole[:full_limit])}{esc(cut)}</pre></details>"
    )


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def fmt_usd(usd: float | None, digits: int = 6) -> str:
    return "-" if usd is None else f"${usd:.{digits}f}"


# -- the DAG -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DagNode:
    """What a drawn step box says besides its id and agent."""

    status: str
    """ok, failed, skipped, cancelled, running, or none (no record)."""
    note: str = ""
    """One short line: duration, cost ..."""


_NODE_W, _NODE_H, _IO_H = 210, 58, 32
_H_GAP, _V_GAP, _MARGIN = 28, 54, 16
_CHARS = 28  # what fits in a box at 12 px


_Box = tuple[str, str]
"""A drawn box: ``("in" | "n" | "out", name)``."""


def _fit(text: str, chars: int = _CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _sources(binding: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "list" in binding:
        return list(binding["list"])
    if "input" in binding or "node" in binding:
        return [binding]
    return []


def _graph(spec: Mapping[str, Any]) -> nx.DiGraph:
    g = nx.DiGraph()
    for inp in spec.get("inputs", []):
        g.add_node(("in", inp["name"]), order=len(g))
    for node in spec.get("nodes", []):
        g.add_node(("n", node["id"]), order=len(g))
    for name in sorted(spec.get("outputs", {})):
        g.add_node(("out", name), order=len(g))

    def src_of(src: Mapping[str, Any]) -> tuple[str, str]:
        return ("in", src["input"]) if "input" in src else ("n", src["node"])

    def edge(src: tuple[str, str], dst: tuple[str, str], field: str, branch: str = "") -> None:
        if g.has_edge(src, dst):
            g.edges[src, dst]["fields"].add(field)
            if branch:
                g.edges[src, dst]["branches"].add(branch)
        else:
            g.add_edge(src, dst, fields={field}, branches={branch} if branch else set())

    for node in spec.get("nodes", []):
        dst = ("n", node["id"])
        if node.get("whole"):
            edge(src_of(node["whole"]), dst, "(whole input)")
        for field, binding in sorted(node.get("bind", {}).items()):
            for src in _sources(binding):
                edge(src_of(src), dst, field)
        for cond in node.get("when", []):
            edge(("n", cond["node"]), dst, "when", cond["branch"])
    for name, src in sorted(spec.get("outputs", {}).items()):
        edge(src_of(src), ("out", name), name)
    return g


def _levels(g: nx.DiGraph) -> list[list[_Box]]:
    """Nodes by topological level, each level ordered by its predecessors' mean position
    (fewer crossings), ties by definition order: a layout that depends on the spec only."""
    levels: list[list[_Box]] = []
    pos: dict[_Box, float] = {}
    for generation in nx.topological_generations(g):

        def rank(n: _Box) -> tuple[float, int]:
            preds = [pos[p] for p in g.predecessors(n) if p in pos]
            centre = sum(preds) / len(preds) if preds else float(g.nodes[n]["order"])
            return (centre, int(g.nodes[n]["order"]))

        level = sorted(generation, key=rank)
        width = len(level)
        for i, n in enumerate(level):
            pos[n] = i - (width - 1) / 2  # centred, so levels of different widths line up
        levels.append(level)
    return levels


@dataclass(frozen=True)
class _Layout:
    """Where the boxes of a DAG go: level by level from the top, each level centred."""

    width: float
    height: float
    box: dict[_Box, tuple[float, float, float]]
    """x, y (top) and height of each box."""
    depth: dict[_Box, int]
    """The level of each box."""
    rows: list[tuple[float, float, list[float]]]
    """Each level's top, height, and the x of each gap between its boxes (and at its ends)."""


def _layout(levels: list[list[_Box]]) -> _Layout:
    widest = max(len(level) for level in levels)
    width = _MARGIN * 2 + widest * _NODE_W + (widest - 1) * _H_GAP
    box: dict[_Box, tuple[float, float, float]] = {}
    depth: dict[_Box, int] = {}
    rows: list[tuple[float, float, list[float]]] = []
    y = float(_MARGIN)
    for level in levels:
        row = len(level) * _NODE_W + (len(level) - 1) * _H_GAP
        x0 = (width - row) / 2
        height = max(_IO_H if kind != "n" else _NODE_H for kind, _ in level)
        for i, n in enumerate(level):
            bh = _IO_H if n[0] != "n" else _NODE_H
            box[n] = (x0 + i * (_NODE_W + _H_GAP), y + (height - bh) / 2, bh)
            depth[n] = len(rows)
        gaps = [x0 - _H_GAP / 2] + [
            x0 + i * (_NODE_W + _H_GAP) + _NODE_W + _H_GAP / 2 for i in range(len(level))
        ]
        rows.append((y, height, gaps))
        y += height + _V_GAP
    return _Layout(width, y - _V_GAP + _MARGIN, box, depth, rows)


def _route(layout: _Layout, src: _Box, dst: _Box) -> list[tuple[float, float]]:
    """The points an edge passes, from the bottom of ``src`` to the top of ``dst``."""
    sx, sy, sh = layout.box[src]
    dx, dy, _ = layout.box[dst]
    x1, y1 = sx + _NODE_W / 2, sy + sh
    x2, y2 = dx + _NODE_W / 2, dy
    # An edge that skips levels would run behind the boxes between its ends: route it
    # through the gap of each level in between that is nearest its straight line.
    points = [(x1, y1)]
    for k in range(layout.depth[src] + 1, layout.depth[dst]):
        top, tall, gaps = layout.rows[k]
        mid = top + tall / 2
        straight = x1 + (x2 - x1) * (mid - y1) / (y2 - y1)
        gap = min(gaps, key=lambda g_x: (abs(g_x - straight), g_x))
        points += [(gap, top - 6), (gap, top + tall + 6)]
    points.append((x2, y2))
    return points


def _edge_svg(
    src: _Box, dst: _Box, data: Mapping[str, Any], points: list[tuple[float, float]]
) -> list[str]:
    """An edge through ``points``: dashed and labelled with its branches for a condition."""
    (x1, y1), (lx2, ly2) = points[0], points[1]
    d = f"M{x1:.1f},{y1:.1f}"
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        if ax == bx:
            d += f" L{bx:.1f},{by:.1f}"
        else:
            bend = max((by - ay) / 2, 10.0)
            d += f" C{ax:.1f},{ay + bend:.1f} {bx:.1f},{by - bend:.1f} {bx:.1f},{by:.1f}"
    branches = sorted(data["branches"])
    cls = "edge cond" if branches else "edge"
    tip = ", ".join(sorted(data["fields"] - {"when"})) or "condition"
    if branches:
        tip += f" (when {src[1]} selects {', '.join(branches)})"
    parts = [
        f'<path class="{cls}" d="{d}" marker-end="url(#arrow)">'
        f"<title>{esc(src[1])} → {esc(dst[1])}: {esc(tip)}</title></path>"
    ]
    if branches:
        parts.append(
            f'<text class="edge-label" x="{(x1 + lx2) / 2 + 4:.1f}" '
            f'y="{(y1 + ly2) / 2:.1f}">'
            f"{esc(_fit(', '.join(branches), 20))}</text>"
        )
    return parts


def _io_svg(kind: str, name: str, x: float, top: float, h: float) -> str:
    """The box of a pipeline input or output."""
    label = "input" if kind == "in" else "output"
    return (
        f'<g class="dag-io" data-{label}="{esc(name)}"><title>{label} {esc(name)}</title>'
        f'<rect x="{x:.1f}" y="{top:.1f}" width="{_NODE_W}" height="{h}" rx="16"/>'
        f'<text x="{x + _NODE_W / 2:.1f}" y="{top + 20:.1f}" text-anchor="middle">'
        f"{esc(label)}: {esc(_fit(name, 20))}</text></g>"
    )


def _node_svg(
    name: str, agent: Mapping[str, Any], info: DagNode, x: float, top: float, h: float
) -> str:
    """The box of a node: its id, agent and version, and its step's status."""
    ident = f"{agent['name']}@{agent['version']}"
    return (
        f'<g class="dag-node status-{esc(info.status)}" data-step="{esc(name)}" '
        f'data-status="{esc(info.status)}"><title>{esc(name)} ({esc(ident)}): '
        f"{esc(info.status)}{' · ' + esc(info.note) if info.note else ''}</title>"
        f'<rect x="{x:.1f}" y="{top:.1f}" width="{_NODE_W}" height="{h}" rx="6"/>'
        f'<text class="title" x="{x + 8:.1f}" y="{top + 17:.1f}">{esc(_fit(name))}</text>'
        f'<text class="dim" x="{x + 8:.1f}" y="{top + 33:.1f}">{esc(_fit(ident))}</text>'
        f'<text x="{x + 8:.1f}" y="{top + 49:.1f}">'
        f"{esc(_fit(info.status + (' · ' + info.note if info.note else ''), 32))}</text></g>"
    )


def dag_svg(spec: Mapping[str, Any], steps: Mapping[str, DagNode]) -> str:
    """The pipeline of ``spec`` as an inline SVG: inputs on top, outputs at the bottom,
    one box per node coloured by its status in ``steps`` (node id -> :class:`DagNode`);
    dashed edges are conditions, labelled with the branch that enables them."""
    if not spec.get("nodes"):
        return '<p class="note">The pipeline spec is not in the store; no graph to draw.</p>'
    g = _graph(spec)
    layout = _layout(_levels(g))
    width, total_h = layout.width, layout.height
    parts = [
        f'<svg class="dag" id="dag-svg" width="{width:.0f}" '
        f'height="{total_h:.0f}" viewBox="0 0 {width:.0f} {total_h:.0f}" role="img" '
        f'aria-label="pipeline {esc(spec.get("name", ""))}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#7b8794"/></marker></defs>',
    ]
    for src, dst in sorted(g.edges, key=lambda e: (g.nodes[e[0]]["order"], g.nodes[e[1]]["order"])):
        parts += _edge_svg(src, dst, g.edges[src, dst], _route(layout, src, dst))
    agents = {n["id"]: n["agent"] for n in spec["nodes"]}
    for kind, name in sorted(layout.box, key=lambda n: g.nodes[n]["order"]):
        x, top, h = layout.box[kind, name]
        if kind != "n":
            parts.append(_io_svg(kind, name, x, top, h))
        else:
            info = steps.get(name, DagNode("none", "not run"))
            parts.append(_node_svg(name, agents[name], info, x, top, h))
    parts.append("</svg>")
    return '<div class="dag-wrap">' + "\n".join(parts) + "</div>"
