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

This module holds the data: the source of recorded effects, the reader that takes a recorded
run's records from its store (:class:`RunReader`), and divergences with their field-level
diffs (:func:`traces._diff.field_diff`); the errors are
:class:`~orch.errors.ReplayDivergenceError` and :class:`~orch.errors.RecordedEffectError`.
:mod:`orch._effect_path` decides, effect by effect.

Reading is done once per record: every record is fetched by its key (so verified against it
by the store) and decoded once per reader, and the effects of a step are decoded only when
that step first asks for them (a resume that takes most steps from the record never decodes
theirs). A record's bytes are its hash, so a record read and checked once needs no second
check; this module must never decode a record it did not get through ``store.get``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from traces import (
    ArtifactStore,
    EffectRecord,
    ErrorInfo,
    FieldChange,
    RunHead,
    RunRecord,
    StepRecord,
    chained_events,
    load_run_head,
)

__all__ = [
    "Divergence",
    "EffectSource",
    "RecordedEffect",
    "RecordedStep",
    "RunMode",
    "RunReader",
]

RunMode = Literal["record", "replay", "resume"]

_STEP_STATUSES: Final = frozenset({"ok", "failed", "skipped", "cancelled", "waiting"})
_STEP_FORMAT: Final = StepRecord.model_fields["format"].default
_EFFECT_FORMAT: Final = EffectRecord.model_fields["format"].default
_EFFECT_FIELDS: Final = frozenset(EffectRecord.model_fields)


@dataclass(frozen=True, slots=True)
class RecordedStep:
    """What replay and resume need of a step record."""

    step_id: str
    status: str
    output: str | None
    effects: tuple[str, ...]
    children: tuple[str, ...]


def _is_keys(value: Any) -> bool:
    return type(value) is list and all(type(k) is str for k in value)


def recorded_step(data: bytes) -> RecordedStep:
    """Decode a step record's bytes (got from the store, so checked against their key).

    The fields read here are checked for their types; a record that does not pass takes
    :class:`~traces.StepRecord`'s full validation, which names what is wrong. The rest of a
    record is not validated again: its bytes are its hash (``orch verify`` checks records
    against their schema)."""
    raw = orjson.loads(data)
    if type(raw) is dict and raw.get("format") == _STEP_FORMAT:
        step_id, status, output = raw.get("step_id"), raw.get("status"), raw.get("output")
        effects: Any = raw.get("effects")
        children: Any = raw.get("children")
        if (
            type(step_id) is str
            and status in _STEP_STATUSES
            and (output is None or type(output) is str)
            and _is_keys(effects)
            and _is_keys(children)
        ):
            return RecordedStep(step_id, status, output, tuple(effects), tuple(children))
    rec = StepRecord.model_validate(raw)
    effects, children = tuple(rec.effects), tuple(rec.children)
    return RecordedStep(rec.step_id, rec.status, rec.output, effects, children)


@dataclass(slots=True)  # never changed once made; not frozen: a frozen __init__ costs 4x
class RecordedEffect:
    """An effect record as replay and resume serve it: the fields of
    :class:`~traces.EffectRecord`, decoded once."""

    step_id: str
    index: int
    kind: str
    target: str
    request: str
    response: str | None
    status: str
    error: ErrorInfo | None
    usage: Mapping[str, int]
    cost_usd: float | None

    @classmethod
    def of(cls, rec: EffectRecord) -> RecordedEffect:
        return cls(
            rec.step_id,
            rec.index,
            rec.kind,
            rec.target,
            rec.request,
            rec.response,
            rec.status,
            rec.error,
            rec.usage,
            rec.cost_usd,
        )


def _is_str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _is_plain_error(error: Any) -> bool:
    """Whether an effect record's ``error`` field is in the form the engine writes."""
    return error is None or (
        type(error) is dict
        and len(error) == 2
        and type(error.get("type")) is str
        and type(error.get("message")) is str
    )


