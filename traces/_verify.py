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

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError

from ._canonical import canonical_bytes, is_key
from ._eventlog import walk_chain
from ._ledger_entries import SealEntry
from ._note import Checkpoint, Verifier
from ._records import Decision, EffectRecord, RunHead, RunRecord, StepRecord, steps_root
from ._store import ArtifactStore
from ._verify_ledger import LedgerView, check_log_length, check_run, missing_runs
from .errors import (
    ArtifactNotFoundError,
    IntegrityError,
    InvalidKeyError,
    NoteError,
    RunNotFoundError,
)

__all__ = ["PROGRESS_EVERY", "Problem", "Progress", "VerifyReport", "verify_run", "verify_store"]

Progress = Callable[[str, int, int | None], None]
"""Told how far :func:`verify_store` got: the phase (``artifacts``, ``ledger``, ``runs``), how
many of its items are done, and how many there are (None while unknown)."""
PROGRESS_EVERY = {"artifacts": 256, "runs": 16}
"""How many items of a phase pass between two calls of a progress hook (besides the calls at
the start and the end of each phase): a call per artifact would cost more than the check."""


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
        if raw not in head.stored_forms():
            # A value the parser coerced ("seed": "0") would keep the seal: the bytes must be
            # the ones the engine writes.
            self.problem("head", f"run head of {self.run_id}", "not in canonical form")
            return None
        if head.run_id != self.run_id:
            self.problem("head", f"run head of {self.run_id}", f"names run {head.run_id!r}")
        self.count("heads")
        return head

    # -- the event log -----------------------------------------------------------------------

    def events(self, lines: list[bytes], torn_ok: bool) -> tuple[list[dict[str, Any]], bool]:
        """The log's intact chain from the first event, and whether every line is in it.

        The first line that breaks the chain is the one problem reported for the log (or,
        for the last line of a run that never ended, a warning: what a crash leaves); the
        checks that read the log then stop at it rather than report each consequence."""
        events, broken = walk_chain(lines, self.run_id)
        if broken is not None:
            subject = f"event #{broken.index}"
            last = broken.index == len(lines) - 1
            if broken.unreadable and last and torn_ok:
                self.warnings.append(
                    f"{subject} is torn ({len(lines[-1])} bytes, {broken.detail}): the run was "
                    "killed while writing it; the events before it are intact"
                )
            elif broken.unreadable:
                self.problem("event", subject, f"not a valid JSON event: {broken.detail}")
            else:
                self.problem("event", subject, broken.detail)
        self.count("events", len(events))
        return events, broken is None

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
        if rec.status == "ok":
            for i, k in enumerate(rec.effects):
                self.effect(step_id, i, k)
        else:
            # A step stopped part-way (timed out, cancelled, failed) leaves out the effects
            # it had begun concurrently and cut short: their slots are empty, so its effects
            # come in increasing index order, not always one index after another.
            last = -1
            for i, k in enumerate(rec.effects):
                eff = self.effect(step_id, i, k, after=last)
                if eff is not None:
                    last = eff.index
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

    def effect(
        self, step_id: str, index: int, key: object, *, after: int | None = None
    ) -> EffectRecord | None:
        """Check the effect ``key``, ``index``-th of ``step_id``'s: its own index is
        ``index``, or, given ``after``, any index past ``after`` (a stopped step's)."""
        subject = f"effect #{index} of step {step_id!r}"
        if after is not None:
            subject = f"effect listed {index + 1}{_ordinal(index + 1)} in step {step_id!r}"
        eff: EffectRecord | None = self.load_model(EffectRecord, key, subject, "effect")
        if eff is None:
            return None
        misplaced = eff.index != index if after is None else eff.index <= after
        if eff.step_id != step_id or misplaced:
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


def _ordinal(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]) + ": " + err["msg"]


