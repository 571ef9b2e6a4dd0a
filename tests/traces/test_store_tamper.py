"""Store-wide verification finds every deletion, truncation, reordering and rollback.

In a store of each backend (memory, directory, SQLite, PostgreSQL) the library records one run
of every kind (``tests/fixtures/tamper_cases.py``): finished ok, failed, cancelled while it
ran, a failed run superseded by its resume, a run whose process died and that a resume took
over (``interrupted``, then ``superseded``), and a run whose process died and that nobody
resumed; every run makes effects and decisions. Then a checkpoint of the store's ledger is
signed and the auditor keeps its note. Each example puts the store back as it was, tampers
with it in one way through the backend's test hooks, and checks that
``verify_store(store, since=<the note>, trusted=[<its key>])`` reports a problem naming the
thing, and that without the note (``since=None``) exactly what :data:`WITHOUT_CHECKPOINT`
claims is still found:

* anything done inside a run (its artifacts, head, events) shows from the run's own hashes
  and the ledger's entries for it, with or without the auditor's note;
* a cut, forged or reordered ledger shows without the note too, while the store still holds
  the checkpoint it signed (verification holds that against the ledger);
* a rollback of the whole store (ledger and stored checkpoints with it) to an older copy, and
  a fork (rolled back, then other runs made), leave a consistent store: only a checkpoint
  kept outside it shows them.

A run whose process was killed (SIGKILL, in a subprocess) and never resumed has no seal: its
last events can be cut unseen, and verification warns that they are anchored nowhere; once a
resume took it over (anchoring its log as found), the same cut is a problem.

The tamperings these tests first found unnoticed are separate tests at the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tamper_cases import Population, chain, populate, record_fork

from orch import run
from traces import (
    ArtifactStore,
    DirectoryStore,
    MemoryStore,
    SQLiteStore,
    VerifyReport,
    digest,
    is_key,
    verify_store,
)
from traces._ledger import ledger_of
from traces._ledger_entries import (
    GenesisEntry,
    SealEntry,
    StartEntry,
    StatusEntry,
    entry_bytes,
    parse_entry,
)
from traces._note import Signer, Verifier
from traces._open import open_store
from traces.conformance import TamperableStore, tamper_hooks

TAMPER_CASES = Path(__file__).parents[1] / "fixtures" / "tamper_cases.py"

KEPT = "the checkpoint you kept"
"""The subject of a problem with the auditor's note."""


# -- the prepared stores ---------------------------------------------------------------------


