"""What a run's page shows, derived from its stored view: steps in order with their timeline,
effects, decisions, attempts, resume links and whether the page should keep watching.

It only reads (through :func:`traces.load_run_view`) and never judges integrity: the badge
comes from :mod:`orch.ui._verify_cache`. Recorded strings stay strings here; the templates
escape them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from orch.render import DagNode, dag_svg, fmt_seconds, fmt_usd
from orch.ui._values import tokens_text
from traces import Decision, RunView, StepView, TraceError

__all__ = [
    "AttemptRow",
    "DecisionRow",
    "EffectRow",
    "LIVE_STATUSES",
    "RunModel",
    "StepRow",
    "run_model",
]

LIVE_STATUSES = frozenset({"running", "waiting"})
"""Statuses of a run that may still change: its page keeps asking."""

MAX_EVENTS = 2000
"""Events the page lists; a longer log is cut (``orch show --json`` has it all)."""


@dataclass(frozen=True)
class StepRow:
    step_id: str
    depth: int
    agent: str
    status: str
    attempts: str
    attempts_title: str
    offset: str
    duration: str
    bar: tuple[float, float] | None
    """(left, width) of the timeline bar in percent of the run's span."""
    effects: int
    tokens: str
    cost: str
    decisions: int
    notes: list[str]


@dataclass(frozen=True)
class EffectRow:
    step_id: str
    index: int
    kind: str
    target: str
    status: str
    tokens: str
    cost: str
    latency: str
    served_from: str | None
    error: str


@dataclass(frozen=True)
class DecisionRow:
    step_id: str
    index: int
    router: str
    chosen: list[str]
    candidates: list[tuple[str, Any, bool]]
    """(candidate, its score or None, whether chosen) in the router's order."""
    reason: str
    other_scores: list[tuple[str, Any]]
    parameters: list[tuple[str, Any]]
    evidence: list[tuple[str, Any]]
    state_version: str | None


@dataclass(frozen=True)
class AttemptRow:
    step_id: str
    attempt: int
    outcome: str
    """``failed (retried)``, ``failed (not retried)``, or the step's final status."""
    error: str


@dataclass(frozen=True)
class EventRow:
    seq: int
    offset: str
    type: str
    step: str
    data: Any


@dataclass
class RunModel:
    view: RunView
    steps: list[StepRow]
    effects: list[EffectRow]
    decisions: list[DecisionRow]
    attempts: list[AttemptRow]
    events: list[EventRow]
    events_cut: int
    inputs: list[tuple[str, str, Any, str]]
    """(name, artifact key, value, why it cannot be read or "") of each input."""
    outputs: list[tuple[str, str, Any, str]]
    dag: Markup
    counts: dict[str, int]
    tokens: str
    cost: str
    wall_time: str
    live: bool
    version: str
    """Changes whenever the run does (its head or its event log): what live pages compare."""
    error: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)


def version_of(view: RunView) -> str:
    return f"{view.head.hash or '-'}:{len(view.events)}"


def _ordered(view: RunView) -> list[tuple[int, StepView]]:
    out: list[tuple[int, StepView]] = []

    def walk(step: StepView, depth: int) -> None:
        out.append((depth, step))
        for child in view.children(step):
            walk(child, depth + 1)

    for step in view.top_level():
        walk(step, 0)
    seen = {s.record.step_id for _, s in out}
    # Steps no parent lists (a torn record of a crashed run) still appear, at the end.
    out.extend((0, s) for sid, s in view.steps.items() if sid not in seen)
    return out


def _running(view: RunView) -> list[str]:
    """Steps the log says started and have not ended (none once the run has a record)."""
    if view.record is not None:
        return []
    started = [str(e["step"]) for e in view.events if e.get("type") == "step_start"]
    ended = {str(e["step"]) for e in view.events if e.get("type") == "step_end"}
    return sorted({s for s in started if s not in ended and s not in view.steps})


