"""The runs list of a store: which runs match a filter, a page at a time, newest first.

A runs list (``orch ui``, ``orch runs``) filters on what a run's head says (pipeline, status,
seed, when it started) and on the text of its routing decisions (their reasons and chosen
values: "escalated", a model's name). :func:`list_runs` answers it through the index the store
keeps (:meth:`~traces.ArtifactStore.run_index`); this module's :class:`ScanIndex` stands in for
one in a store that keeps none (memory, overlay, a plugin's): it reads every head and every finished
run's decisions per query, which is right for a small store and what an index must agree with.

An index is derived data, never a record: nothing in it is hashed or verified, a run's page
shows what its records say, and an index can always be rebuilt from the records.

Pages are ordered by ``started_at`` descending, then ``run_id`` descending (a total order),
and continued with a cursor (keyset pagination): a page stays cheap however deep it is, and a
run written meanwhile never shifts the next page.
"""

from __future__ import annotations

import abc
import base64
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from ._records import Decision, RunHead, RunRecord, StepRecord
from ._store import ArtifactStore
from .errors import IntegrityError

__all__ = [
    "IndexedRun",
    "RunFilter",
    "RunIndex",
    "RunPage",
    "ScanIndex",
    "decision_text",
    "list_runs",
    "read_decisions",
    "rebuild_index",
]

#: What reading a run's head or records raises when they are damaged or missing: such a run is
#: left out of every runs list (verification is what reports it).
UNREADABLE = (ValidationError, orjson.JSONDecodeError, KeyError, ValueError, IntegrityError)

#: Most runs a page holds.
MAX_PAGE = 500


@dataclass(frozen=True)
class IndexedRun:
    """What a runs list shows of a run, and filters on (from its head and decisions)."""

    run_id: str
    pipeline: str
    status: str
    seed: int
    started_at: float
    finished_at: float | None
    root_hash: str | None
    thread: str | None
    turn: int | None
    lineage: str | None
    decisions: int
    """How many routing decisions the run's record holds (0 until it has ended)."""
    decision_text: str
    """Its decisions' routers, reasons and chosen values, one line each (:func:`decision_text`)."""


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list shows; None matches anything."""

    pipeline: str | None = None
    status: str | None = None
    seed: int | None = None
    started_from: float | None = None
    """Started at or after this (seconds since the epoch)."""
    started_before: float | None = None
    """Started before this."""
    text: str | None = None
    """A substring, case-insensitive, of the run's :attr:`IndexedRun.decision_text`."""

    def matches(self, run: IndexedRun) -> bool:
        """Whether ``run`` passes this filter (what every index must agree with)."""
        if self.pipeline is not None and run.pipeline != self.pipeline:
            return False
        if self.status is not None and run.status != self.status:
            return False
        if self.seed is not None and run.seed != self.seed:
            return False
        if self.started_from is not None and run.started_at < self.started_from:
            return False
        if self.started_before is not None and run.started_at >= self.started_before:
            return False
        return not self.text or self.text.casefold() in run.decision_text.casefold()


@dataclass(frozen=True)
class RunPage:
    """One page of a runs list."""

    runs: list[IndexedRun]
    next: str | None
    """The cursor of the next page, or None when this is the last."""


def decision_text(decisions: Iterable[Decision]) -> str:
    """The text a runs list searches: per decision, its router, chosen values and reason."""
    return "\n".join(f"{d.router}: {', '.join(d.chosen)}: {d.reason}" for d in decisions)


def _key(run: IndexedRun) -> tuple[float, str]:
    return (run.started_at, run.run_id)