def verify_run(
    store: ArtifactStore, run_id: str, *, ledger: LedgerView | bool | None = True
) -> VerifyReport:
    """Verify one run (exact id) and report every problem found.

    ``ledger``: the store's ledger as read by :class:`LedgerView` (``True``: read it here;
    ``None``/``False``: do not check against one)."""
    view = LedgerView.read(store) if ledger is True else (ledger or None)
    c = _Checker(store, run_id)
    head = c.head()
    lines = store.read_events(run_id)
    events, intact = c.events(lines, torn_ok=head is None or head.root_hash is None)
    report = VerifyReport(run_id=run_id, status=head.status if head else "unknown")

    start = events[0] if events else None
    if start is None or start.get("type") != "run_start":
        if not lines and head is not None and head.root_hash is None:
            # What a process killed between its head and its first event leaves (the ledger
            # check below finds events removed from a run it saw start).
            c.warnings.append(f"run {run_id} has no events: its process died as it began")
        elif not lines:
            c.problem("event", f"event log of {run_id}", "the run has no events")
        elif start is not None:
            c.problem("event", "event #0", "the log does not begin with run_start")
    elif head is not None:
        data = start.get("data", {})
        if data.get("spec") != head.spec_hash or data.get("seed") != head.seed:
            c.problem("event", "event #0", "run_start disagrees with the run head (spec or seed)")
        _check_sources(c, data.get("origin"))

    seal = None
    if head is not None and view is not None:
        seal = check_run(view, head, len(lines), events, intact, c.problem, c.warnings.append)
    step_ends = {
        e["step"]: e.get("data", {}).get("record") for e in events if e.get("type") == "step_end"
    }
    root = head.root_hash if head is not None else None
    if head is not None and root is None and seal is not None:
        root = seal.root_hash  # the head fell behind the ledger: check what the ledger sealed
    if head is None:
        pass
    elif root is not None:
        _verify_finished(c, head, root, lines, events, intact, step_ends, seal)
        report.root_hash = root
        report.complete = True
    else:
        # No record: what the log says finished must be intact; nothing else is claimed.
        if start is not None:
            for name, key in sorted(start.get("data", {}).get("inputs", {}).items()):
                c.load(key, f"pipeline input {name!r}")
            c.load(head.spec_hash, "pipeline spec")
        for step_id, key in sorted(step_ends.items()):
            c.step(step_id, key)
        _check_unended(c, events, step_ends)
        if head.status in ("interrupted", "superseded"):
            # Taken over by a resume: its head anchors the log as the resume found it.
            check_log_length(
                head.event_count,
                head.event_head,
                len(lines),
                events,
                intact,
                c.problem,
                f"its head anchored {head.event_count} events when the run was taken over "
                "(a process that lost its lease may have gone on)",
                exact=True,
            )
        elif head.status == "running":
            c.warnings.append(
                f"run {run_id} is running, or its process died and no resume has taken it over "
                "yet: its events are chained, but the ledger anchors none after its start, so "
                "its last events could be dropped unnoticed until it ends or is resumed"
            )
        by = f", superseded by {head.superseded_by}" if head.superseded_by else ""
        c.warnings.append(
            f"run {run_id} did not finish (status {head.status!r}{by}): {len(step_ends)} "
            "finished step(s) verified; it has no root hash"
        )
    report.checked = dict(sorted(c.checked.items()))
    report.checked.setdefault("steps", 0)
    report.problems = c.problems
    report.warnings = c.warnings
    return report


def _check_unended(c: _Checker, events: list[dict[str, Any]], step_ends: dict[str, Any]) -> None:
    """The effects and decisions of steps that never ended (a run killed mid-step): a resume
    serves those effects from their records, so they must be intact too."""
    for e in events:
        step = e.get("step")
        if step in step_ends or not isinstance(step, str):
            continue
        data = e.get("data", {})
        if e.get("type") == "effect" and "served_from" not in data:
            c.effect(step, int(data.get("index", -1)), data.get("record"))
        elif e.get("type") == "decision":
            c.load(data.get("decision"), f"decision of step {step!r} (it never ended)")


def _check_sources(c: _Checker, origin: object) -> None:
    """The pipeline source files the run recorded (what ``orch replay`` checks the code on
    disk against, and an evidence bundle carries) must be here, byte for byte."""
    if not isinstance(origin, dict) or not isinstance(origin.get("sources"), dict):
        return
    files = origin["sources"].get("files")
    if not isinstance(files, dict):
        c.problem("event", "event #0", "its origin's sources name no files")
        return
    for path, key in sorted(files.items()):
        c.load(key, f"pipeline source file {path!r}")
        c.count("sources")