def recorded_effect(data: bytes) -> RecordedEffect:
    """Decode an effect record's bytes (got from the store, so checked against their key).

    A record in the form the engine writes (every field of :class:`~traces.EffectRecord`,
    each of its type) is taken as it is; anything else takes the model's full validation,
    which names what is wrong."""
    raw = orjson.loads(data)
    if type(raw) is dict and raw.keys() == _EFFECT_FIELDS and raw["format"] == _EFFECT_FORMAT:
        index, usage, cost, error = raw["index"], raw["usage"], raw["cost_usd"], raw["error"]
        if (
            type(index) is int
            and type(raw["step_id"]) is str
            and type(raw["kind"]) is str
            and type(raw["target"]) is str
            and type(raw["request"]) is str
            and _is_str_or_none(raw["response"])
            and raw["status"] in ("ok", "failed")
            and _is_plain_error(error)
            and type(usage) is dict
            and all(type(v) is int for v in usage.values())
            and (cost is None or type(cost) is float)
        ):
            return RecordedEffect(
                raw["step_id"],
                index,
                raw["kind"],
                raw["target"],
                raw["request"],
                raw["response"],
                raw["status"],
                None if error is None else ErrorInfo(type=error["type"], message=error["message"]),
                usage,
                cost,
            )
    return RecordedEffect.of(EffectRecord.model_validate(raw))


