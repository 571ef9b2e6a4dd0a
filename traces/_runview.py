"""Read a stored run into one structure for display: head, record, steps, timings, decisions.

Used by ``orch show``, ``orch runs`` and reports. It reads and decodes; it never judges
integrity (that is :mod:`traces._verify`), but it never hides a problem either: an artifact
that fails its hash check surfaces as the store's IntegrityError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ._records import Decision, EffectRecord, ErrorInfo, RunHead, RunRecord, StepRecord
from ._store import ArtifactStore
from .errors import RunNotFoundError

__all__ = ["FailedAttempt", "RunView", "StepView", "load_run_head", "load_run_view"]


@dataclass(frozen=True)
class FailedAttempt:
    """One failed attempt of a step, as its ``attempt`` event recorded it."""

    attempt: int
    error: ErrorInfo
    retried: bool
    """Whether the step was tried again after it."""


@dataclass
class StepView:
    """One step with what a reader wants next to it."""

    record: StepRecord
    key: str
    decisions: list[Decision] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    effects: list[EffectRecord] = field(default_factory=list)
    attempts: int | None = None
    """How many times the agent ran, retries included, from the ``step_end`` event (None
    for logs written before the engine recorded it)."""
    failed_attempts: list[FailedAttempt] = field(default_factory=list)
    """Each attempt that failed, with its error, from the ``attempt`` events (a retried
    step's record is the record of its last attempt; the log keeps the others)."""

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd or 0.0 for e in self.effects)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass
class RunView:
    """A run as stored."""

    head: RunHead
    record: RunRecord | None
    spec: dict[str, Any]
    steps: dict[str, StepView]
    """Step id -> view, sorted by step id."""
    events: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def cost_usd(self) -> float:
        """Total cost of the run's recorded effects (model and tool calls), in USD."""
        return sum(s.cost_usd for s in self.steps.values())

    def usage(self) -> dict[str, int]:
        """Token counts summed over every effect of the run."""
        total: dict[str, int] = {}
        for s in self.steps.values():
            for e in s.effects:
                for k, v in e.usage.items():
                    total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    def effect_latencies(self) -> dict[str, list[float]]:
        """Latency (ms) of each effect by target (model or tool), in step-id then effect-index
        order: the wall-clock figures routers learn from, read from the event log."""
        found = sorted(
            (
                str(e["step"]),
                int(e["data"].get("index", 0)),
                str(e["data"].get("target", "")),
                float(e["data"]["latency_ms"]),
            )
            for e in self.events
            if e.get("type") == "effect" and "latency_ms" in e.get("data", {})
        )
        out: dict[str, list[float]] = {}
        for _step, _index, target, ms in found:
            out.setdefault(target, []).append(ms)
        return dict(sorted(out.items()))

    def top_level(self) -> list[StepView]:
        """Top-level steps in the pipeline's definition order."""
        order = [n["id"] for n in self.spec.get("nodes", [])]
        tops = [s for s in self.steps.values() if s.record.parent is None]
        rank = {n: i for i, n in enumerate(order)}
        return sorted(tops, key=lambda s: (rank.get(s.record.step_id, len(rank)), s.record.step_id))

    def children(self, step: StepView) -> list[StepView]:
        return [self.steps[c] for c in step.record.children if c in self.steps]

    def statuses(self) -> dict[str, str]:
        return {s.record.step_id: s.record.status for s in self.top_level()}

    def value(self, key: str) -> Any:
        """Decode an artifact referenced by the run (for outputs and inputs)."""
        return self._store.get_value(key)

    _store: ArtifactStore = field(default=None, repr=False)  # type: ignore[assignment]


def load_run_head(store: ArtifactStore, run_id: str) -> RunHead:
    raw = store.read_run_head(run_id)
    if raw is None:
        raise RunNotFoundError(f"no run {run_id!r} in store {store.location}")
    return RunHead.model_validate_json(raw)


def _parse_events(lines: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            break  # a torn tail left by a crash; verification reports it
    return events


def load_run_view(store: ArtifactStore, run_id: str) -> RunView:
    """Load run ``run_id`` (exact id; resolve prefixes with ``store.resolve_run``)."""
    head = load_run_head(store, run_id)
    events = _parse_events(store.read_events(run_id))
    record = RunRecord.model_validate(store.get_value(head.root_hash)) if head.root_hash else None
    spec: dict[str, Any] = store.get_value(head.spec_hash) if store.has(head.spec_hash) else {}
    if record is not None:
        step_keys = dict(record.steps)
    else:  # unfinished: what the event log says was finished
        step_keys = {
            e["step"]: e["data"]["record"]
            for e in events
            if e.get("type") == "step_end" and "step" in e
        }
    starts = {e["step"]: e["t"] for e in events if e.get("type") == "step_start"}
    ends = {e["step"]: e["t"] for e in events if e.get("type") == "step_end"}
    tries = {
        e["step"]: e["data"]["attempts"]
        for e in events
        if e.get("type") == "step_end" and isinstance(e.get("data", {}).get("attempts"), int)
    }
    failures: dict[str, list[FailedAttempt]] = {}
    for e in events:
        if e.get("type") != "attempt":
            continue
        data = e.get("data", {})
        error = data.get("error", {})
        failures.setdefault(str(e.get("step")), []).append(
            FailedAttempt(
                attempt=int(data.get("attempt", 0)),
                error=ErrorInfo(type=str(error.get("type")), message=str(error.get("message"))),
                retried=bool(data.get("retried")),
            )
        )
    steps: dict[str, StepView] = {}
    for step_id in sorted(step_keys):
        rec = StepRecord.model_validate(store.get_value(step_keys[step_id]))
        decisions = [Decision.model_validate(store.get_value(k)) for k in rec.decisions]
        effects = [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]
        steps[step_id] = StepView(
            rec,
            step_keys[step_id],
            decisions,
            starts.get(step_id),
            ends.get(step_id),
            effects,
            tries.get(step_id),
            failures.get(step_id, []),
        )
    view = RunView(head=head, record=record, spec=spec, steps=steps, events=events)
    view._store = store
    return view
