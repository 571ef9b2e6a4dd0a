"""Terminal rendering of runs for the CLI (rich): summaries, step trees, run lists.

Pure presentation over :mod:`traces._runview`; it never reads the store itself. Every string it
shows from a record is untrusted (a model's answer, a tampered file): it goes through
:func:`inert`, so that no escape sequence, carriage return or bidi override in it can act on
the auditor's terminal or forge an output line, and it goes into rich as ``Text``, never as
markup. :class:`InertConsole` is the safety net under that for everything the CLI prints.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from traces import Decision, RunHead, RunView, StepView

__all__ = [
    "status_text",
    "STATUS_STYLE",
    "InertConsole",
    "decision_text",
    "inert",
    "inert_json",
    "run_summary",
    "runs_table",
    "step_tree",
    "wall",
]

# What a terminal may act on instead of printing: C0 controls (ESC, CR, BEL, backspace ...),
# DEL, C1 controls (U+009B is an 8-bit CSI), line and paragraph separators, bidi marks,
# embeddings, overrides and isolates (they reorder what the auditor reads), and lone
# surrogates (undecodable command-line bytes, which a UTF-8 stream cannot even write).
_ALWAYS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2066-\u2069\ud800-\udfff"
)
_UNSAFE_LINE = re.compile(f"[\t\n{_ALWAYS}]")
_UNSAFE_TEXT = re.compile(f"[{_ALWAYS}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    # Python's own spelling: two hex digits up to U+00FF, four beyond (bidi, surrogates).
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, multiline: bool = False) -> str:
    """``text`` with every character a terminal could act on written as a visible escape
    (``\\x1b``, ``\\r``, ``\\u202e``). A single-line field (an id, a name, a status, a
    reason, an error message) also shows ``\\n`` and ``\\t``, so that it cannot forge a line
    of output; ``multiline=True`` keeps newlines and tabs, for text meant to span lines.
    A backslash is left as it is: text that already reads ``\\x1b`` is harmless."""
    pattern = _UNSAFE_TEXT if multiline else _UNSAFE_LINE
    if pattern.search(text) is None:  # the common case costs one scan
        return text
    return pattern.sub(_visible, text)


def inert_json(text: str) -> str:
    """JSON text with the characters a terminal could act on written as ``\\uXXXX`` escapes.

    orjson escapes the C0 controls already, but writes DEL, C1 controls and bidi controls
    raw; outside strings JSON has none of them, so the result is the same JSON value."""
    if _UNSAFE_TEXT.search(text) is None:
        return text
    return _UNSAFE_TEXT.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _inert_segments(segments: Iterable[Segment]) -> Iterator[Segment]:
    for segment in segments:
        text, style, control = segment
        if control:  # rich's own cursor movement (progress bars): its text is rich's
            yield segment
            continue
        if style is not None and style.link:
            style = style.update_link(None)  # an OSC 8 hyperlink is never ours to print
        yield Segment(inert(text, multiline=True), style, control)


class InertConsole(Console):
    """A rich console that escapes control characters in everything it prints.

    The net under :func:`inert`: text segments are made inert just before rich turns the
    styles into SGR codes, so rich's own colours still work, while a control character that
    reached a segment (a forgotten field, a third-party renderable) prints as ``\\x1b``.
    Newlines and tabs stay: by then they are layout, and single-line fields were made inert
    before they were laid out. Links are dropped: the CLI prints none of its own."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(_inert_segments(buffer))


STATUS_STYLE = {
    "ok": ("✔", "green"),
    "failed": ("✘", "red"),
    "skipped": ("○", "dim"),
    "cancelled": ("⊘", "yellow"),
    "waiting": ("?", "magenta"),
    "running": ("…", "cyan"),
    "interrupted": ("↯", "yellow"),
    "superseded": ("↷", "dim"),
}


def status_text(head: RunHead, *, gone: bool = False) -> Text:
    """A run's status as one styled line: ``↷ superseded by RUN`` names the resume; a run
    still marked running whose process is ``gone`` says so (it waits for a resume)."""
    if gone:
        return Text(inert("↯ running, but its process is gone: resume it"), style="yellow")
    icon, style = STATUS_STYLE.get(head.status, ("?", ""))
    by = f" by {head.superseded_by}" if head.superseded_by else ""
    return Text(inert(f"{icon} {head.status}{by}"), style=style)


