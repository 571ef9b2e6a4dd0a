"""Effects: every call a step makes to the outside world, recorded, replayed or resumed.

An agent calls a model or a tool through :meth:`orch.Context.effect`. What happens depends on
the run's mode:

* **record** (the default): the call is made; the canonical request and the response are
  stored as artifacts and an :class:`~traces._records.EffectRecord` ties them to the step at
  ``(step id, index)``;
* **replay**: nothing is called. The response recorded at the same ``(step id, index)`` of
  an earlier run is served, provided the new request is byte-for-byte the recorded one;
  otherwise the step stops with a :class:`~orch.errors.ReplayDivergenceError` naming the
  step, the effect, both request hashes and the differing fields;
* **resume**: recorded effects of the crashed run, and of every run of its lineage, are
  served the same way, and any effect none of them finished is made live, so no completed
  effect is issued twice.

This module holds the data: the source of recorded effects, and divergences with their
field-level diffs (:func:`traces._diff.field_diff`); the errors are
:class:`~orch.errors.ReplayDivergenceError` and :class:`~orch.errors.RecordedEffectError`.
:mod:`orch._effect_path` decides, effect by effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from traces import (
    ArtifactStore,
    EffectRecord,
    FieldChange,
    RunRecord,
    StepRecord,
    chained_events,
    load_run_head,
)

__all__ = [
    "Divergence",
    "EffectSource",
    "RunMode",
]

RunMode = Literal["record", "replay", "resume"]


@dataclass(frozen=True)
class Divergence:
    """Where a replay stopped matching its record."""

    step_id: str
    index: int
    kind: Literal["request-changed", "unexpected-effect", "missing-effect"]
    target: str = ""
    expected_request: str | None = None
    actual_request: str | None = None
    changes: tuple[FieldChange, ...] = field(default=())

    def describe(self) -> str:
        where = f"step {self.step_id!r}, effect #{self.index}"
        if self.kind == "request-changed":
            head = (
                f"{where} ({self.target}): the request changed: recorded "
                f"{self.expected_request}, now {self.actual_request}"
            )
            return head + "".join(f"\n    {c.describe()}" for c in self.changes)
        if self.kind == "unexpected-effect":
            return (
                f"{where} ({self.target}): the step now makes an effect the record does not "
                f"have (request {self.actual_request})"
            )
        return (
            f"{where}: the record has this effect ({self.target}, request "
            f"{self.expected_request}) but the step no longer makes it"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "index": self.index,
            "kind": self.kind,
            "target": self.target,
            "expected_request": self.expected_request,
            "actual_request": self.actual_request,
            "changes": [c.to_json() for c in self.changes],
        }


class EffectSource:
    """The recorded effects of one earlier run, or of a whole lineage, by (step id, index)."""

    def __init__(self, run_id: str, records: Iterable[tuple[str, EffectRecord]]) -> None:
        self.run_id = run_id
        self._by_slot: dict[tuple[str, int], tuple[str, EffectRecord]] = {}
        self._origin: dict[tuple[str, int], str] = {}
        self._count: dict[str, int] = {}
        for key, rec in records:
            self._add(run_id, key, rec)

    def _add(self, run_id: str, key: str, rec: EffectRecord) -> None:
        slot = (rec.step_id, rec.index)
        found = self._by_slot.get(slot)
        # The first record of a slot wins, except that an ok one replaces a failure: a
        # later member of a lineage made again what an earlier one failed.
        if found is None or (found[1].status != "ok" and rec.status == "ok"):
            self._by_slot[slot] = (key, rec)
            self._origin[slot] = run_id
        self._count[rec.step_id] = max(self._count.get(rec.step_id, 0), rec.index + 1)

    def get(self, step_id: str, index: int) -> tuple[str, EffectRecord] | None:
        return self._by_slot.get((step_id, index))

    def origin(self, step_id: str, index: int) -> str:
        """The run whose record holds the effect at ``(step_id, index)``."""
        return self._origin.get((step_id, index), self.run_id)

    def count(self, step_id: str) -> int:
        """How many effects the recorded step made."""
        return self._count.get(step_id, 0)

    def __len__(self) -> int:
        return len(self._by_slot)

    @classmethod
    def merged(cls, run_id: str, sources: Iterable[EffectSource]) -> EffectSource:
        """One source over several runs' records (a lineage, the first run first): each
        slot answered by the first run that finished it."""
        out = cls(run_id, ())
        for source in sources:
            for slot, (key, rec) in source._by_slot.items():
                out._add(source._origin.get(slot, source.run_id), key, rec)
        return out

    @classmethod
    def from_run(cls, store: ArtifactStore, run_id: str) -> EffectSource:
        """Every effect the run recorded: from its step records when it finished, else from
        the ``effect`` events of its intact log (a crashed run)."""
        head = load_run_head(store, run_id)
        keys: list[str] = []
        if head.root_hash is not None:
            record = RunRecord.model_validate(store.get_value(head.root_hash))
            for _, step_key in record.steps:
                keys.extend(StepRecord.model_validate(store.get_value(step_key)).effects)
        else:
            for event in chained_events(store.read_events(run_id)):
                if event.get("type") == "effect":
                    keys.append(event["data"]["record"])
        return cls(run_id, ((k, EffectRecord.model_validate(store.get_value(k))) for k in keys))
