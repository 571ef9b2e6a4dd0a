"""What a batch gives back: one :class:`ItemResult` per input, in input order, and a summary.

Results arrive in whatever order the runs end (and, on a cluster, the chunks come back in);
:class:`BatchResult` holds them sorted by input index, and :func:`apply_in_order` folds them
into router state in that order, so that the state (and its version hash) is the same for
every placement of the batch. Nothing here is hashed into a record: the wall-clock seconds
are metadata.

This module must never import ``agents`` or ``routers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orch.batch._spec import BatchItem, BatchSpec
from orch.errors import ExecutorError
from traces import mask_location

__all__ = ["BatchResult", "ItemResult", "apply_in_order", "in_input_order"]

S = TypeVar("S")


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one input: its finished run, or why there is none."""

    index: int
    run_id: str
    """The run that holds this input's result (the last attempt's id)."""
    status: str
    """``ok`` or ``failed`` (the run's status), or ``error``: no finished run (see ``error``)."""
    root_hash: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    """The run's outputs as canonical JSON values (empty unless ok)."""
    attempts: int = 1
    """Runs made for this input: 1, plus one per interrupted attempt resumed."""
    resumed_from: str | None = None
    """The interrupted attempt the finished run resumed, if any."""
    from_store: bool = False
    """The run had already finished when this submission looked (nothing was run)."""
    error: str | None = None

    @property
    def retried(self) -> bool:
        """True when an attempt was interrupted and the run resumed under a new id."""
        return self.attempts > 1

    @classmethod
    def failure(cls, item: BatchItem, message: str) -> ItemResult:
        return cls(item.index, item.run_id, "error", None, attempts=0, error=message)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "run_id": self.run_id,
            "status": self.status,
            "root_hash": self.root_hash,
            "outputs": self.outputs,
            "attempts": self.attempts,
            "retried": self.retried,
            "resumed_from": self.resumed_from,
            "from_store": self.from_store,
            "error": self.error,
        }


@dataclass(frozen=True)
class BatchResult:
    """Every input's result, in input order, and where the runs are."""

    batch_id: str
    pipeline: str
    spec_hash: str
    store: str
    """The store's location as it may be shown (a password in it masked)."""
    executor: str
    items: tuple[ItemResult, ...]
    seconds: float = 0.0
    """Wall-clock time of the batch (metadata: nothing hashed depends on it)."""
    store_reconnects: int | None = None
    """Connections to the store opened again after one was lost while the batch ran (the
    PostgreSQL store retries the operation, and logs each retry as a warning on the
    ``traces.pgstore`` logger); None when the store does not count them. On Dask, the sum
    over the workers that were still alive at the end."""
    notices: tuple[str, ...] = ()
    """The warnings logged while the batch ran, wherever it ran (a store's retry, a lease
    taken over from a dead worker), each naming its process on Dask (see
    :mod:`traces._notices`)."""

    @classmethod
    def of(
        cls,
        batch: BatchSpec,
        executor: str,
        results: Sequence[ItemResult],
        seconds: float,
        store_reconnects: int | None = None,
        notices: Sequence[str] = (),
    ) -> BatchResult:
        return cls(
            batch.batch_id,
            batch.pipeline,
            batch.spec_hash,
            mask_location(batch.store),
            executor,
            tuple(in_input_order(results)),
            seconds,
            store_reconnects,
            tuple(notices),
        )

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.items)

    def with_status(self, status: str) -> list[ItemResult]:
        return [r for r in self.items if r.status == status]

    @property
    def retried(self) -> list[ItemResult]:
        return [r for r in self.items if r.retried]

    def summary(self) -> dict[str, Any]:
        counts = {s: len(self.with_status(s)) for s in ("ok", "failed", "error")}
        return {
            "runs": len(self.items),
            **counts,
            "retried": [r.run_id for r in self.retried],
            "from_store": sum(r.from_store for r in self.items),
            "failed_runs": [r.run_id for r in self.items if r.status != "ok"],
            "store_reconnects": self.store_reconnects,
            "notices": list(self.notices),
            "seconds": round(self.seconds, 3),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "pipeline": self.pipeline,
            "spec_hash": self.spec_hash,
            "store": self.store,
            "executor": self.executor,
            "summary": self.summary(),
            "runs": [r.to_json() for r in self.items],
        }

    def apply_in_order(self, fold: Callable[[S, ItemResult], S], initial: S) -> S:
        """:func:`apply_in_order` over this batch's results."""
        return apply_in_order(self.items, fold, initial)


def in_input_order(results: Iterable[ItemResult]) -> list[ItemResult]:
    """``results`` sorted by input index; every index from 0 must be there exactly once."""
    ordered = sorted(results, key=lambda r: r.index)
    for expected, r in enumerate(ordered):
        if r.index != expected:
            what = "twice" if r.index < expected else f"but input #{expected} is missing"
            raise ExecutorError(
                f"the results hold input #{r.index} {what}; fix: pass each result of the "
                "batch exactly once"
            )
    return ordered


def apply_in_order(
    results: Iterable[ItemResult], fold: Callable[[S, ItemResult], S], initial: S
) -> S:
    """Fold every run's feedback into ``initial`` in input order, whatever order the runs
    finished (or the results arrived) in, so the final router state (and its version hash)
    is the same for every placement of the batch."""
    state = initial
    for result in in_input_order(results):
        state = fold(state, result)
    return state