def _attempts(step: StepView, node: dict[str, Any] | None, reused: bool) -> tuple[str, str]:
    if step.record.status == "skipped":
        return "0", "a skipped step never runs"
    if reused:
        return "reused", "finished by an earlier run and reused by --resume"
    if step.attempts is not None:
        return str(step.attempts), ""
    if node is None:
        return "-", "a child call's retry policy is not recorded"
    most = int(node["retry"]["max_attempts"]) if node.get("retry") else 1
    return ("1", "") if most <= 1 else (f"≤ {most}", f"retry policy: up to {most} attempts")


def _decision(step_id: str, index: int, d: Decision) -> DecisionRow:
    chosen = set(d.chosen)
    return DecisionRow(
        step_id=step_id,
        index=index,
        router=f"{d.router}@{d.router_version}",
        chosen=list(d.chosen),
        candidates=[(c, d.scores.get(c), c in chosen) for c in d.candidates],
        reason=d.reason,
        other_scores=[(k, v) for k, v in sorted(d.scores.items()) if k not in d.candidates],
        parameters=sorted(d.parameters.items()),
        evidence=sorted(d.evidence.items()),
        state_version=d.state_version,
    )


def _effect_events(view: RunView) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (str(e["step"]), int(e["data"].get("index", 0))): e["data"]
        for e in view.events
        if e.get("type") == "effect" and isinstance(e.get("data"), dict)
    }


def _artifact(view: RunView, name: str, key: str) -> tuple[str, str, Any, str]:
    try:
        return name, key, view.value(key), ""
    except TraceError as exc:  # altered or missing: verification names it too
        return name, key, None, str(exc)