class RunReader:
    """Recorded runs of one store, read for a replay or a resume: each head, run record, step
    record and effect record is fetched (verified against its key) and decoded once, and
    each run's event log read and its chain checked once."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._heads: dict[str, RunHead] = {}
        self._logs: dict[str, list[dict[str, Any]]] = {}
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[str, RecordedStep] = {}
        self._effects: dict[str, RecordedEffect] = {}

    def head(self, run_id: str) -> RunHead:
        head = self._heads.get(run_id)
        if head is None:
            head = self._heads[run_id] = load_run_head(self.store, run_id)
        return head

    def log(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events that form an unbroken chain from the first (a torn or edited
        line ends it), parsed."""
        events = self._logs.get(run_id)
        if events is None:
            events = self._logs[run_id] = chained_events(self.store.read_events(run_id))
        return events

    def start(self, run_id: str) -> dict[str, Any] | None:
        """The run's first event (its ``run_start``) when intact, without checking the rest
        of the log (unless it was read already)."""
        events = self._logs.get(run_id)
        if events is None:
            events = chained_events(self.store.read_events(run_id)[:1])
        return events[0] if events else None

    def run_record(self, key: str) -> RunRecord:
        record = self._runs.get(key)
        if record is None:
            record = self._runs[key] = RunRecord.model_validate_json(self.store.get(key))
        return record

    def step(self, key: str) -> RecordedStep:
        step = self._steps.get(key)
        if step is None:
            step = self._steps[key] = recorded_step(self.store.get(key))
        return step

    def steps(self, keys: Sequence[str]) -> list[RecordedStep]:
        """The step records under ``keys``, those not read yet fetched together (in one pass
        where the store can: :meth:`traces.ArtifactStore.get_many`)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._steps]
        for key, data in zip(missing, self.store.get_many(missing), strict=True):
            self._steps[key] = recorded_step(data)
        return [self._steps[k] for k in keys]

    def effect(self, key: str) -> RecordedEffect:
        rec = self._effects.get(key)
        if rec is None:
            rec = self._effects[key] = recorded_effect(self.store.get(key))
        return rec

    def effects(self, keys: Sequence[str]) -> None:
        """Read the effect records under ``keys`` not read yet, together (as :meth:`steps`)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._effects]
        for key, data in zip(missing, self.store.get_many(missing), strict=True):
            self._effects[key] = recorded_effect(data)


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
    """The recorded effects of one earlier run, or of a whole lineage, by (step id, index).

    A source made by :meth:`from_run` decodes a step's effect records when that step is
    first asked about, in the order eager decoding would have added them."""

    def __init__(
        self, run_id: str, records: Iterable[tuple[str, EffectRecord | RecordedEffect]] = ()
    ) -> None:
        self.run_id = run_id
        self._by_slot: dict[tuple[str, int], tuple[str, RecordedEffect]] = {}
        self._origin: dict[tuple[str, int], str] = {}
        self._count: dict[str, int] = {}
        self._pending: dict[str, list[tuple[str, RunReader, bool, str]]] = {}
        """Step id -> what to decode when it is first asked about, in order: (run id, its
        reader, whether the key names the step's record (else one of its effect records),
        key)."""
        for key, rec in records:
            plain = rec if isinstance(rec, RecordedEffect) else RecordedEffect.of(rec)
            self._add(run_id, key, plain)

    def _expect(self, run_id: str, reader: RunReader, step_id: str, key: str, step: bool) -> None:
        self._pending.setdefault(step_id, []).append((run_id, reader, step, key))

    def _resolve(self, step_id: str) -> None:
        for run_id, reader, is_step, key in self._pending.pop(step_id):
            effects = reader.step(key).effects if is_step else (key,)
            for effect_key in effects:
                # Added under the record's own (step id, index), as eager decoding did.
                self._add(run_id, effect_key, reader.effect(effect_key))

    def _add(self, run_id: str, key: str, rec: RecordedEffect) -> None:
        slot = (rec.step_id, rec.index)
        found = self._by_slot.get(slot)
        # The first record of a slot wins, except that an ok one replaces a failure: a
        # later member of a lineage made again what an earlier one failed.
        if found is None or (found[1].status != "ok" and rec.status == "ok"):
            self._by_slot[slot] = (key, rec)
            self._origin[slot] = run_id
        self._count[rec.step_id] = max(self._count.get(rec.step_id, 0), rec.index + 1)

    def get(self, step_id: str, index: int) -> tuple[str, RecordedEffect] | None:
        if step_id in self._pending:
            self._resolve(step_id)
        return self._by_slot.get((step_id, index))

    def origin(self, step_id: str, index: int) -> str:
        """The run whose record holds the effect at ``(step_id, index)``."""
        if step_id in self._pending:
            self._resolve(step_id)
        return self._origin.get((step_id, index), self.run_id)

    def count(self, step_id: str) -> int:
        """How many effects the recorded step made."""
        if step_id in self._pending:
            self._resolve(step_id)
        return self._count.get(step_id, 0)

    def __len__(self) -> int:
        self.load()
        return len(self._by_slot)

    def load(self, skip: Iterable[str] = ()) -> EffectSource:
        """Decode now every step's records but those of the steps in ``skip`` (steps a
        resume takes from the record, which never ask), so that a missing or damaged record
        stops the run before it starts rather than inside a step; return self."""
        skipped = set(skip)
        wanted = [step_id for step_id in self._pending if step_id not in skipped]
        # Every record wanted, read in one pass per reader before any is added.
        by_reader: dict[int, tuple[RunReader, list[str], list[str]]] = {}
        for step_id in wanted:
            for _, reader, is_step, key in self._pending[step_id]:
                _, step_keys, effect_keys = by_reader.setdefault(id(reader), (reader, [], []))
                (step_keys if is_step else effect_keys).append(key)
        for reader, step_keys, effect_keys in by_reader.values():
            effect_keys.extend(k for step in reader.steps(step_keys) for k in step.effects)
            reader.effects(effect_keys)
        for step_id in wanted:
            if step_id in self._pending:  # resolving one step may add to another
                self._resolve(step_id)
        return self

    @classmethod
    def merged(cls, run_id: str, sources: Iterable[EffectSource]) -> EffectSource:
        """One source over several runs' records (a lineage, the first run first): each
        slot answered by the first run that finished it."""
        out = cls(run_id, ())
        for source in sources:
            for slot, (key, rec) in source._by_slot.items():
                if slot[0] in out._pending:  # an earlier run's records of the step go first
                    out._resolve(slot[0])
                out._add(source._origin.get(slot, source.run_id), key, rec)
            for step_id, pending in source._pending.items():
                out._pending.setdefault(step_id, []).extend(pending)
        return out

    @classmethod
    def from_run(
        cls, store: ArtifactStore, run_id: str, *, reader: RunReader | None = None
    ) -> EffectSource:
        """Every effect the run recorded: from its step records when it finished, else from
        the ``effect`` events of its intact log (a crashed run). ``reader`` shares what was
        read already (a resume reads the same step records to reuse them)."""
        reader = RunReader(store) if reader is None else reader
        head = reader.head(run_id)
        source = cls(run_id)
        if head.root_hash is not None:
            for step_id, step_key in reader.run_record(head.root_hash).steps:
                source._expect(run_id, reader, step_id, step_key, True)
        else:
            for event in reader.log(run_id):
                if event.get("type") == "effect":
                    step_id = event.get("step", "")
                    source._expect(run_id, reader, step_id, event["data"]["record"], False)
        return source
