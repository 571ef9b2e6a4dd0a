"""The HTML report of one recorded run (``orch report RUN``): one self-contained page.

It shows what the record holds and what verification finds: the run's identity and root
hash, whether every hash checks (:func:`traces._verify.verify_run`), inputs and outputs, the
pipeline DAG coloured by step status, every step with its attempts, timings and cost, every
effect, and every routing decision with its candidates, scores, reason and evidence.

Timings come from the run's event log (wall-clock metadata recorded while it ran), never from
the clock of now, so rendering a run twice gives the same bytes. Reads through
:mod:`traces._runview`; it never writes to the store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from orch.render._html import (
    DagNode,
    dag_svg,
    esc,
    fmt_seconds,
    fmt_usd,
    json_text,
    kv_table,
    page,
    table,
    value_html,
)
from traces import (
    ArtifactStore,
    Decision,
    RunView,
    StepView,
    TraceError,
    VerifyReport,
    load_run_view,
    verify_run,
)

__all__ = ["render_run_report"]


def _wall(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status(status: str) -> str:
    return f'<span class="status-{esc(status)}">{esc(status)}</span>'


def _num(text: str) -> str:
    return f'<td class="num">{text}</td>'


def _tokens(usage: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.removesuffix('_tokens')}" for k, v in sorted(usage.items())) or "-"


class _Run:
    """The view plus what the page derives from its event log."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        events = view.events
        start = next((e for e in events if e.get("type") == "run_start"), None)
        end = next((e for e in events if e.get("type") == "run_end"), None)
        self.start_event: dict[str, Any] = start or {}
        self.t0 = float(start["t"]) if start else view.head.started_at
        ends = [s.ended for s in view.steps.values() if s.ended is not None]
        t_end = float(end["t"]) if end else max(ends, default=self.t0)
        self.span = max(t_end - self.t0, 1e-9)
        self.reused = {
            str(e["step"])
            for e in events
            if e.get("type") == "step_end" and e.get("data", {}).get("reused")
        }
        self.latency: dict[tuple[str, int], float] = {
            (str(e["step"]), int(e["data"].get("index", 0))): float(e["data"]["latency_ms"])
            for e in events
            if e.get("type") == "effect" and "latency_ms" in e.get("data", {})
        }
        self.served: dict[tuple[str, int], str] = {
            (str(e["step"]), int(e["data"].get("index", 0))): str(e["data"]["served_from"])
            for e in events
            if e.get("type") == "effect" and "served_from" in e.get("data", {})
        }
        self.nodes = {n["id"]: n for n in view.spec.get("nodes", [])}

    def ordered(self) -> list[tuple[int, StepView]]:
        """(depth, step): top-level steps in pipeline order, each followed by its children."""
        out: list[tuple[int, StepView]] = []

        def walk(step: StepView, depth: int) -> None:
            out.append((depth, step))
            for child in self.view.children(step):
                walk(child, depth + 1)

        for step in self.view.top_level():
            walk(step, 0)
        seen = {s.record.step_id for _, s in out}
        # Steps no parent lists (a torn record of a crashed run) still appear, at the end.
        out.extend((0, s) for sid, s in self.view.steps.items() if sid not in seen)
        return out

    def total_cost(self, step: StepView) -> float:
        return step.cost_usd + sum(self.total_cost(c) for c in self.view.children(step))

    def attempts(self, step: StepView) -> str:
        """How many times the step's agent ran: from the event log's ``step_end``; for logs
        from before the engine wrote it, what the node's retry policy allows."""
        if step.record.status == "skipped":
            return "0"  # a skipped step is recorded when its condition fails; it never runs
        if step.record.step_id in self.reused:
            return '<span title="finished by an earlier run and reused by --resume">reused</span>'
        if step.attempts is not None:
            return str(step.attempts)
        node = self.nodes.get(step.record.step_id)
        if node is None:  # a child call: its retry policy lives in the parent's code
            return '<span title="a child call\'s retry policy is not recorded">-</span>'
        most = int(node["retry"]["max_attempts"]) if node.get("retry") else 1
        if most <= 1:
            return "1"
        return f'<span title="retry policy: up to {most} attempts">≤ {most}</span>'


