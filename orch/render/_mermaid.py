"""Render a pipeline spec (and optionally a run's step statuses) as a Mermaid flowchart.

Works from the spec document alone, so a stored run can be drawn without the code that
defined it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["pipeline_to_mermaid"]

_STATUS_STYLE = {
    "ok": "fill:#d4f7d4,stroke:#2e7d32",
    "failed": "fill:#fbd5d5,stroke:#c62828",
    "skipped": "fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray: 4 3",
    "cancelled": "fill:#fff3cd,stroke:#b28704",
    "waiting": "fill:#ead7f7,stroke:#6a1b9a",
}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return "__" if char == "_" else f"_{ord(char):x}_"


def _mid(kind: str, name: str) -> str:
    # Injective, so distinct names never merge into one box: '_' doubles and any other
    # character outside [A-Za-z0-9] becomes _<hex code point>_ ('a-b' -> a_2d_b, 'a_b' -> a__b).
    return f"{kind}_" + re.sub(r"[^A-Za-z0-9]", _escape_char, name)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _sources(binding: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "list" in binding:
        return list(binding["list"])
    if "input" in binding or "node" in binding:
        return [binding]
    return []


def pipeline_to_mermaid(spec: Mapping[str, Any], statuses: Mapping[str, str] | None = None) -> str:
    """Mermaid ``flowchart TD`` text for a pipeline spec."""
    lines = ["flowchart TD"]
    for inp in spec["inputs"]:
        tp = inp["type"]
        tp_name = tp["name"] if isinstance(tp, dict) else str(tp)
        lines.append(f'    {_mid("in", inp["name"])}(["{_label(inp["name"])}: {_label(tp_name)}"])')
    for node in spec["nodes"]:
        agent = node["agent"]
        lines.append(
            f'    {_mid("n", node["id"])}["{_label(node["id"])}<br/>'
            f'{_label(agent["name"])}@{_label(agent["version"])}"]'
        )
    for name in spec["outputs"]:
        lines.append(f'    {_mid("out", name)}[/"{_label(name)}"/]')
    edges: set[str] = set()

    def edge(src: Mapping[str, Any], dst: str, label: str = "") -> None:
        s = _mid("in", src["input"]) if "input" in src else _mid("n", src["node"])
        text = f' -- "{_label(label)}" --> ' if label else " --> "
        edges.add(f"    {s}{text}{dst}")

    for node in spec["nodes"]:
        dst = _mid("n", node["id"])
        if node["whole"]:
            edge(node["whole"], dst)
        for field, binding in node["bind"].items():
            for src in _sources(binding):
                edge(src, dst, f"{src['path']} → {field}" if src.get("path") else field)
        for cond in node["when"]:
            edges.add(f'    {_mid("n", cond["node"])} -. "{_label(cond["branch"])}" .-> {dst}')
    for name, src in spec["outputs"].items():
        edge(src, _mid("out", name))
    lines.extend(sorted(edges))
    if statuses:
        for status, style in _STATUS_STYLE.items():
            lines.append(f"    classDef {status} {style}")
        for node in spec["nodes"]:
            node_status = statuses.get(node["id"])
            if node_status in _STATUS_STYLE:
                lines.append(f"    class {_mid('n', node['id'])} {node_status}")
    return "\n".join(lines) + "\n"