def _verify_finished(
    c: _Checker,
    head: RunHead,
    root: str,
    lines: list[bytes],
    events: list[dict[str, Any]],
    intact: bool,
    step_ends: dict[str, Any],
    seal: SealEntry | None,
) -> None:
    if intact and head.root_hash is not None:
        # Only an intact log can be held against its head: a broken link is already the one
        # problem, and everything after it would only repeat it.
        if head.event_count != len(lines) or (events and head.event_head != events[-1]["hash"]):
            c.problem(
                "event",
                f"event log of {c.run_id}",
                f"the head recorded {head.event_count} events ending in {head.event_head}, the "
                f"log has {len(lines)} ending in {events[-1]['hash'] if events else None}: "
                "events were removed or appended after the run finished",
            )
        end = events[-1] if events else None
        if end is None or end.get("type") != "run_end":
            c.problem("event", f"event log of {c.run_id}", "the log does not end with run_end")
        elif end.get("data", {}).get("root_hash") != root:
            c.problem(
                "event",
                f"event #{end['seq']}",
                f"run_end names root hash {end.get('data', {}).get('root_hash')}, the head {root}",
            )
    record: RunRecord | None = c.load_model(RunRecord, root, "run record", "record")
    if record is None:
        return
    outcome = seal.status if seal is not None else head.status
    for field, theirs in (
        ("pipeline", head.pipeline),
        ("spec_hash", head.spec_hash),
        ("seed", head.seed),
        ("status", outcome),
    ):
        if field == "status" and outcome not in ("ok", "failed", "cancelled", "waiting"):
            continue  # superseded: the outcome is the seal's, checked when there is one
        if getattr(record, field) != theirs:
            c.problem(
                "record",
                f"run record ({root})",
                f"{field} is {getattr(record, field)!r} but the head says {theirs!r}",
            )
    ids = [s for s, _ in record.steps]
    if ids != sorted(set(ids)):
        c.problem("record", f"run record ({root})", "steps not sorted and unique")
    merkle = steps_root(record.steps)
    if merkle != record.steps_root:
        c.problem(
            "record",
            f"run record ({root})",
            f"Merkle root over its steps is {merkle}, it records {record.steps_root}",
        )
    elif seal is not None and seal.steps != len(record.steps):
        c.problem(
            "record",
            f"run record ({root})",
            f"it lists {len(record.steps)} steps, the ledger sealed {seal.steps}",
        )
    elif seal is not None and seal.steps_root != record.steps_root:
        c.problem(
            "record",
            f"run record ({root})",
            f"its steps root {record.steps_root} is not the one the ledger sealed "
            f"({seal.steps_root})",
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
        if logged != key and (intact or logged is not None):
            c.problem(
                "event",
                f"step_end of {step_id!r}",
                f"the log records {logged}, the run record {key}",
            )
    for step_id in sorted(set(step_ends) - set(steps)):
        c.problem("record", f"run record ({root})", f"step {step_id!r} is missing")
    for name, key in sorted(record.outputs.items()):
        producers = outputs_by_key.get(key)
        by = f" (value of step {', '.join(repr(p) for p in producers)})" if producers else ""
        c.load(key, f"pipeline output {name!r}{by}")


def _made_with_a_ledger(store: ArtifactStore, run_ids: list[str]) -> str:
    """Why a store with no ledger entries must have had some (empty when it need not): it
    keeps checkpoints of one, or holds runs made by an engine that kept one (their heads name
    a lineage)."""
    if not store.supports_ledger:
        return ""
    sizes = store.checkpoint_sizes()
    if sizes:
        return f"the store holds checkpoints of it (of up to {max(sizes)} entries)"
    for run_id in run_ids:
        raw = store.read_run_head(run_id)
        try:
            head = RunHead.model_validate_json(raw) if raw is not None else None
        except ValidationError:
            continue
        if head is not None and head.lineage is not None:
            return f"run {run_id} was made with one (its head names a lineage)"
    return ""


def _check_stored_copy(store: ArtifactStore, kept: bytes, problem: Any) -> None:
    """Every checkpoint the engine signs is stored with the ledger: the store must still hold
    the one the auditor kept."""
    try:
        size = Checkpoint.parse(kept.split(b"\n\n", 1)[0] + b"\n").size
    except NoteError:
        return  # reported by check_checkpoint already
    if store.read_checkpoint(size) is None:
        problem(
            "checkpoint",
            f"stored checkpoint of size {size}",
            "is missing from the store, though the checkpoint you kept was signed of it (and "
            "the store keeps every checkpoint signed of it): it was deleted",
        )


def verify_store(
    store: ArtifactStore,
    run_ids: Iterable[str] | None = None,
    *,
    since: bytes | None = None,
    trusted: Sequence[Verifier] = (),
    progress: Progress | None = None,
) -> VerifyReport:
    """Re-hash every artifact in ``store``, check its ledger and the checkpoints stored with
    it (and ``since``, a checkpoint note the auditor kept), and verify every run (or those
    given) against it. ``trusted`` are the keys whose signatures count.

    ``progress``, when given, is told how far it got (see :data:`Progress`): per phase, the
    count rises from 0 and ends at the phase's total, at most every :data:`PROGRESS_EVERY`
    items. It only watches: the report is the same with it or without. An exception it
    raises stops the verification and propagates (a caller's way to stop one)."""
    report = VerifyReport(run_id=None, status="store", complete=True)
    checked = {"artifacts": 0, "runs": 0}
    tell = _Teller(progress)

    def problem(kind: str, subject: str, detail: str) -> None:
        report.problems.append(Problem(kind=kind, subject=subject, detail=detail))

    keys = store.keys()
    # Stores list their keys whole and sorted, so the count is known without a second pass
    # (a store that yields them lazily has no count: None).
    hint = operator.length_hint(keys, -1)
    tell.start("artifacts", hint if hint >= 0 else None)
    for key in keys:
        tell.step()
        try:
            store.get(key)
        except IntegrityError as exc:
            problem(
                "artifact",
                f"artifact {key}",
                f"stored bytes hash to {exc.actual}: the artifact was altered",
            )
        except (ArtifactNotFoundError, InvalidKeyError) as exc:  # racing delete, odd name
            problem("artifact", f"artifact {key}", str(exc))
        else:
            checked["artifacts"] += 1
    tell.end()
    tell.start("ledger", None)
    view = LedgerView.read(store)
    all_runs = store.run_ids()
    if view is None:
        made_with = _made_with_a_ledger(store, all_runs)
        if made_with:
            problem(
                "ledger",
                "the store's ledger",
                f"it is empty, but {made_with}: the ledger was removed",
            )
        elif store.supports_ledger and all_runs:
            report.warnings.append(
                f"store {store.location} has no ledger (its runs were made before orch kept "
                "one): runs are verified one by one, and a deleted run cannot be told from one "
                "that never was"
            )
        if since is not None:
            problem(
                "checkpoint",
                "the checkpoint you kept",
                "this store has no ledger to hold "
                "it against: it is not the store that checkpoint was made of, or its ledger "
                "was removed",
            )
    else:
        for kind, subject, detail in view.problems:
            problem(kind, subject, detail)
        checked["ledger entries"] = view.size
        checkpoints = 0
        for size in store.checkpoint_sizes():
            note = store.read_checkpoint(size)
            if note is not None and view.check_checkpoint(
                note,
                f"stored checkpoint of size {size}",
                trusted,
                problem,
                report.warnings.append,
                kept=False,
            ):
                checkpoints += 1
        if since is not None and view.check_checkpoint(
            since,
            "the checkpoint you kept",
            trusted,
            problem,
            report.warnings.append,
            kept=True,
        ):
            checkpoints += 1
            _check_stored_copy(store, since, problem)
        checked["checkpoints"] = checkpoints
        if run_ids is None:
            missing_runs(view, set(all_runs), lambda r: bool(store.read_events(r)), problem)
    tell.end(view.size if view is not None else 0)
    runs = all_runs if run_ids is None else list(run_ids)
    tell.start("runs", len(runs))
    for run_id in runs:
        tell.step()
        sub = verify_run(store, run_id, ledger=view or False)
        checked["runs"] += 1
        for what in ("steps", "events", "decisions", "effects"):
            checked[what] = checked.get(what, 0) + sub.checked.get(what, 0)
        report.complete = report.complete and sub.complete
        report.problems.extend(
            p.model_copy(update={"subject": f"run {run_id}: {p.subject}"}) for p in sub.problems
        )
        report.warnings.extend(sub.warnings)
    tell.end()
    report.checked = checked
    return report


class _Teller:
    """Calls a progress hook at the start and end of each phase and every
    :data:`PROGRESS_EVERY` items in between (or does nothing without one)."""

    def __init__(self, hook: Progress | None) -> None:
        self.hook = hook
        self.phase = ""
        self.done = 0
        self.total: int | None = None
        self.every = 0

    def start(self, phase: str, total: int | None) -> None:
        self.phase, self.done, self.total = phase, 0, total
        self.every = PROGRESS_EVERY.get(phase, 1)
        if self.hook is not None:
            self.hook(phase, 0, total)

    def step(self) -> None:
        """One more item is about to be done: say so for the items before it, now and then."""
        if self.hook is not None and self.done and self.done % self.every == 0:
            self.hook(self.phase, self.done, self.total)
        self.done += 1

    def end(self, done: int | None = None) -> None:
        """The phase ended, ``done`` items in all (default: as counted): its total now."""
        if done is not None:
            self.done = done
        if self.hook is not None:
            self.hook(self.phase, self.done, self.done)