def _summary(run: _Run, report: VerifyReport) -> str:
    view, head = run.view, run.view.head
    counts: dict[str, int] = {}
    for s in view.steps.values():
        counts[s.record.status] = counts.get(s.record.status, 0) + 1
    if report.ok:
        state = "complete" if report.complete else "incomplete: the run did not finish"
        checked = ", ".join(f"{n} {k}" for k, n in sorted(report.checked.items()))
        verified = f'<span class="badge good">✔ verified</span> {esc(state)}; {esc(checked)}'
    else:
        verified = (
            f'<span class="badge bad">✘ verification failed</span> '
            f"{len(report.problems)} problem(s), listed below"
        )
    origin = run.start_event.get("data", {}).get("origin") or {}
    rows = [
        ("run", f'<span class="hash">{esc(head.run_id)}</span>'),
        ("pipeline", esc(head.pipeline)),
        ("status", _status(head.status)),
        ("verification", verified),
        ("root hash", f'<span class="hash">{esc(head.root_hash or "(run did not finish)")}</span>'),
        ("spec hash", f'<span class="hash">{esc(head.spec_hash)}</span>'),
        ("seed", esc(head.seed)),
        ("started", esc(_wall(head.started_at))),
        (
            "wall time",
            esc(fmt_seconds(head.finished_at - head.started_at) if head.finished_at else "-"),
        ),
        ("steps", esc(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "0")),
        ("effects", esc(f"{sum(len(s.effects) for s in view.steps.values())} recorded")),
        ("tokens", esc(_tokens(view.usage()))),
        ("cost", esc(fmt_usd(view.cost_usd))),
        ("orch version", esc(head.orch_version or "-")),
    ]
    rows.extend((f"origin {k}", f"<code>{esc(v)}</code>") for k, v in sorted(origin.items()))
    if view.record is not None and view.record.error is not None:
        err = view.record.error
        rows.append(
            ("error", f'<span class="status-failed">{esc(err.type)}: {esc(err.message)}</span>')
        )
    html = kv_table(rows, id="run-summary")
    if report.problems or report.warnings:
        items = [
            f"<li><b>{esc(p.subject)}</b>: {esc(p.detail)} <i>({esc(p.kind)})</i></li>"
            for p in report.problems
        ] + [f"<li>warning: {esc(w)}</li>" for w in report.warnings]
        html += f'<ul id="verify-problems">{"".join(items)}</ul>'
    return html


def _value(view: RunView, key: str) -> str:
    try:
        return value_html(view.value(key))
    except TraceError as exc:  # altered or missing: verification above names it too
        return f'<span class="status-failed">cannot read it: {esc(exc)}</span>'


def _io(run: _Run) -> str:
    view = run.view
    if view.record is not None:
        inputs = dict(view.record.inputs)
    else:
        inputs = dict(run.start_event.get("data", {}).get("inputs") or {})
    outputs = dict(view.record.outputs) if view.record is not None else {}
    rows = []
    for kind, refs in (("input", inputs), ("output", outputs)):
        for name, key in sorted(refs.items()):
            rows.append(
                [
                    esc(kind),
                    f"<code>{esc(name)}</code>",
                    f'<td class="hash">{esc(key)}</td>',
                    _value(view, key),
                ]
            )
    if not outputs:
        why = "the run did not finish" if view.record is None else "no output was produced"
        rows.append([esc("output"), "-", "-", esc(f"none: {why}")])
    return table(["", "name", "artifact", "value"], rows, id="run-io")


def _steps(run: _Run) -> str:
    rows, attrs = [], []
    for depth, step in run.ordered():
        rec = step.record
        pad = f' style="padding-left:{8 + 18 * depth}px"' if depth else ""
        offset = None if step.started is None else step.started - run.t0
        ran = rec.status != "skipped"
        bar = ""
        if ran and offset is not None and step.duration is not None:
            left = 100 * offset / run.span
            width = max(100 * step.duration / run.span, 0.5)
            bar = (
                f'<div class="timeline"><span style="left:{left:.2f}%;'
                f'width:{min(width, 100 - left):.2f}%"></span></div>'
            )
        notes = [
            f"attempt {f.attempt} failed ({'retried' if f.retried else 'not retried'}): "
            f"{f.error.type}: {f.error.message}"
            for f in step.failed_attempts
            if rec.error is None or f.retried  # the last failure is the step's own error
        ]
        if rec.reason:
            notes.append(rec.reason)
        if rec.error is not None:
            notes.append(f"{rec.error.type}: {rec.error.message}")
        usage: dict[str, int] = {}
        for e in step.effects:
            for k, v in e.usage.items():
                usage[k] = usage.get(k, 0) + v
        rows.append(
            [
                f'<td class="mono"{pad}>{esc(rec.step_id)}</td>',
                esc(f"{rec.agent.name}@{rec.agent.version}"),
                _status(rec.status),
                _num(run.attempts(step)),
                _num(esc(fmt_seconds(offset))),
                _num(esc(fmt_seconds(step.duration if ran else None))),
                bar,
                _num(esc(len(step.effects))),
                esc(_tokens(usage)),
                _num(esc(fmt_usd(step.cost_usd) if step.effects else "-")),
                _num(esc(len(step.decisions))),
                "<br>".join(esc(n) for n in notes),
            ]
        )
        attrs.append(f'class="step" data-step="{esc(rec.step_id)}" data-depth="{depth}"')
    columns = [
        "step",
        "agent",
        "status",
        "attempts",
        "start",
        "duration",
        "timeline",
        "effects",
        "tokens",
        "cost",
        "decisions",
        "reason / error",
    ]
    return table(columns, rows, id="steps", row_attrs=attrs)