def wall(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a tampered head: show it, do not crash
        return repr(ts)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def short(value: Any, limit: int = 100) -> str:
    """A recorded value on one line, cut at ``limit`` characters, made :func:`inert`."""
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return inert(text if len(text) <= limit else text[: limit - 1] + "…")


def decision_text(d: Decision) -> Text:
    text = Text("  ↳ decision ", style="magenta")
    text.append(inert(f"{d.router}@{d.router_version}: "), style="magenta")
    text.append(inert(f"chose {', '.join(d.chosen) or '(none)'}"), style="bold")
    text.append(f" of {len(d.candidates)}")
    if d.scores:
        text.append(f"  scores {short(d.scores, 80)}", style="dim")
    text.append(f"\n     reason: {inert(d.reason)}")
    if d.state_version:
        text.append(f"\n     state: {inert(d.state_version[:19])}", style="dim")
    return text


def _step_label(step: StepView) -> RenderableType:
    rec = step.record
    icon, style = STATUS_STYLE.get(rec.status, ("?", ""))
    text = Text(f"{icon} ", style=style)
    text.append(inert(rec.step_id), style="bold")
    text.append(inert(f"  {rec.agent.name}@{rec.agent.version}"), style="dim")
    text.append(inert(f"  {rec.status}"), style=style)
    if step.duration is not None:
        text.append(f"  {_ms(step.duration)}", style="dim")
    for e in step.effects:
        tokens = "/".join(str(v) for v in e.usage.values())
        cost = f" ${e.cost_usd:.6f}" if e.cost_usd is not None else ""
        text.append(
            "\n  ⇄ "
            + inert(f"{e.kind} {e.target} #{e.index} {e.status}")
            + (inert(f" tokens {tokens}") if tokens else "")
            + cost
            + (inert(f": {e.error.message}") if e.error is not None and e.status != "ok" else ""),
            style="dim" if e.status == "ok" else "red",
        )
    for failed in step.failed_attempts:
        if rec.error is not None and not failed.retried:
            continue  # the last attempt's failure is the step's own error, shown below
        then = "retried" if failed.retried else "not retried"
        text.append(
            "\n  ↺ "
            + inert(f"attempt {failed.attempt} failed ({then}): ")
            + inert(f"{failed.error.type}: {failed.error.message}"),
            style="yellow",
        )
    if rec.reason:
        text.append(f"\n  {inert(rec.reason)}", style="dim")
    if rec.error:
        text.append(f"\n  {inert(f'{rec.error.type}: {rec.error.message}')}", style="red")
    if not step.decisions:
        return text
    return Group(text, *(decision_text(d) for d in step.decisions))


def step_tree(view: RunView) -> Tree:
    """Steps as a tree: top-level nodes in pipeline order, child calls beneath."""
    head = view.head
    tree = Tree(Text(inert(f"run {head.run_id}  ({head.pipeline})"), style="bold"))

    def add(parent: Tree, step: StepView) -> None:
        branch = parent.add(_step_label(step))
        for child in view.children(step):
            add(branch, child)

    for step in view.top_level():
        add(tree, step)
    return tree


def run_summary(view: RunView, *, gone: bool = False) -> Table:
    head = view.head
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    # Hashes are what an auditor copies: fold them onto the next line, never cut them.
    table.add_column(overflow="fold")
    # Recorded text goes in as Text, never as markup: "[cot1]" in a model id must print.
    table.add_row("run", Text(inert(head.run_id)))
    table.add_row("pipeline", Text(inert(head.pipeline)))
    table.add_row("status", status_text(head, gone=gone))
    if head.resumed_from:
        table.add_row("resumed from", Text(inert(head.resumed_from)))
    if head.resumed_by:
        table.add_row("resumed by", Text(inert(", ".join(head.resumed_by))))
    if head.lineage and head.lineage != head.run_id:
        table.add_row("lineage", Text(inert(head.lineage)))
    if head.thread is not None:
        table.add_row("thread", Text(inert(f"{head.thread}, turn {head.turn}")))
    table.add_row("root hash", Text(inert(head.root_hash or "(run did not finish)")))
    table.add_row("spec hash", Text(inert(head.spec_hash)))
    table.add_row("seed", str(head.seed))
    table.add_row("started", wall(head.started_at))
    if head.finished_at is not None:
        table.add_row("wall time", _ms(head.finished_at - head.started_at))
    counts: dict[str, int] = {}
    for s in view.steps.values():
        counts[s.record.status] = counts.get(s.record.status, 0) + 1
    steps = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    table.add_row("steps", Text(inert(steps) or "0"))
    n_effects = sum(len(s.effects) for s in view.steps.values())
    if n_effects:
        usage = inert(", ".join(f"{v} {k}" for k, v in view.usage().items()))
        table.add_row("effects", Text(f"{n_effects} recorded" + (f" ({usage})" if usage else "")))
        table.add_row("cost", f"${view.cost_usd:.6f}")
    if view.record is not None:
        if view.record.error:
            table.add_row("error", Text(inert(view.record.error.message), style="red"))
        for name, key in sorted(view.record.outputs.items()):
            table.add_row(Text(inert(f"output {name}")), Text(short(view.value(key), 200)))
    return table


def runs_table(heads: Iterable[RunHead], gone: Collection[str] = ()) -> Table:
    table = Table(title="runs")
    for col in ("run id", "pipeline", "status", "started", "root hash"):
        table.add_column(col)
    for h in heads:
        table.add_row(
            Text(inert(h.run_id)),
            Text(inert(h.pipeline)),
            status_text(h, gone=h.run_id in gone),
            wall(h.started_at),
            Text(inert((h.root_hash or "-")[:23])),
        )
    return table