def encode_cursor(run: IndexedRun) -> str:
    """The cursor that continues a list after ``run``."""
    raw = orjson.dumps([run.started_at, run.run_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(started_at, run_id)`` of a cursor; ValueError naming the fix when it is not one."""
    parsed: object = None
    with contextlib.suppress(ValueError, orjson.JSONDecodeError):
        parsed = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    match parsed:
        case [int() | float() as started, str() as run_id] if not isinstance(started, bool):
            return float(started), run_id
    raise ValueError(
        f"{cursor[:40]!r} is not a page cursor of a runs list; fix: follow the list's own "
        "next-page link, or start from the first page"
    )


class RunIndex(abc.ABC):
    """A store's runs list (see the module docstring)."""

    @abc.abstractmethod
    def page(self, where: RunFilter, *, limit: int = 50, after: str | None = None) -> RunPage:
        """The runs matching ``where``, newest first, ``limit`` at most, continuing after the
        cursor ``after`` (None: from the newest)."""

    @abc.abstractmethod
    def count(self, where: RunFilter) -> int:
        """How many runs match ``where``."""

    @abc.abstractmethod
    def pipelines(self) -> list[str]:
        """The pipeline names of the store's runs, sorted."""

    def rebuild(self) -> None:  # noqa: B027 - an index that keeps nothing has nothing to redo
        """Drop what this index derived and derive it again from the store's heads and
        records (see :func:`rebuild_index`)."""

    def warm(self) -> None:  # noqa: B027 - an index that keeps nothing has nothing to prepare
        """Do now the one-off work that the first queries would otherwise do (catch up with
        the store's heads, read every run's decisions for text search), so that a server's
        first runs page and first text filter answer as fast as later ones. Changes no
        result; safe beside concurrent queries."""


def read_decisions(store: ArtifactStore, root_hash: str) -> list[Decision]:
    """The decisions of the run whose record is ``root_hash``, in step order (raises one of
    :data:`UNREADABLE` when a record is damaged or missing)."""
    record = RunRecord.model_validate(store.get_value(root_hash))
    steps = store.get_many([key for _, key in record.steps])
    keys = [k for raw in steps for k in StepRecord.model_validate_json(raw).decisions]
    return [Decision.model_validate_json(raw) for raw in store.get_many(keys)]


def indexed_run(store: ArtifactStore, head: RunHead, *, decisions: bool = True) -> IndexedRun:
    """A run's entry from its head and, once it has ended, its record's decisions (unless
    ``decisions`` is False: then none, and the records are not read)."""
    read = decisions and head.root_hash is not None
    found = read_decisions(store, head.root_hash) if read and head.root_hash else []
    return IndexedRun(
        run_id=head.run_id,
        pipeline=head.pipeline,
        status=head.status,
        seed=head.seed,
        started_at=head.started_at,
        finished_at=head.finished_at,
        root_hash=head.root_hash,
        thread=head.thread,
        turn=head.turn,
        lineage=head.lineage,
        decisions=len(found),
        decision_text=decision_text(found),
    )


class ScanIndex(RunIndex):
    """The index of a store that keeps none: every head (and decisions) read per query. A run
    whose head or records cannot be read is left out here; verification reports it."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def _runs(self) -> Iterator[IndexedRun]:
        for run_id in self.store.run_ids():
            raw = self.store.read_run_head(run_id)
            if raw is None:
                continue
            try:
                yield indexed_run(self.store, RunHead.model_validate(orjson.loads(raw)))
            except UNREADABLE:
                continue

    def page(self, where: RunFilter, *, limit: int = 50, after: str | None = None) -> RunPage:
        limit = _check_limit(limit)
        start = decode_cursor(after) if after is not None else None
        runs = sorted((r for r in self._runs() if where.matches(r)), key=_key, reverse=True)
        if start is not None:
            runs = [r for r in runs if _key(r) < start]
        more = len(runs) > limit
        runs = runs[:limit]
        return RunPage(runs, encode_cursor(runs[-1]) if more else None)

    def count(self, where: RunFilter) -> int:
        return sum(1 for r in self._runs() if where.matches(r))

    def pipelines(self) -> list[str]:
        return sorted({r.pipeline for r in self._runs()})


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"page limit is {limit!r}; fix: give 1 to {MAX_PAGE}")
    return limit


def list_runs(
    store: ArtifactStore,
    where: RunFilter | None = None,
    *,
    limit: int = 50,
    after: str | None = None,
) -> RunPage:
    """A page of ``store``'s runs matching ``where`` (see the module docstring)."""
    index = store.run_index() or ScanIndex(store)
    return index.page(where or RunFilter(), limit=limit, after=after)


def rebuild_index(store: ArtifactStore) -> int:
    """Rebuild ``store``'s runs index from its heads and records (nothing else changes: the
    index is derived data) and return how many runs it lists. A store that keeps no index
    (:meth:`~traces.ArtifactStore.run_index` None) has nothing to rebuild."""
    index = store.run_index()
    if index is not None:
        index.rebuild()
    return (index or ScanIndex(store)).count(RunFilter())