def _effects(run: _Run) -> str:
    rows = []
    for _, step in run.ordered():
        for e in step.effects:
            at = (e.step_id, e.index)
            latency = run.latency.get(at)
            served = run.served.get(at)
            rows.append(
                [
                    f'<td class="mono">{esc(e.step_id)}</td>',
                    _num(esc(e.index)),
                    esc(e.kind),
                    f"<code>{esc(e.target)}</code>",
                    _status(e.status),
                    esc(_tokens(e.usage)),
                    _num(esc(fmt_usd(e.cost_usd))),
                    _num(esc("-" if latency is None else f"{latency:.1f} ms")),
                    esc(f"served from run {served}" if served else ""),
                    esc(e.error.message if e.error is not None else ""),
                ]
            )
    if not rows:
        return '<p id="effects">No effects: this run called no model and no tool.</p>'
    columns = ["step", "#", "kind", "target", "status", "tokens", "cost", "latency", "", "error"]
    return table(columns, rows, id="effects")


def _decision_row(step_id: str, d: Decision) -> list[str]:
    chosen = set(d.chosen)
    items = []
    for c in d.candidates:
        score = f" — {json_text(d.scores[c])}" if c in d.scores else ""
        mark = ' class="chosen"' if c in chosen else ""
        items.append(f"<li{mark}>{esc(c)}{esc(score)}{' ✔' if c in chosen else ''}</li>")
    extra = [(k, v) for k, v in sorted(d.scores.items()) if k not in d.candidates]
    evidence = []
    if extra:
        evidence.append(
            "<dt>scores</dt>" + "".join(f"<dd>{esc(k)}: {value_html(v)}</dd>" for k, v in extra)
        )
    for title, values in (("parameters", d.parameters), ("evidence", d.evidence)):
        if values:
            evidence.append(
                f"<dt>{title}</dt>"
                + "".join(f"<dd>{esc(k)}: {value_html(v)}</dd>" for k, v in sorted(values.items()))
            )
    if d.state_version:
        evidence.append(f'<dt>state read</dt><dd class="hash">{esc(d.state_version)}</dd>')
    return [
        f'<td class="mono">{esc(step_id)}</td>',
        esc(f"{d.router}@{d.router_version}"),
        esc(", ".join(d.chosen) or "(none)"),
        f'<ul class="candidates">{"".join(items)}</ul>',
        esc(d.reason),
        f"<dl>{''.join(evidence)}</dl>" if evidence else "-",
    ]


def _decisions(run: _Run) -> str:
    rows, attrs = [], []
    for _, step in run.ordered():
        for i, d in enumerate(step.decisions):
            rows.append(_decision_row(step.record.step_id, d))
            attrs.append(
                f'class="decision" data-step="{esc(step.record.step_id)}" data-index="{i}"'
            )
    if not rows:
        return '<p id="decisions">No routing decisions were recorded in this run.</p>'
    columns = ["step", "router", "chosen", "candidates and scores", "reason", "evidence"]
    return table(columns, rows, id="decisions", row_attrs=attrs)


def _dag(run: _Run) -> str:
    nodes = {}
    for step in run.view.top_level():
        cost = run.total_cost(step)
        note = " · ".join(
            x
            for x in (
                fmt_seconds(step.duration)
                if step.duration is not None and step.record.status != "skipped"
                else "",
                fmt_usd(cost) if cost else "",
            )
            if x
        )
        nodes[step.record.step_id] = DagNode(step.record.status, note)
    return dag_svg(run.view.spec, nodes)


def render_run_report(store: ArtifactStore, run_id: str) -> str:
    """The report page of run ``run_id`` (an id or a unique prefix) in ``store``."""
    rid = store.resolve_run(run_id)
    run = _Run(load_run_view(store, rid))
    report = verify_run(store, rid)
    head = run.view.head
    body = [
        f"<h1>Run {esc(head.run_id)}</h1>",
        f'<p class="sub">pipeline <b>{esc(head.pipeline)}</b> · {_status(head.status)} · '
        f"recorded {esc(_wall(head.started_at))} · cost {esc(fmt_usd(run.view.cost_usd))}</p>",
        '<section id="summary"><h2>Summary</h2>',
        _summary(run, report),
        "</section>",
        '<section id="io"><h2>Inputs and outputs</h2>',
        _io(run),
        "</section>",
        '<section id="dag"><h2>Pipeline</h2>',
        '<p class="sub">Each box is a node, coloured by its step\'s status, with its duration '
        "and cost (child calls included); dashed edges are conditions.</p>",
        _dag(run),
        "</section>",
        '<section id="steps-section"><h2>Steps</h2>',
        '<p class="sub">Start is the offset from the run\'s start, from the event log; '
        "child calls are indented under their parent.</p>",
        _steps(run),
        "</section>",
        '<section id="effects-section"><h2>Effects</h2>',
        _effects(run),
        "</section>",
        '<section id="decisions-section"><h2>Decisions</h2>',
        _decisions(run),
        "</section>",
        f'<p class="sub">Check it again: <code>orch verify {esc(head.run_id)}</code> · '
        f"replay it: <code>orch replay {esc(head.run_id)}</code></p>",
    ]
    return page(f"orch run {head.run_id} ({head.pipeline})", "\n".join(body), kind="run")
