"""Conversation threads: a chain of runs, one per turn of a conversation.

``arun(pipeline, inputs, thread="T")`` starts the next turn of thread T. A turn is an ordinary
run (its record, root hash, verification and replay are a run's); what makes it a turn is
metadata: its head names the thread and the turn number, and its ``run_start`` event the link
(thread, turn, the previous turn's run and root hash). The one thing a thread carries from
turn to turn is content: when the pipeline declares an input named ``state``, turn 1 gets None
and turn n+1 gets turn n's output ``state`` as recorded, so that the input's artifact key *is*
the previous output's key and the turns are hash-linked through their records. A turn's root
hash is the root hash of a plain run given the same inputs and state.

One turn at a time: a turn, and a resume of one, holds the thread's lease (claim
``thread-lease.T``, :mod:`orch._lease`) while it runs. A turn starts only when the thread's
last turn ended ok; a resume of a turn keeps its thread and turn number, and once it ends ok
the thread's index names it for that turn.

The index (claim ``thread-index.T``) lists the run of each turn, so that listing a thread
reads the index and the heads it names, never every head of the store. It is changed only by
compare-and-swap under the thread's lease, and checked against the heads it names whenever it
is read: each must name the thread and the turn. A new turn is entered in the index before its
head is written: an entry whose run has no head is a turn starting now, or one whose process
died before it began (the next turn drops it). Like a lease, the index is coordination, never
part of a record; a store that keeps no claims has none, and its threads are found by reading
every head.

This module must never run a step or make an effect, and nothing it writes may enter a
hashed record.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from orch._lease import Lease, holding
from orch._lineage import lineage_members, read_head
from orch._pipeline import Pipeline
from orch._typecheck import describe, is_optional
from orch.errors import LeaseHeld, ThreadBusyError, ThreadError
from traces import (
    ArtifactStore,
    InvalidRunIdError,
    RunHead,
    RunRecord,
    canonical_bytes,
    check_run_id,
    digest,
    first_event,
    verify_run,
)

__all__ = [
    "STATE_INPUT",
    "ThreadLink",
    "ThreadReport",
    "ThreadTurn",
    "Turn",
    "check_thread_id",
    "check_thread_options",
    "next_turn",
    "resumed_turn",
    "thread_turns",
    "verify_thread",
]

STATE_INPUT = "state"
"""The pipeline input (and output) a thread carries from one turn to the next."""

_INDEX = "thread-index."
_LEASE = "thread-lease."
_INDEX_FORMAT = "orch.thread-index/1"
# A claim name is checked as a run id (1 to 128 characters): room for the prefixes.
_MAX_ID = 128 - max(len(_INDEX), len(_LEASE))
_THREAD_ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{_MAX_ID - 1}}}$")
_INDEX_FIX = "fix: check the store with 'orch verify --all' (each run's head names its thread)"


def check_thread_id(thread: object) -> str:
    """Return ``thread`` unchanged, or raise :class:`~orch.errors.ThreadError`: a thread id
    is checked as a run id is, a little shorter (its claims' names add a prefix)."""
    if not isinstance(thread, str) or _THREAD_ID_RE.match(thread) is None:
        raise ThreadError(
            f"invalid thread id {thread!r}; fix: use 1 to {_MAX_ID} letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return thread


def check_thread_options(thread: str | None, resume: str | None) -> str | None:
    """``thread`` checked (:func:`check_thread_id`); a resume takes none: it continues its
    run's own thread and turn."""
    if thread is None:
        return None
    if resume is not None:
        raise ThreadError(
            f"run {resume} is resumed in its own thread and turn, not in thread {thread!r}; "
            f"fix: leave thread= out when resuming (arun(pipeline, resume={resume!r}))"
        )
    return check_thread_id(thread)


@dataclass(frozen=True)
class ThreadTurn:
    """One turn of a thread, as the thread's index and its run's head say."""

    turn: int
    """1, 2, 3 ..."""
    run_id: str
    """The turn's run: the resume that finished it ok, when one did."""
    status: str
    """The run's status (``ok``, ``failed``, ``running`` ...)."""
    root_hash: str | None
    """The run's root hash (None while it has not ended)."""
    previous: str | None
    """The previous turn's run (None for turn 1)."""


@dataclass(frozen=True)
class ThreadLink:
    """Where a turn's run stands in its thread: in its head (``thread``, ``turn``) and in its
    ``run_start`` event (all of it). Metadata only: never part of a hashed record."""

    thread: str
    turn: int
    previous: str | None = None
    """The previous turn's run, whose output ``state`` this turn was given."""
    previous_root: str | None = None
    """That run's root hash."""

    def event_data(self) -> dict[str, Any]:
        """The ``thread`` member of the turn's ``run_start`` event data."""
        return {
            "id": self.thread,
            "turn": self.turn,
            "previous": self.previous,
            "previous_root": self.previous_root,
        }

    @classmethod
    def recorded(cls, store: ArtifactStore, run_id: str) -> ThreadLink | None:
        """The link run ``run_id``'s ``run_start`` event records, or None (unchecked: its
        chain is verification's)."""
        event = first_event(store, run_id) or {}
        data = event.get("data")
        link = data.get("thread") if isinstance(data, dict) else None
        if not isinstance(link, dict):
            return None
        thread, turn = link.get("id"), link.get("turn")
        previous, previous_root = link.get("previous"), link.get("previous_root")
        if not isinstance(thread, str) or not isinstance(turn, int) or isinstance(turn, bool):
            return None
        return cls(
            thread,
            turn,
            previous if isinstance(previous, str) else None,
            previous_root if isinstance(previous_root, str) else None,
        )


# -- the index -----------------------------------------------------------------------------


def _index_bytes(thread: str, runs: list[str]) -> bytes:
    return canonical_bytes({"format": _INDEX_FORMAT, "thread": thread, "turns": runs})


def _read_index(store: ArtifactStore, thread: str) -> tuple[bytes | None, list[str]]:
    """The index document as stored (for a compare-and-swap) and the run of each turn."""
    raw = store.read_claim(_INDEX + thread)
    if raw is None:
        return None, []
    try:
        doc = orjson.loads(raw)
        runs = doc.get("turns") if isinstance(doc, dict) and doc.get("thread") == thread else None
        if isinstance(runs, list):
            return raw, [check_run_id(r) for r in runs]
    except (orjson.JSONDecodeError, InvalidRunIdError):
        pass
    raise ThreadError(
        f"the index of thread {thread} in store {store.location} is unreadable; " + _INDEX_FIX
    )


def _swap_index(
    store: ArtifactStore, thread: str, expected: bytes | None, runs: list[str]
) -> bytes | None:
    """Make the index list ``runs`` if it still is ``expected``; the new document, or None
    when another process changed it first."""
    new = _index_bytes(thread, runs)
    if new == expected:
        return new
    return new if store.swap_claim(_INDEX + thread, expected, new) else None


def _scan(store: ArtifactStore, thread: str) -> list[str]:
    """The first run of each turn of ``thread``, from every head of a store that keeps no
    claims (so no index)."""
    found: dict[int, list[str]] = {}
    for run_id in store.run_ids():
        head = _head(store, run_id)
        if head is None or head.thread != thread or head.turn is None:
            continue
        if head.lineage in (None, head.run_id):  # a resume is found from its lineage's first
            found.setdefault(head.turn, []).append(run_id)
    runs: list[str] = []
    for turn in range(1, len(found) + 1):
        first = found.get(turn, [])
        if len(first) != 1:
            raise ThreadError(
                f"thread {thread} in store {store.location} (which keeps no claims, so no "
                f"index) has {len(first)} runs that began turn {turn}; " + _INDEX_FIX
            )
        runs.append(first[0])
    return runs


def _head(store: ArtifactStore, run_id: str) -> RunHead | None:
    """Run ``run_id``'s head; an unreadable one is an error here, never taken for a turn
    that has not begun."""
    return read_head(
        store,
        run_id,
        unreadable=lambda: ThreadError(
            f"the head of run {run_id} in store {store.location} is unreadable; " + _INDEX_FIX
        ),
    )


def _misplaced(head: RunHead, thread: str, turn: int) -> str | None:
    if head.thread == thread and head.turn == turn:
        return None
    where = f"turn {head.turn} of thread {head.thread}" if head.thread else "no thread"
    return (
        f"thread {thread}: its index names run {head.run_id} for turn {turn}, but that run's "
        f"head says {where}"
    )


@dataclass
class _Walk:
    """A thread's index read and checked against the heads it names."""

    raw: bytes | None
    indexed: list[str]
    """The run of each turn as the index names it."""
    heads: list[RunHead] = field(default_factory=list)
    """The run of each turn that has begun: the one of its lineage that ended ok, if any."""
    problems: list[str] = field(default_factory=list)

    def turns(self) -> list[ThreadTurn]:
        out: list[ThreadTurn] = []
        for n, head in enumerate(self.heads, 1):
            before = self.heads[n - 2].run_id if n > 1 else None
            out.append(ThreadTurn(n, head.run_id, head.status, head.root_hash, before))
        return out


def _walk(store: ArtifactStore, thread: str) -> _Walk:
    if store.supports_claims:
        walk = _Walk(*_read_index(store, thread))
    else:
        walk = _Walk(None, _scan(store, thread))
    for n, run_id in enumerate(walk.indexed, 1):
        head = _head(store, run_id)
        if head is None:
            if n < len(walk.indexed):
                walk.problems.append(
                    f"thread {thread}: its index names run {run_id} for turn {n}, which is "
                    f"not in store {store.location}"
                )
            break  # the last: a turn starting now, or one that never began
        wrong = _misplaced(head, thread, n)
        if wrong is None and head.status != "ok":
            # A resume of the turn that ended ok is the turn's run (it may have died before
            # its lineage was marked superseded, or before the index was pointed at it).
            done = next((m for m in lineage_members(store, run_id) if m.status == "ok"), None)
            if done is not None:
                wrong, head = _misplaced(done, thread, n), done
        if wrong is not None:
            walk.problems.append(wrong)
            break
        walk.heads.append(head)
    return walk


def thread_turns(store: ArtifactStore, thread: str) -> list[ThreadTurn]:
    """The turns of ``thread`` in ``store``, the first first (empty for a thread that has
    none). Reads the thread's index and the heads it names, and raises
    :class:`~orch.errors.ThreadError` when they disagree. A turn entered in the index whose run
    has not written its head yet (it starts now) is not listed."""
    thread = check_thread_id(thread)
    walk = _walk(store, thread)
    if walk.problems:
        raise ThreadError(walk.problems[0] + "; " + _INDEX_FIX)
    return walk.turns()


# -- starting a turn -----------------------------------------------------------------------


@asynccontextmanager
async def _thread_lease(
    store: ArtifactStore, thread: str, run_id: str, *, wait: bool
) -> AsyncIterator[Lease | None]:
    entered = False
    try:
        async with holding(
            store, _LEASE + thread, wait=wait, work=f"run {run_id}, thread {thread}"
        ) as lease:
            entered = True
            yield lease
    except LeaseHeld as exc:
        if entered:
            raise
        raise ThreadBusyError(
            f"thread {thread} is busy: {exc.holder or 'another process'} runs a turn of it "
            f"(store {store.location}); fix: wait until that turn ends, or pass wait=True to "
            "wait for it"
        ) from None


@dataclass
class Turn:
    """A turn about to run, as :func:`next_turn` prepared it under the thread's lease."""

    link: ThreadLink | None
    """None for a run that is no turn of a thread."""
    inputs: dict[str, Any]
    """The run's inputs: the caller's, and ``state`` when the pipeline takes it."""
    store: ArtifactStore | None = None
    index: bytes | None = None
    runs: list[str] = field(default_factory=list)

    def reserve(self, run_id: str) -> None:
        """Enter ``run_id`` in the thread's index as this turn's run, before its head is
        written (see the module docstring)."""
        if self.link is None or self.store is None or not self.store.supports_claims:
            return
        if _swap_index(self.store, self.link.thread, self.index, [*self.runs, run_id]) is None:
            raise ThreadBusyError(
                f"thread {self.link.thread} changed while turn {self.link.turn} started (its "
                f"index in store {self.store.location} is not what it was under the thread's "
                "lease); fix: start the turn again"
            )


def _takes_state(pipeline: Pipeline, thread: str, inputs: Mapping[str, Any]) -> bool:
    """Whether ``pipeline`` takes the thread's state, refusing what the thread cannot feed."""
    if STATE_INPUT not in pipeline.inputs:
        return False
    name = pipeline.name
    if STATE_INPUT in inputs:
        raise ThreadError(
            f"thread {thread} gives pipeline {name!r} its input 'state' (the previous turn's "
            "output 'state'); fix: leave 'state' out of the inputs"
        )
    tp = pipeline.inputs[STATE_INPUT]
    if not is_optional(tp):
        raise ThreadError(
            f"pipeline {name!r} takes input 'state' of type {describe(tp)}, which is not "
            "optional, but turn 1 of a thread gets None; fix: declare it optional: "
            f"p.input('state', {describe(tp)} | None)"
        )
    if STATE_INPUT not in pipeline.outputs:
        raise ThreadError(
            f"pipeline {name!r} takes input 'state' but has no output 'state' to give the next "
            "turn; fix: name one: p.output('state', NODE)"
        )
    return True


def _state_after(
    store: ArtifactStore, pipeline: Pipeline, thread: str, turn: int, last: RunHead
) -> Any:
    """Turn ``turn``'s recorded output ``state``, once it is known to read back as the same
    content through the input's type: the next turn's input key is then the output's key."""
    record = RunRecord.model_validate(store.get_value(last.root_hash or ""))
    key = record.outputs.get(STATE_INPUT)
    if key is None:
        raise ThreadError(
            f"thread {thread}: turn {turn} (run {last.run_id}, pipeline {last.pipeline!r}) has "
            f"no output 'state' to give pipeline {pipeline.name!r}; fix: continue the thread "
            "with a pipeline that takes no 'state', or start a new thread"
        )
    value = store.get_value(key)
    adapter: TypeAdapter[Any] = TypeAdapter(pipeline.inputs[STATE_INPUT])
    tp = describe(pipeline.inputs[STATE_INPUT])
    try:
        again = adapter.dump_python(adapter.validate_python(value), mode="json")
    except ValidationError as exc:
        raise ThreadError(
            f"thread {thread}: turn {turn}'s output 'state' (run {last.run_id}) does not fit "
            f"input 'state' ({tp}) of pipeline {pipeline.name!r}: {exc.errors()[0]['msg']}; "
            "fix: give input and output 'state' the same type"
        ) from None
    if digest(canonical_bytes(again)) != key:
        raise ThreadError(
            f"thread {thread}: turn {turn}'s output 'state' (run {last.run_id}) reads back as "
            f"other content through input 'state' ({tp}) of pipeline {pipeline.name!r}, so "
            "the turns would not be hash-linked; fix: give input and output 'state' the same "
            "type"
        )
    return value


def _unfinished(thread: str, turn: int, head: RunHead) -> ThreadError:
    run = head.run_id
    if head.status == "waiting":
        return ThreadError(
            f"thread {thread}: turn {turn} (run {run}) waits for an answer to its question; "
            f"fix: answer it (orch answer {run} KEY=VALUE, or orch.answer), which resumes it as "
            "the same turn, then start the next turn"
        )
    how = (
        "was interrupted (its process ended before the run did)"
        if head.status in ("running", "interrupted")
        else f"ended {head.status}"
    )
    return ThreadError(
        f"thread {thread}: turn {turn} (run {run}) {how}, so the next turn has no state to "
        f"start from; fix: resume it first (arun(pipeline, resume={run!r}), or orch run FILE "
        f"--resume {run}), then start the next turn"
    )


@asynccontextmanager
async def next_turn(
    store: ArtifactStore,
    pipeline: Pipeline,
    thread: str | None,
    inputs: Mapping[str, Any] | None,
    run_id: str,
    *,
    wait: bool,
) -> AsyncIterator[Turn]:
    """Hold thread ``thread``'s lease while the body runs its next turn as run ``run_id``
    (the body calls :meth:`Turn.reserve` before it writes the head). Refuses, before anything
    is written, when the thread's last turn did not end ok. With ``thread`` None, a plain run:
    no lease, ``inputs`` as given."""
    given = dict(inputs or {})
    if thread is None:
        yield Turn(None, given)
        return
    takes_state = _takes_state(pipeline, thread, given)
    async with _thread_lease(store, thread, run_id, wait=wait):
        index, runs, last = _settled(store, thread)
        turn = len(runs) + 1
        if last is not None and last.status != "ok":
            raise _unfinished(thread, turn - 1, last)
        if takes_state:
            given[STATE_INPUT] = (
                None if last is None else _state_after(store, pipeline, thread, turn - 1, last)
            )
        link = ThreadLink(
            thread,
            turn,
            None if last is None else last.run_id,
            None if last is None else last.root_hash,
        )
        yield Turn(link, given, store, index, runs)


def _settled(store: ArtifactStore, thread: str) -> tuple[bytes | None, list[str], RunHead | None]:
    """Under the thread's lease: the index brought up to its heads (an entry whose run never
    began dropped, a turn finished by a resume pointed at it), the run of each turn, and the
    last turn's head."""
    walk = _walk(store, thread)
    if walk.problems:
        raise ThreadError(walk.problems[0] + "; " + _INDEX_FIX)
    runs = [h.run_id for h in walk.heads]
    index = walk.raw
    if store.supports_claims and runs != walk.indexed:
        index = _swap_index(store, thread, walk.raw, runs)
        if index is None:
            raise ThreadBusyError(
                f"the index of thread {thread} in store {store.location} changed under its "
                "lease; fix: start the turn again"
            )
    return index, runs, walk.heads[-1] if walk.heads else None


@asynccontextmanager
async def resumed_turn(
    store: ArtifactStore, head: RunHead, run_id: str, *, wait: bool
) -> AsyncIterator[ThreadLink | None]:
    """For a resume (as run ``run_id``) of the run ``head`` is of: when that run is a turn of
    a thread, hold the thread's lease while the body runs, yield the link the resume records
    (the resumed run's: same thread and turn), and once the resume ended ok, point the turn
    at it in the thread's index. Otherwise yield None."""
    if head.thread is None or head.turn is None:
        yield None
        return
    link = ThreadLink.recorded(store, head.run_id)
    if link is None or (link.thread, link.turn) != (head.thread, head.turn):
        link = ThreadLink(head.thread, head.turn)
    async with _thread_lease(store, link.thread, run_id, wait=wait):
        yield link
        _point_turn(store, link, run_id)


def _point_turn(store: ArtifactStore, link: ThreadLink, run_id: str) -> None:
    """Name ``run_id`` for its turn in the index, once it ended ok (else the turn stays its
    earlier run's: the one to resume). A process killed before this leaves the index naming
    a run of the same lineage, which readers resolve the same way."""
    head = _head(store, run_id)
    if head is None or head.status != "ok" or not store.supports_claims:
        return
    for _ in range(3):  # under the lease nobody else writes it: a few tries, never a loop
        raw, runs = _read_index(store, link.thread)
        if len(runs) < link.turn or runs[link.turn - 1] == run_id:
            return
        runs[link.turn - 1] = run_id
        if _swap_index(store, link.thread, raw, runs) is not None:
            return


# -- verifying a thread --------------------------------------------------------------------


@dataclass
class ThreadReport:
    """What :func:`verify_thread` found."""

    thread: str
    turns: list[ThreadTurn]
    problems: list[str] = field(default_factory=list)
    """Each problem in words, naming the turn and the run."""
    runs_checked: int = 0
    links_checked: int = 0
    """Turns whose link to the previous turn (run, root hash, state) was checked."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Every turn ended ok."""
        return bool(self.turns) and all(t.status == "ok" for t in self.turns)

    def to_json(self) -> dict[str, Any]:
        return {
            "thread": self.thread,
            "ok": self.ok,
            "complete": self.complete,
            "turns": [dataclasses.asdict(t) for t in self.turns],
            "problems": self.problems,
            "runs_checked": self.runs_checked,
            "links_checked": self.links_checked,
        }


def _inputs_of(store: ArtifactStore, turn: ThreadTurn) -> dict[str, str] | None:
    """The input keys of a turn's run: its record's, or its run_start event's while it has
    none."""
    if turn.root_hash is not None:
        return RunRecord.model_validate(store.get_value(turn.root_hash)).inputs
    event = first_event(store, turn.run_id) or {}
    data = event.get("data")
    inputs = data.get("inputs") if isinstance(data, dict) else None
    return inputs if isinstance(inputs, dict) else None


def verify_thread(store: ArtifactStore, thread: str) -> ThreadReport:
    """Verify every turn's run (:func:`traces.verify_run`), that the index agrees with the
    heads it names, and that each turn is linked to the one before: its ``run_start`` names
    that turn's run and root hash, and its input ``state`` (when it takes one) is that turn's
    output ``state`` (None for turn 1). Every turn but the last must have ended ok."""
    thread = check_thread_id(thread)
    walk = _walk(store, thread)
    turns = walk.turns()
    report = ThreadReport(thread, turns, list(walk.problems))
    for t in turns:
        where = f"turn {t.turn} (run {t.run_id})"
        checked = verify_run(store, t.run_id)
        report.runs_checked += 1
        report.problems += [f"{where}: {p.subject}: {p.detail}" for p in checked.problems]
        if t.status != "ok" and t.turn < len(turns):
            report.problems.append(f"{where} ended {t.status}, but turn {t.turn + 1} follows it")
        report.problems += _link_problems(
            store, thread, t, turns[t.turn - 2] if t.turn > 1 else None
        )
        report.links_checked += 1
    return report


def _link_problems(
    store: ArtifactStore, thread: str, turn: ThreadTurn, before: ThreadTurn | None
) -> list[str]:
    where = f"turn {turn.turn} (run {turn.run_id})"
    link = ThreadLink.recorded(store, turn.run_id)
    expected = ThreadLink(
        thread,
        turn.turn,
        None if before is None else before.run_id,
        None if before is None else before.root_hash,
    )
    problems: list[str] = []
    if link != expected:
        problems.append(
            f"{where}: its run_start records the link {None if link is None else link.event_data()}"
            f", expected {expected.event_data()}"
        )
    inputs = _inputs_of(store, turn)
    if inputs is None:
        return [*problems, f"{where}: its inputs are not recorded"]
    key = inputs.get(STATE_INPUT)
    if key is None:
        return problems  # a pipeline that takes no state
    if before is None:
        if store.get_value(key) is not None:
            problems.append(f"{where}: turn 1 was given a state ({key}), not None")
        return problems
    if before.root_hash is None:
        return problems  # reported: the turn before did not end ok
    given = RunRecord.model_validate(store.get_value(before.root_hash)).outputs.get(STATE_INPUT)
    if key != given:
        problems.append(
            f"{where}: its input 'state' is {key}, but turn {before.turn}'s output 'state' "
            f"is {given}"
        )
    return problems