def run_model(view: RunView) -> RunModel:
    """The page of ``view`` (see the module docstring)."""
    events = view.events
    start = next((e for e in events if e.get("type") == "run_start"), {})
    end = next((e for e in events if e.get("type") == "run_end"), None)
    t0 = float(start["t"]) if start else view.head.started_at
    ends = [s.ended for s in view.steps.values() if s.ended is not None]
    t_end = (
        float(end["t"]) if end else max([*ends, *(float(e["t"]) for e in events[-1:])], default=t0)
    )
    span = max(t_end - t0, 1e-9)
    reused = {
        str(e["step"])
        for e in events
        if e.get("type") == "step_end" and e.get("data", {}).get("reused")
    }
    nodes = {n["id"]: n for n in view.spec.get("nodes", [])}
    effect_data = _effect_events(view)

    steps: list[StepRow] = []
    effects: list[EffectRow] = []
    decisions: list[DecisionRow] = []
    attempts: list[AttemptRow] = []
    for depth, step in _ordered(view):
        rec = step.record
        offset = None if step.started is None else step.started - t0
        ran = rec.status != "skipped"
        bar = None
        if ran and offset is not None and step.duration is not None:
            left = 100 * offset / span
            bar = (round(left, 2), round(min(max(100 * step.duration / span, 0.5), 100 - left), 2))
        usage: dict[str, int] = {}
        for e in step.effects:
            for k, v in e.usage.items():
                usage[k] = usage.get(k, 0) + v
        notes = [n for n in (rec.reason,) if n]
        if rec.error is not None:
            notes.append(f"{rec.error.type}: {rec.error.message}")
        count, title = _attempts(step, nodes.get(rec.step_id), rec.step_id in reused)
        steps.append(
            StepRow(
                step_id=rec.step_id,
                depth=min(depth, 6),
                agent=f"{rec.agent.name}@{rec.agent.version}",
                status=rec.status,
                attempts=count,
                attempts_title=title,
                offset=fmt_seconds(offset),
                duration=fmt_seconds(step.duration if ran else None),
                bar=bar,
                effects=len(step.effects),
                tokens=tokens_text(usage),
                cost=fmt_usd(step.cost_usd) if step.effects else "-",
                decisions=len(step.decisions),
                notes=notes,
            )
        )
        for e in step.effects:
            data = effect_data.get((e.step_id, e.index), {})
            latency = data.get("latency_ms")
            effects.append(
                EffectRow(
                    step_id=e.step_id,
                    index=e.index,
                    kind=e.kind,
                    target=e.target,
                    status=e.status,
                    tokens=tokens_text(e.usage),
                    cost=fmt_usd(e.cost_usd),
                    latency="-" if not isinstance(latency, int | float) else f"{latency:.1f} ms",
                    served_from=str(data["served_from"]) if "served_from" in data else None,
                    error=e.error.message if e.error is not None else "",
                )
            )
        decisions += [_decision(rec.step_id, i, d) for i, d in enumerate(step.decisions)]
        if step.failed_attempts:
            for f in step.failed_attempts:
                attempts.append(
                    AttemptRow(
                        rec.step_id,
                        f.attempt,
                        f"failed ({'retried' if f.retried else 'not retried'})",
                        f"{f.error.type}: {f.error.message}",
                    )
                )
            if rec.status == "ok":
                last = max(f.attempt for f in step.failed_attempts) + 1
                attempts.append(AttemptRow(rec.step_id, last, "ok", ""))
    for step_id in _running(view):
        node = nodes.get(step_id)
        agent = node["agent"] if node else {"name": "?", "version": "?"}
        started = next(
            (
                float(e["t"])
                for e in events
                if e.get("type") == "step_start" and e["step"] == step_id
            ),
            None,
        )
        steps.append(
            StepRow(
                step_id=step_id,
                depth=0,
                agent=f"{agent['name']}@{agent['version']}",
                status="running",
                attempts="-",
                attempts_title="still running",
                offset=fmt_seconds(None if started is None else started - t0),
                duration="-",
                bar=None,
                effects=0,
                tokens="-",
                cost="-",
                decisions=0,
                notes=["running"],
            )
        )

    counts: dict[str, int] = {}
    for row in steps:
        counts[row.status] = counts.get(row.status, 0) + 1
    dag_nodes = {
        s.record.step_id: DagNode(
            s.record.status,
            fmt_seconds(s.duration)
            if s.duration is not None and s.record.status != "skipped"
            else "",
        )
        for s in view.top_level()
    }
    dag_nodes.update({sid: DagNode("running", "running") for sid in _running(view)})
    event_rows = [
        EventRow(
            seq=i,
            offset=fmt_seconds(float(e["t"]) - t0) if isinstance(e.get("t"), int | float) else "-",
            type=str(e.get("type", "?")),
            step=str(e.get("step") or ""),
            data=e.get("data", {}),
        )
        for i, e in enumerate(events[:MAX_EVENTS])
    ]
    if view.record is not None:
        inputs = sorted(view.record.inputs.items())
        outputs = sorted(view.record.outputs.items())
    else:
        inputs = sorted((start.get("data", {}).get("inputs") or {}).items())
        outputs = []
    head = view.head
    return RunModel(
        view=view,
        steps=steps,
        effects=effects,
        decisions=decisions,
        attempts=attempts,
        events=event_rows,
        events_cut=max(len(events) - MAX_EVENTS, 0),
        inputs=[_artifact(view, str(k), str(v)) for k, v in inputs],
        outputs=[_artifact(view, str(k), str(v)) for k, v in outputs],
        # Trusted HTML: dag_svg escapes every recorded text it draws.
        dag=Markup(dag_svg(view.spec, dag_nodes)),
        counts=dict(sorted(counts.items())),
        tokens=tokens_text(view.usage()),
        cost=fmt_usd(view.cost_usd),
        wall_time=fmt_seconds(head.finished_at - head.started_at) if head.finished_at else "-",
        live=head.status in LIVE_STATUSES,
        version=version_of(view),
        error=(
            f"{view.record.error.type}: {view.record.error.message}"
            if view.record is not None and view.record.error is not None
            else None
        ),
        origin=dict(sorted((start.get("data", {}).get("origin") or {}).items())),
    )