@dataclass
class Prepared:
    """A store of one backend holding the population, and what it held when pristine."""

    backend: str
    store: ArtifactStore
    hooks: TamperableStore
    pop: Population
    heads: dict[str, bytes]
    """Every run's head."""
    logs: dict[str, list[bytes]]
    """Every run's event log."""
    ledger: list[bytes]
    stored_note: bytes
    """The checkpoint the store keeps (of every entry of ``ledger``)."""
    referenced: list[str]
    """Every artifact a run references that verification must check (see ``_references``)."""
    pending: list[str]
    """Artifacts named only by the events of steps that never ended in a run that never
    ended (see ``test_the_effect_of_a_step_that_never_ended_is_checked``)."""
    pristine: tuple[Any, ...] = ()
    """The store's :meth:`state` with the population."""

    def state(self) -> tuple[Any, ...]:
        """What the store holds, all but the bytes of its artifacts (no tampering here
        changes those): enough to tell that an undo put everything back."""
        s = self.store
        runs = s.run_ids()
        return (
            list(s.keys()),
            runs,
            [s.read_run_head(r) for r in runs],
            [s.read_events(r) for r in runs],
            s.ledger_read(),
            [(n, s.read_checkpoint(n)) for n in s.checkpoint_sizes()],
        )

    def reset(self) -> None:
        """Put the store back as the population left it (a full restore when needed)."""
        if self.state() != self.pristine:
            self.hooks._tamper_restore(self.pop.pristine)
            assert self.state() == self.pristine, "the restore hook did not restore"

    def undo(self, what: str, undo: Callable[[], object] | None) -> None:
        """Undo a tampering by ``undo``, which puts back what it changed (much cheaper than a
        full restore of a directory store; None: restore), and check that the store is as it
        was."""
        if undo is None:
            self.hooks._tamper_restore(self.pop.pristine)
        else:
            undo()
        assert self.state() == self.pristine, f"undoing '{what}' left the store changed"

    @contextmanager
    def tampering(self, what: str, undo: Callable[[], object] | None) -> Iterator[None]:
        """The body tampers with the (pristine) store; afterwards it is undone by ``undo``."""
        self.reset()
        try:
            yield
        finally:
            self.undo(what, undo)

    def put_ledger_back(self, size: int) -> None:
        """Append the entries cut from ``size`` on, as they were."""
        for entry in self.ledger[size:]:
            self.store.ledger_append(entry)

    def put_checkpoint_back(self) -> None:
        self.store.write_checkpoint(len(self.ledger), self.stored_note)

    def stored_checkpoint(self) -> str:
        return f"stored checkpoint of size {len(self.ledger)}"

    def verify(self, *, kept: bool) -> VerifyReport:
        return verify_store(
            self.store, since=self.pop.note if kept else None, trusted=self.pop.verifiers
        )


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A real PostgreSQL server for this module (see tests/fixtures/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


def _open(backend: str, where: Path, request: pytest.FixtureRequest) -> ArtifactStore:
    if backend == "memory":
        return MemoryStore()
    if backend == "dir":
        return DirectoryStore(where / "store")
    if backend == "sqlite":
        return SQLiteStore(where / "store.db")
    from pg_server import store_url

    return open_store(store_url(request.getfixturevalue("pg_dsn"), "tamper"))


def _keys_in(value: Any, found: set[str]) -> None:
    if isinstance(value, str) and is_key(value):
        found.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _keys_in(v, found)
    elif isinstance(value, list):
        for v in value:
            _keys_in(v, found)


def _reach(store: ArtifactStore, roots: set[str]) -> set[str]:
    """The artifacts of ``store`` that ``roots`` name, and those they name, transitively."""
    found = {k for k in roots if store.has(k)}
    todo = sorted(found)
    while todo:
        try:
            value = orjson.loads(store.get(todo.pop()))
        except orjson.JSONDecodeError:
            continue
        more: set[str] = set()
        _keys_in(value, more)
        for key in sorted(more - found):
            if store.has(key):
                found.add(key)
                todo.append(key)
    return found


def _references(store: ArtifactStore) -> tuple[list[str], list[str]]:
    """(checked, pending): the artifacts runs reference through their heads and events,
    transitively; ``pending`` are those only the ``effect`` and ``decision`` events of a step
    that never ended, in a run that never ended, name (a resume serves those effects, so
    verification checks them too)."""
    roots: set[str] = set()
    pending_roots: set[str] = set()
    for run_id in store.run_ids():
        head = orjson.loads(store.read_run_head(run_id) or b"{}")
        _keys_in({k: v for k, v in head.items() if k not in ("hash", "event_head")}, roots)
        events = [orjson.loads(line) for line in store.read_events(run_id)]
        ended = {e.get("step") for e in events if e["type"] == "step_end"}
        for event in events:
            where = roots
            if head.get("root_hash") is None and event["type"] in ("effect", "decision"):
                where = roots if event.get("step") in ended else pending_roots
            _keys_in(event.get("data", {}), where)
    checked = _reach(store, roots)
    return sorted(checked), sorted(_reach(store, pending_roots) - checked)


_BACKENDS = ["memory", "dir", "sqlite", pytest.param("postgres", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=_BACKENDS)
def prepared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prepared]:
    backend = str(request.param)
    store = _open(backend, tmp_path_factory.mktemp(backend), request)
    pop = populate(store)
    checked, pending = _references(store)
    prepared = Prepared(
        backend=backend,
        store=store,
        hooks=tamper_hooks(store),
        pop=pop,
        heads={r: store.read_run_head(r) or b"" for r in store.run_ids()},
        logs={r: store.read_events(r) for r in store.run_ids()},
        ledger=store.ledger_read(),
        stored_note=store.read_checkpoint(store.ledger_size()) or b"",
        referenced=checked,
        pending=pending,
    )
    prepared.pristine = prepared.state()
    yield prepared
    store.close()


def _problems(report: VerifyReport) -> str:
    return "\n".join(f"  {p.kind} | {p.subject} | {p.detail}" for p in report.problems) or (
        "  (no problem; warnings: " + "; ".join(report.warnings) + ")"
    )


def _warns_unanchored(report: VerifyReport, run_id: str) -> bool:
    """Whether a warning says that ``run_id``'s last events are anchored nowhere."""
    return any(
        f"run {run_id} " in w and "anchor" in w and "unnoticed" in w for w in report.warnings
    )


# -- the honest store ------------------------------------------------------------------------


def test_the_population_verifies_clean(prepared: Prepared) -> None:
    p = prepared
    p.reset()
    statuses = {
        role: orjson.loads(p.store.read_run_head(run_id) or b"{}")["status"]
        for role, run_id in p.pop.runs.items()
    }
    assert statuses == {
        "ok-1": "ok",
        "failed": "failed",
        "cancelled": "cancelled",
        "ok-2": "ok",
        "superseded": "superseded",
        "resume": "ok",
        "interrupted": "superseded",
        "resume-of-died": "ok",
        "ok-3": "ok",
        "died": "running",
    }
    entries = [parse_entry(e) for e in p.ledger]
    interrupted = p.pop.runs["interrupted"]
    assert any(
        isinstance(e, StatusEntry) and e.run == interrupted and e.status == "interrupted"
        for e in entries
    ), "the died run's resume did not mark it interrupted"
    for kept in (True, False):
        report = p.verify(kept=kept)
        assert report.ok and report.problems == [], _problems(report)
        assert report.checked["runs"] == len(p.pop.runs)
        assert report.checked["checkpoints"] == (2 if kept else 1)
        for what in ("decisions", "effects", "steps"):
            assert report.checked[what] > 0, what
        unanchored = [r for r in p.pop.order if _warns_unanchored(report, r)]
        assert unanchored == [p.pop.runs["died"]], report.warnings
    assert p.pending, "the died run left no effect of an unfinished step"
    assert set(p.referenced) | set(p.pending) == set(p.store.keys()), "unreferenced artifacts"


# -- the tamperings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """How a tampering must show: some problem's subject holds (or, ``exact``, is) this."""

    subject: str
    exact: bool = False

    def in_report(self, report: VerifyReport) -> bool:
        return any(
            (p.subject == self.subject) if self.exact else (self.subject in p.subject)
            for p in report.problems
        )


@dataclass(frozen=True)
class Tampered:
    """A tampering done: how it must show, and how to undo it."""

    what: str
    found: Found
    undo: Callable[[], object] | None = field(default=None, repr=False)
    """Puts back exactly what was changed (None: only a full restore does)."""


Tamper = Callable[[Prepared, st.DataObject], Tampered]
"""Draws what to change, changes it in the (pristine) store, and says how it must show."""


def _run(p: Prepared, data: st.DataObject, label: str = "run") -> str:
    return data.draw(st.sampled_from(p.pop.order), label=label)


def _set_events(p: Prepared, run_id: str, lines: list[bytes], what: str, found: Found) -> Tampered:
    p.hooks._tamper_set_events(run_id, lines)
    return Tampered(what, found, lambda: p.hooks._tamper_set_events(run_id, p.logs[run_id]))


def delete_artifact(p: Prepared, data: st.DataObject) -> Tampered:
    key = data.draw(st.sampled_from(p.referenced + p.pending), label="key")
    kept = p.store.get(key)
    p.hooks._tamper_delete_blob(key)
    return Tampered(f"deleted {key}", Found(key), lambda: p.store.put(kept))


def delete_head(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    p.hooks._tamper_delete_head(victim)
    return Tampered(
        f"deleted the head of {victim}",
        Found(f"run {victim}", exact=True),
        lambda: p.store.write_run_head(victim, p.heads[victim]),
    )


def delete_run(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    p.hooks._tamper_delete_head(victim)
    p.hooks._tamper_set_events(victim, [])

    def undo() -> None:
        p.store.write_run_head(victim, p.heads[victim])
        p.hooks._tamper_set_events(victim, p.logs[victim])

    return Tampered(f"deleted run {victim}", Found(f"run {victim}", exact=True), undo)


def truncate_log(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    lines = p.logs[victim]
    if victim == p.pop.runs["died"]:
        # Nothing anchors the tail of a run that died and was never resumed (no seal, no
        # interruption): only emptying its log shows. See the SIGKILL tests below.
        k = len(lines)
    else:
        k = data.draw(st.integers(1, len(lines)), label="lines cut")
    return _set_events(
        p,
        victim,
        lines[: len(lines) - k],
        f"cut {k} lines of {victim}",
        Found(f"run {victim}: event log"),
    )


def drop_event(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    lines = p.logs[victim]
    i = data.draw(st.integers(1, len(lines) - 2), label="event dropped")
    return _set_events(
        p,
        victim,
        lines[:i] + lines[i + 1 :],
        f"dropped event #{i} of {victim}",
        Found(f"run {victim}: event #{i}", exact=True),
    )


def swap_events(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    lines = list(p.logs[victim])
    i = data.draw(st.integers(0, len(lines) - 2), label="first event")
    j = data.draw(st.integers(i + 1, len(lines) - 1), label="second event")
    lines[i], lines[j] = lines[j], lines[i]
    return _set_events(
        p,
        victim,
        lines,
        f"swapped events #{i} and #{j} of {victim}",
        Found(f"run {victim}: event #{i}", exact=True),
    )


def replace_log(p: Prepared, data: st.DataObject) -> Tampered:
    victim = _run(p, data)
    donor = data.draw(st.sampled_from([r for r in p.pop.order if r != victim]), label="donor")
    return _set_events(
        p,
        victim,
        p.logs[donor],
        f"gave {victim} the log of {donor}",
        Found(f"run {victim}: event #0", exact=True),
    )


def truncate_ledger(p: Prepared, data: st.DataObject) -> Tampered:
    # Down to the genesis entry; an emptied ledger is tested on its own.
    k = data.draw(st.integers(1, len(p.ledger) - 1), label="entries cut")
    size = len(p.ledger) - k
    p.hooks._tamper_truncate_ledger(size)
    return Tampered(
        f"cut the last {k} ledger entries", Found(KEPT, exact=True), lambda: p.put_ledger_back(size)
    )


def _forgeries(entry: Any, runs: list[str]) -> list[dict[str, Any]]:
    """Changes of one field each that keep ``entry`` a valid, canonical entry."""
    other = next(r for r in runs if r != getattr(entry, "run", None))
    forged = digest(b"forged")
    if isinstance(entry, GenesisEntry):
        return [{"store": "f" * 32 if entry.store != "f" * 32 else "e" * 32}]
    changes: list[dict[str, Any]] = [{"run": other}]
    if isinstance(entry, StartEntry):
        changes += [
            {"pipeline": "another-pipeline"},
            {"spec": forged},
            {"seed": entry.seed + 1},
            {"start_event": forged},
            {"lineage": other},
            {"resumed_from": None if entry.resumed_from else other},
        ]
    elif isinstance(entry, SealEntry):
        changes += [
            {"status": "failed" if entry.status == "ok" else "ok"},
            {"root_hash": forged},
            {"steps_root": forged},
            {"events": entry.events + 1},
            {"events": entry.events - 1},
            {"event_head": forged},
        ]
    elif isinstance(entry, StatusEntry):
        changes += [
            {"status": "superseded" if entry.status == "interrupted" else "interrupted"},
            {"by": other if entry.by != other else runs[0]},
        ]
        if entry.events is not None:
            changes += [{"events": entry.events + 1}, {"event_head": forged}]
    return changes


def forge_ledger_entry(p: Prepared, data: st.DataObject) -> Tampered:
    i = data.draw(st.integers(0, len(p.ledger) - 1), label="entry")
    entry = parse_entry(p.ledger[i])
    change = data.draw(st.sampled_from(_forgeries(entry, p.pop.order)), label="change")
    forged = entry_bytes(entry.model_copy(update=change))
    assert parse_entry(forged) != entry, "a forgery must be a valid entry, and another one"
    p.hooks._tamper_ledger(i, forged)
    return Tampered(
        f"forged ledger entry #{i} ({change})",
        Found(KEPT, exact=True),
        lambda: p.hooks._tamper_ledger(i, p.ledger[i]),
    )


def reorder_ledger(p: Prepared, data: st.DataObject) -> Tampered:
    i = data.draw(st.integers(0, len(p.ledger) - 2), label="first entry")
    j = data.draw(st.integers(i + 1, len(p.ledger) - 1), label="second entry")
    p.hooks._tamper_ledger(i, p.ledger[j])
    p.hooks._tamper_ledger(j, p.ledger[i])

    def undo() -> None:
        p.hooks._tamper_ledger(i, p.ledger[i])
        p.hooks._tamper_ledger(j, p.ledger[j])

    return Tampered(f"swapped ledger entries #{i} and #{j}", Found(KEPT, exact=True), undo)


def rollback(p: Prepared, data: st.DataObject) -> Tampered:
    # before[0] is the empty store: the store replaced by a new one.
    i = data.draw(st.integers(0, len(p.pop.before) - 1), label="back to before run")
    p.hooks._tamper_restore(p.pop.before[i])
    return Tampered(f"rolled back to before {p.pop.order[i]}", Found(KEPT, exact=True))


def fork(p: Prepared, data: st.DataObject) -> Tampered:
    # Onto a store that has a ledger (this process's ledger object caches the store's id,
    # which a forger's process would not: forking an empty store is a rollback to it plus a
    # new store, covered by ``rollback``).
    i = data.draw(st.integers(1, len(p.pop.before) - 1), label="back to before run")
    # Up to more runs than were cut, so that the fork may outgrow the auditor's checkpoint.
    count = data.draw(st.integers(1, 8), label="other runs")
    p.hooks._tamper_restore(p.pop.before[i])
    anyio.run(record_fork, p.store, count)
    return Tampered(
        f"rolled back to before {p.pop.order[i]}, then made {count} other runs",
        Found(KEPT, exact=True),
    )


TAMPERINGS: dict[str, Tamper] = {
    "delete artifact": delete_artifact,
    "delete head": delete_head,
    "delete run": delete_run,
    "truncate log": truncate_log,
    "drop event": drop_event,
    "swap events": swap_events,
    "replace log": replace_log,
    "truncate ledger": truncate_ledger,
    "forge ledger entry": forge_ledger_entry,
    "reorder ledger": reorder_ledger,
    "rollback": rollback,
    "fork": fork,
}

WITHOUT_CHECKPOINT: dict[str, str | None] = {
    # How each tampering still shows without the auditor's note (since=None):
    # "same": as with it (the runs' own hashes and their ledger entries);
    # "stored": the store's own checkpoint no longer holds against its ledger;
    # None: it cannot be found: the store is consistent.
    "delete artifact": "same",
    "delete head": "same",
    "delete run": "same",
    "truncate log": "same",
    "drop event": "same",
    "swap events": "same",
    "replace log": "same",
    "truncate ledger": "stored",
    "forge ledger entry": "stored",
    "reorder ledger": "stored",
    "rollback": None,
    "fork": None,
}

EXAMPLES = {"memory": 20, "sqlite": 12, "dir": 8, "postgres": 8}
"""Examples per tampering kind, by backend (what its store costs to verify); rollbacks and
forks (a full restore each, and forks record runs) get half as many."""


@pytest.mark.parametrize("kind", sorted(TAMPERINGS))
def test_every_tampering_is_found(prepared: Prepared, kind: str) -> None:
    p = prepared
    p.reset()
    examples = EXAMPLES[p.backend] // (2 if kind in ("fork", "rollback") else 1)

    # One test function serves every kind and backend: keep hypothesis's example database
    # from replaying one's examples in another.
    @settings(max_examples=examples, deadline=None, database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        tampered = TAMPERINGS[kind](p, data)
        try:
            found = tampered.found
            report = p.verify(kept=True)
            assert found.in_report(report), (
                f"{tampered.what}: unnoticed with the auditor's checkpoint ({p.backend} "
                f"store): no problem names {found.subject!r}; problems:\n{_problems(report)}"
            )
            report = p.verify(kept=False)
            how = WITHOUT_CHECKPOINT[kind]
            if how is None:
                assert report.ok, (
                    f"{tampered.what}: now found without a checkpoint: update the docs"
                )
                return
            without = found if how == "same" else Found(p.stored_checkpoint(), exact=True)
            assert without.in_report(report), (
                f"{tampered.what}: unnoticed without the auditor's checkpoint ({p.backend} "
                f"store): no problem names {without.subject!r}; problems:\n{_problems(report)}"
            )
        finally:
            p.undo(tampered.what, tampered.undo)

    check()


def test_the_split_covers_every_tampering() -> None:
    assert set(WITHOUT_CHECKPOINT) == set(TAMPERINGS)
    lost = sorted(k for k, how in WITHOUT_CHECKPOINT.items() if how is None)
    assert lost == ["fork", "rollback"]


def test_an_emptied_ledger_is_found_with_the_auditors_checkpoint(prepared: Prepared) -> None:
    p = prepared
    with p.tampering("emptied the ledger", lambda: p.put_ledger_back(0)):
        p.hooks._tamper_truncate_ledger(0)
        report = p.verify(kept=True)
        assert Found(KEPT, exact=True).in_report(report), _problems(report)


def test_without_any_checkpoint_a_cut_ledger_shows_in_its_runs(prepared: Prepared) -> None:
    """The store's checkpoint deleted too, and no note kept: a cut ledger still shows as soon
    as it removes what a run's head says happened (a seal, a status); cutting only the start
    entry of a run that died unresumed is what a crash between its head and its start entry
    leaves: a warning."""
    p = prepared
    died = p.pop.runs["died"]
    last = parse_entry(p.ledger[-1])
    assert isinstance(last, StartEntry) and last.run == died

    @settings(max_examples=EXAMPLES[p.backend], deadline=None, database=None)
    @example(cut=1)
    @example(cut=2)
    @given(cut=st.integers(1, len(p.ledger) - 1))
    def check(cut: int) -> None:
        size = len(p.ledger) - cut

        def undo() -> None:
            p.put_ledger_back(size)
            p.put_checkpoint_back()

        with p.tampering(f"cut {cut} entries, deleted the checkpoint", undo):
            p.hooks._tamper_delete_checkpoint(len(p.ledger))
            p.hooks._tamper_truncate_ledger(size)
            report = p.verify(kept=False)
            if cut == 1:
                assert report.ok, _problems(report)
                assert any(died in w and "not in the store's ledger" in w for w in report.warnings)
            else:
                assert not report.ok, f"cutting {cut} ledger entries went unnoticed"

    check()


# -- a run killed with SIGKILL ---------------------------------------------------------------


@dataclass
class Killed:
    """A store in which a real process was killed mid-run, before and after its resume."""

    store: ArtifactStore
    hooks: TamperableStore
    run_id: str
    note: bytes
    """A checkpoint signed after the kill."""
    verifiers: list[Verifier]
    killed: object
    resumed: object
    lines: list[bytes]


def _events(location: str, run_id: str) -> list[dict[str, Any]]:
    store = open_store(location)
    try:
        out = []
        for line in store.read_events(run_id):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:  # a torn tail while it writes
                break
        return out
    finally:
        store.close()


@pytest.fixture(scope="module", params=["dir", "sqlite"])
def killed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Killed]:
    import time

    where = tmp_path_factory.mktemp(f"killed-{request.param}")
    location = str(where / ("store" if request.param == "dir" else "store.db"))
    blocked = 5  # steps s00..s04 end; s05 makes its effect, then waits to be killed
    proc = subprocess.Popen(
        [sys.executable, str(TAMPER_CASES), location, str(blocked)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Path(location).exists():
                events = _events(location, "killed")
                if any(
                    e["type"] == "effect" and e.get("step") == f"s{blocked:02d}" for e in events
                ):
                    break
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"the run ended before it was killed: {proc.stderr.read()!r}")
            time.sleep(0.02)
        else:
            pytest.fail("the run did not reach its blocking step within 60s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    store = open_store(location)
    hooks = tamper_hooks(store)
    ends = [e for e in _events(location, "killed") if e["type"] == "step_end"]
    assert len(ends) == blocked
    signer = Signer.generate("test")
    note = ledger_of(store).checkpoint([signer])
    killed_state = hooks._tamper_snapshot()
    lines = store.read_events("killed")
    result = run(chain, store=store, resume="killed")
    assert result.ok
    yield Killed(
        store=store,
        hooks=hooks,
        run_id="killed",
        note=note,
        verifiers=[signer.verifier()],
        killed=killed_state,
        resumed=hooks._tamper_snapshot(),
        lines=lines,
    )
    store.close()


@pytest.mark.slow
def test_a_killed_run_verifies_with_warnings(killed: Killed) -> None:
    k = killed
    k.hooks._tamper_restore(k.killed)
    report = verify_store(k.store, since=k.note, trusted=k.verifiers)
    assert report.ok, _problems(report)
    assert _warns_unanchored(report, k.run_id), report.warnings
    k.hooks._tamper_restore(k.resumed)
    report = verify_store(k.store, since=k.note, trusted=k.verifiers)
    assert report.ok, _problems(report)
    assert not _warns_unanchored(report, k.run_id), "the resume anchored its log"


@pytest.mark.slow
@settings(max_examples=5, deadline=None, database=None)
@given(data=st.data())
def test_a_killed_runs_tail_can_be_cut_unseen_before_a_resume(
    killed: Killed, data: st.DataObject
) -> None:
    """No seal, no interruption entry: nothing anchors the log of a run whose process died
    until a resume takes it over; cutting its last events leaves a shorter, intact chain, even
    against a checkpoint signed after the kill. Verification says so in a warning."""
    k = killed
    cut = data.draw(st.integers(1, len(k.lines) - 1), label="lines cut")
    k.hooks._tamper_restore(k.killed)
    k.hooks._tamper_set_events(k.run_id, k.lines[: len(k.lines) - cut])
    for since in (k.note, None):
        report = verify_store(k.store, since=since, trusted=k.verifiers)
        assert report.ok, _problems(report)
        assert _warns_unanchored(report, k.run_id), report.warnings


@pytest.mark.slow
@settings(max_examples=5, deadline=None, database=None)
@given(data=st.data())
def test_a_killed_runs_tail_cut_after_its_resume_is_found(
    killed: Killed, data: st.DataObject
) -> None:
    k = killed
    cut = data.draw(st.integers(1, len(k.lines)), label="lines cut")
    k.hooks._tamper_restore(k.resumed)
    k.hooks._tamper_set_events(k.run_id, k.lines[: len(k.lines) - cut])
    for since in (k.note, None):
        report = verify_store(k.store, since=since, trusted=k.verifiers)
        assert Found(f"run {k.run_id}: event log").in_report(report), _problems(report)


# -- tamperings first found unnoticed by these tests, each now reported ------------------------


def test_a_deleted_stored_checkpoint_is_found_with_the_auditors(prepared: Prepared) -> None:
    p = prepared
    with p.tampering("deleted the stored checkpoint", p.put_checkpoint_back):
        p.hooks._tamper_delete_checkpoint(len(p.ledger))
        report = p.verify(kept=True)
        assert Found("checkpoint").in_report(report), _problems(report)


def test_the_effect_of_a_step_that_never_ended_is_checked(prepared: Prepared) -> None:
    p = prepared
    died = p.pop.runs["died"]
    effect = next(
        e["data"]["record"]
        for e in map(orjson.loads, p.logs[died])
        if e["type"] == "effect" and e.get("step") == "verdict"
    )
    assert effect in p.pending
    kept = p.store.get(effect)
    with p.tampering(f"deleted {effect}", lambda: p.store.put(kept)):
        p.hooks._tamper_delete_blob(effect)
        report = p.verify(kept=True)
        assert Found(effect).in_report(report), _problems(report)


def test_an_emptied_ledger_is_found_without_the_auditors_checkpoint(
    prepared: Prepared,
) -> None:
    p = prepared
    with p.tampering("emptied the ledger", lambda: p.put_ledger_back(0)):
        p.hooks._tamper_truncate_ledger(0)
        report = p.verify(kept=False)
        assert not report.ok, report.warnings


@pytest.mark.parametrize(
    ("role", "entry_type", "change"),
    [
        ("ok-1", "start", "lineage"),
        ("ok-1", "start", "resumed_from"),
        ("superseded", "status", "by"),
    ],
)
def test_forged_lineage_fields_are_compared_with_the_head(
    prepared: Prepared, role: str, entry_type: str, change: str
) -> None:
    p = prepared
    run_id = p.pop.runs[role]
    other = p.pop.runs["ok-2"]
    index, entry = next(
        (i, e)
        for i, e in enumerate(map(parse_entry, p.ledger))
        if getattr(e, "run", None) == run_id and e.type == entry_type
    )

    def undo() -> None:
        p.hooks._tamper_ledger(index, p.ledger[index])
        p.put_checkpoint_back()

    with p.tampering(f"forged {change} of ledger entry #{index}", undo):
        p.hooks._tamper_ledger(index, entry_bytes(entry.model_copy(update={change: other})))
        p.hooks._tamper_delete_checkpoint(len(p.ledger))
        report = p.verify(kept=False)
        assert not report.ok, f"ledger entry #{index}: {change} forged to {other}, unnoticed"
