"""Verification: recompute every hash of a stored run and name whatever does not match.

``verify_run`` checks one run end to end:

* the run head's seal (an edited head field shows);
* the event log: each line's hash against its content, the ``seq`` numbering, the ``prev``
  chain, canonical form, and, for a finished run, the count and last hash the head recorded
  (a dropped or appended line shows);
* for a finished run, the run record under the root hash: its Merkle root over the step
  records, its agreement with the head and the event log, then every step record, decision,
  input, output and spec artifact it references, each re-hashed;
* for an unfinished run (killed or still running), every step that the log says finished,
  with the same checks. A torn last line is a warning, not tampering: it is what a crash
  leaves.

``verify_store`` re-hashes every artifact in the store and verifies every run.

Nothing here raises on bad data: every finding becomes a :class:`Problem` naming the exact
record or artifact (kind, subject, detail). The functions only raise for a run that does not
exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError

from .canonical import canonical_bytes, is_key
from .errors import ArtifactNotFoundError, IntegrityError, InvalidKeyError, RunNotFoundError
from .eventlog import event_body_hash
from .records import Decision, EffectRecord, RunHead, RunRecord, StepRecord, steps_root
from .store import ArtifactStore

__all__ = ["Problem", "VerifyReport", "verify_run", "verify_store"]


class Problem(BaseModel):
    """One finding: what kind of thing is wrong, which thing, and how."""

    kind: str
    """``artifact``, ``step``, ``record``, ``event``, ``head`` or ``run``."""
    subject: str
    """The exact thing at fault, e.g. ``step record 'sum' (sha256:...)`` or ``event #3``."""
    detail: str


