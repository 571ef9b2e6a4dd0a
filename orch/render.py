"""Terminal rendering of runs for the CLI (rich): summaries, step trees, run lists.

Pure presentation over :mod:`traces.runview`; it never reads the store itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from traces import Decision, RunHead
from traces.runview import RunView, StepView

__all__ = ["STATUS_STYLE", "decision_text", "run_summary", "runs_table", "step_tree", "wall"]

STATUS_STYLE = {
    "ok": ("✔", "green"),
    "failed": ("✘", "red"),
    "skipped": ("○", "dim"),
    "cancelled": ("⊘", "yellow"),
    "running": ("…", "cyan"),
}


def wall(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def short(value: Any, limit: int = 100) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decision_text(d: Decision) -> Text:
    text = Text("  ↳ decision ", style="magenta")
    text.append(f"{d.router}@{d.router_version}: ", style="magenta")
    text.append(f"chose {', '.join(d.chosen) or '(none)'}", style="bold")
    text.append(f" of {len(d.candidates)}")
    if d.scores:
        text.append(f"  scores {short(d.scores, 80)}", style="dim")
    text.append(f"\n     reason: {d.reason}")
    if d.state_version:
        text.append(f"\n     state: {d.state_version[:19]}", style="dim")
    return text


def _step_label(step: StepView) -> RenderableType:
    rec = step.record
    icon, style = STATUS_STYLE.get(rec.status, ("?", ""))
    text = Text(f"{icon} ", style=style)
    text.append(rec.step_id, style="bold")
    text.append(f"  {rec.agent.name}@{rec.agent.version}", style="dim")
    text.append(f"  {rec.status}", style=style)
    if step.duration is not None:
        text.append(f"  {_ms(step.duration)}", style="dim")
    for e in step.effects:
        tokens = "/".join(str(v) for v in e.usage.values())
        cost = f" ${e.cost_usd:.6f}" if e.cost_usd is not None else ""
        text.append(
            f"\n  ⇄ {e.kind} {e.target} #{e.index} {e.status}"
            + (f" tokens {tokens}" if tokens else "")
            + cost
            + (f": {e.error.message}" if e.error is not None and e.status != "ok" else ""),
            style="dim" if e.status == "ok" else "red",
        )
    if rec.reason:
        text.append(f"\n  {rec.reason}", style="dim")
    if rec.error:
        text.append(f"\n  {rec.error.type}: {rec.error.message}", style="red")
    if not step.decisions:
        return text
    return Group(text, *(decision_text(d) for d in step.decisions))


def step_tree(view: RunView) -> Tree:
    """Steps as a tree: top-level nodes in pipeline order, child calls beneath."""
    head = view.head
    tree = Tree(Text(f"run {head.run_id}  ({head.pipeline})", style="bold"))

    def add(parent: Tree, step: StepView) -> None:
        branch = parent.add(_step_label(step))
        for child in view.children(step):
            add(branch, child)

    for step in view.top_level():
        add(tree, step)
    return tree


def run_summary(view: RunView) -> Table:
    head = view.head
    icon, style = STATUS_STYLE.get(head.status, ("?", ""))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    # Hashes are what an auditor copies: fold them onto the next line, never cut them.
    table.add_column(overflow="fold")
    # Recorded text goes in as Text, never as markup: "[cot1]" in a model id must print.
    table.add_row("run", head.run_id)
    table.add_row("pipeline", Text(head.pipeline))
    table.add_row("status", Text(f"{icon} {head.status}", style=style))
    table.add_row("root hash", head.root_hash or "(run did not finish)")
    table.add_row("spec hash", head.spec_hash)
    table.add_row("seed", str(head.seed))
    table.add_row("started", wall(head.started_at))
    if head.finished_at is not None:
        table.add_row("wall time", _ms(head.finished_at - head.started_at))
    counts: dict[str, int] = {}
    for s in view.steps.values():
        counts[s.record.status] = counts.get(s.record.status, 0) + 1
    table.add_row("steps", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "0")
    n_effects = sum(len(s.effects) for s in view.steps.values())
    if n_effects:
        usage = ", ".join(f"{v} {k}" for k, v in view.usage().items())
        table.add_row("effects", f"{n_effects} recorded" + (f" ({usage})" if usage else ""))
        table.add_row("cost", f"${view.cost_usd:.6f}")
    if view.record is not None:
        if view.record.error:
            table.add_row("error", Text(view.record.error.message, style="red"))
        for name, key in sorted(view.record.outputs.items()):
            table.add_row(Text(f"output {name}"), Text(short(view.value(key), 200)))
    return table


def runs_table(heads: Iterable[RunHead]) -> Table:
    table = Table(title="runs")
    for col in ("run id", "pipeline", "status", "started", "root hash"):
        table.add_column(col)
    for h in heads:
        icon, style = STATUS_STYLE.get(h.status, ("?", ""))
        table.add_row(
            h.run_id,
            Text(h.pipeline),
            Text(f"{icon} {h.status}", style=style),
            wall(h.started_at),
            (h.root_hash or "-")[:23],
        )
    return table