class VerifyReport(BaseModel):
    """The outcome of verifying a run (``run_id`` set) or a whole store (``run_id`` None)."""

    run_id: str | None
    status: str = ""
    """The run's status as its head records it (``running`` for a run that never finished)."""
    complete: bool = False
    """True when the run finished (or, for a store, every run did)."""
    root_hash: str | None = None
    checked: dict[str, int] = Field(default_factory=dict)
    """How many of each kind of thing were checked and found intact."""
    problems: list[Problem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _short(key: str) -> str:
    return key[:19] + "…" if len(key) > 20 else key


class _Checker:
    """Accumulates problems while walking one run."""

    def __init__(self, store: ArtifactStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.checked: dict[str, int] = {}
        self._seen: dict[str, bool] = {}

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.problems.append(Problem(kind=kind, subject=subject, detail=detail))

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    # -- artifacts ---------------------------------------------------------------------------

    def load(self, key: object, subject: str, kind: str = "artifact") -> bytes | None:
        """Fetch and re-hash an artifact; record a problem naming ``subject`` on failure."""
        if not is_key(key):
            self.problem(kind, subject, f"reference {key!r} is not a valid artifact key")
            return None
        assert isinstance(key, str)
        try:
            data = self.store.get(key)
        except ArtifactNotFoundError:
            self.problem(kind, f"{subject} ({key})", "artifact is missing from the store")
            return None
        except IntegrityError as exc:
            self.problem(
                kind,
                f"{subject} ({key})",
                f"stored bytes hash to {exc.actual}, not to their key: the artifact was altered",
            )
            return None
        if key not in self._seen:
            self._seen[key] = True
            self.count("artifacts")
        return data

    def load_json(self, key: object, subject: str, kind: str = "artifact") -> Any:
        data = self.load(key, subject, kind)
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.problem(kind, f"{subject} ({key})", f"not valid JSON: {exc}")
            return None

    def load_model(self, model: type[Any], key: object, subject: str, kind: str) -> Any:
        value = self.load_json(key, subject, kind)
        if value is None:
            return None
        try:
            parsed = model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            self.problem(
                kind, f"{subject} ({key})", f"not a valid {model.__name__}: {where}: {first['msg']}"
            )
            return None
        if canonical_bytes(parsed) != self.store.read_raw(str(key)):
            self.problem(kind, f"{subject} ({key})", "not in canonical form")
            return None
        return parsed

    # -- the head ----------------------------------------------------------------------------

    def head(self) -> RunHead | None:
        raw = self.store.read_run_head(self.run_id)
        if raw is None:
            raise RunNotFoundError(f"no run {self.run_id!r} in store {self.store.location}")
        try:
            head = RunHead.model_validate_json(raw)
        except ValidationError as exc:
            self.problem("head", f"run head of {self.run_id}", f"unreadable: {_first(exc)}")
            return None
        if not head.seal_ok():
            self.problem(
                "head",
                f"run head of {self.run_id}",
                f"its seal {head.hash} does not match its fields: the head was edited",
            )
            return None
        if head.run_id != self.run_id:
            self.problem("head", f"run head of {self.run_id}", f"names run {head.run_id!r}")
        self.count("heads")
        return head

    # -- the event log -----------------------------------------------------------------------

    def events(self, finished: bool) -> list[dict[str, Any]]:
        lines = self.store.read_events(self.run_id)
        events: list[dict[str, Any]] = []
        prev: str | None = None
        for i, line in enumerate(lines):
            subject = f"event #{i}"
            last = i == len(lines) - 1
            event = _parse_event(line)
            if isinstance(event, str):
                if last and not finished:
                    self.warnings.append(
                        f"{subject} is torn ({len(line)} bytes, {event}): the run was "
                        "killed while writing it; the events before it are intact"
                    )
                else:
                    self.problem("event", subject, f"not a valid JSON event: {event}")
                break
            stored_hash = event.get("hash")
            actual = event_body_hash(event)
            if stored_hash != actual:
                self.problem(
                    "event",
                    subject,
                    f"its content hashes to {actual}, not to its recorded hash {stored_hash}: "
                    f"the event ({event.get('type')!r}) was edited",
                )
                break
            if line != _event_line(event):
                self.problem("event", subject, "not in canonical form (the line was edited)")
                break
            if event.get("seq") != i or event.get("prev") != prev:
                self.problem(
                    "event",
                    subject,
                    f"out of chain (seq {event.get('seq')!r}, prev {event.get('prev')!r}; "
                    f"expected seq {i}, prev {prev}): events were removed, inserted or reordered",
                )
                break
            if event.get("run") != self.run_id:
                self.problem("event", subject, f"belongs to run {event.get('run')!r}")
                break
            events.append(event)
            prev = actual
        self.count("events", len(events))
        return events

    # -- steps -------------------------------------------------------------------------------

    def step(self, step_id: str, key: object) -> StepRecord | None:
        subject = f"step record {step_id!r}"
        rec: StepRecord | None = self.load_model(StepRecord, key, subject, "step")
        if rec is None:
            return None
        if rec.step_id != step_id:
            self.problem("step", f"{subject} ({key})", f"holds step id {rec.step_id!r}")
            return None
        if rec.input is not None:
            self.load(rec.input, f"input of step {step_id!r}")
        if rec.output is not None:
            self.load(rec.output, f"output of step {step_id!r}")
        for i, k in enumerate(rec.effects):
            self.effect(step_id, i, k)
        for i, k in enumerate(rec.decisions):
            decision = self.load_model(
                Decision, k, f"decision #{i} of step {step_id!r}", "artifact"
            )
            if decision:
                self.count("decisions")
                if decision.state_version is not None:
                    # The router state a decision read must be here, byte for byte, or the
                    # decision cannot be re-derived.
                    self.load(
                        decision.state_version,
                        f"state version read by decision #{i} of step {step_id!r}",
                    )
        self.count("steps")
        return rec

    def effect(self, step_id: str, index: int, key: object) -> EffectRecord | None:
        subject = f"effect #{index} of step {step_id!r}"
        eff: EffectRecord | None = self.load_model(EffectRecord, key, subject, "effect")
        if eff is None:
            return None
        if (eff.step_id, eff.index) != (step_id, index):
            self.problem(
                "effect",
                f"{subject} ({key})",
                f"records itself as effect #{eff.index} of step {eff.step_id!r}",
            )
            return None
        self.load(eff.request, f"request of {subject}")
        if eff.response is not None:
            self.load(eff.response, f"response of {subject}")
        self.count("effects")
        return eff


def _parse_event(line: bytes) -> dict[str, Any] | str:
    """The event on ``line``, or a description of why it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(event, dict):
        return "not a JSON object"
    return event


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]) + ": " + err["msg"]


def _event_line(event: dict[str, Any]) -> bytes:
    """The exact line the event log writer produces for ``event``."""
    body = {k: v for k, v in event.items() if k != "hash"}
    encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return encoded[:-1] + b',"hash":"' + str(event.get("hash")).encode() + b'"}'


def verify_run(store: ArtifactStore, run_id: str) -> VerifyReport:
    """Verify one run (exact id) and report every problem found."""
    c = _Checker(store, run_id)
    head = c.head()
    finished = head is not None and head.status != "running"
    events = c.events(finished)
    report = VerifyReport(run_id=run_id, status=head.status if head else "unknown")

    start = events[0] if events else None
    if start is None or start.get("type") != "run_start":
        if c.store.read_events(run_id):
            c.problem("event", "event #0", "the log does not begin with run_start")
        else:
            c.problem("event", f"event log of {run_id}", "the run has no events")
    elif head is not None:
        data = start.get("data", {})
        if data.get("spec") != head.spec_hash or data.get("seed") != head.seed:
            c.problem("event", "event #0", "run_start disagrees with the run head (spec or seed)")

    step_ends = {
        e["step"]: e.get("data", {}).get("record") for e in events if e.get("type") == "step_end"
    }

    if head is None:
        pass
    elif finished:
        _verify_finished(c, head, events, step_ends)
        report.root_hash = head.root_hash
        report.complete = True
    else:
        # Unfinished: what the log says finished must be intact; nothing else is claimed.
        if start is not None:
            for name, key in sorted(start.get("data", {}).get("inputs", {}).items()):
                c.load(key, f"pipeline input {name!r}")
            c.load(head.spec_hash, "pipeline spec")
        for step_id, key in sorted(step_ends.items()):
            c.step(step_id, key)
        c.warnings.append(
            f"run {run_id} did not finish (status 'running'): {len(step_ends)} finished "
            "step(s) verified; it has no root hash"
        )
    report.checked = dict(sorted(c.checked.items()))
    report.checked.setdefault("steps", 0)
    report.problems = c.problems
    report.warnings = c.warnings
    return report


def _verify_finished(
    c: _Checker, head: RunHead, events: list[dict[str, Any]], step_ends: dict[str, Any]
) -> None:
    lines = c.store.read_events(c.run_id)
    if head.event_count != len(lines) or (events and head.event_head != events[-1]["hash"]):
        c.problem(
            "event",
            f"event log of {c.run_id}",
            f"the head recorded {head.event_count} events ending in {head.event_head}, the log "
            f"has {len(lines)}: events were removed or appended after the run finished",
        )
    end = events[-1] if events else None
    if end is None or end.get("type") != "run_end":
        c.problem("event", f"event log of {c.run_id}", "the log does not end with run_end")
    elif end.get("data", {}).get("root_hash") != head.root_hash:
        c.problem(
            "event",
            f"event #{end['seq']}",
            f"run_end names root hash {end.get('data', {}).get('root_hash')}, the head "
            f"{head.root_hash}",
        )
    if head.root_hash is None:
        c.problem("head", f"run head of {c.run_id}", "a finished run without a root hash")
        return
    record: RunRecord | None = c.load_model(RunRecord, head.root_hash, "run record", "record")
    if record is None:
        return
    for field in ("pipeline", "spec_hash", "seed", "status"):
        if getattr(record, field) != getattr(head, field):
            c.problem(
                "record",
                f"run record ({head.root_hash})",
                f"{field} is {getattr(record, field)!r} but the head says {getattr(head, field)!r}",
            )
    ids = [s for s, _ in record.steps]
    if ids != sorted(set(ids)):
        c.problem("record", f"run record ({head.root_hash})", "steps not sorted and unique")
    root = steps_root(record.steps)
    if root != record.steps_root:
        c.problem(
            "record",
            f"run record ({head.root_hash})",
            f"Merkle root over its steps is {root}, it records {record.steps_root}",
        )
    c.load(record.spec_hash, "pipeline spec")
    for name, key in sorted(record.inputs.items()):
        c.load(key, f"pipeline input {name!r}")
    steps = dict(record.steps)
    outputs_by_key: dict[str, list[str]] = {}
    for step_id, key in record.steps:
        rec = c.step(step_id, key)
        if rec is not None:
            if rec.output is not None:
                outputs_by_key.setdefault(rec.output, []).append(step_id)
            for child in rec.children:
                if child not in steps:
                    c.problem(
                        "step",
                        f"step record {step_id!r} ({key})",
                        f"child {child!r} is missing from the run record",
                    )
        logged = step_ends.get(step_id)
        if logged != key:
            c.problem(
                "event",
                f"step_end of {step_id!r}",
                f"the log records {logged}, the run record {key}",
            )
    for step_id in sorted(set(step_ends) - set(steps)):
        c.problem("record", f"run record ({head.root_hash})", f"step {step_id!r} is missing")
    for name, key in sorted(record.outputs.items()):
        producers = outputs_by_key.get(key)
        by = f" (value of step {', '.join(repr(p) for p in producers)})" if producers else ""
        c.load(key, f"pipeline output {name!r}{by}")


def verify_store(store: ArtifactStore, run_ids: Iterable[str] | None = None) -> VerifyReport:
    """Re-hash every artifact in ``store`` and verify every run (or those given)."""
    report = VerifyReport(run_id=None, status="store", complete=True)
    checked = {"artifacts": 0, "runs": 0}
    for key in store.keys():
        try:
            store.get(key)
        except IntegrityError as exc:
            report.problems.append(
                Problem(
                    kind="artifact",
                    subject=f"artifact {key}",
                    detail=f"stored bytes hash to {exc.actual}: the artifact was altered",
                )
            )
        except (ArtifactNotFoundError, InvalidKeyError) as exc:  # racing delete, odd name
            report.problems.append(
                Problem(kind="artifact", subject=f"artifact {key}", detail=str(exc))
            )
        else:
            checked["artifacts"] += 1
    for run_id in store.run_ids() if run_ids is None else run_ids:
        sub = verify_run(store, run_id)
        checked["runs"] += 1
        for what in ("steps", "events", "decisions", "effects"):
            checked[what] = checked.get(what, 0) + sub.checked.get(what, 0)
        report.complete = report.complete and sub.complete
        report.problems.extend(
            p.model_copy(update={"subject": f"run {run_id}: {p.subject}"}) for p in sub.problems
        )
        report.warnings.extend(sub.warnings)
    report.checked = checked
    return report
