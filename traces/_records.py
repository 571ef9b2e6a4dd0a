"""The record schema: step records, run records, decisions, run heads.

Records are frozen pydantic models; a change is a new record with a new hash. What goes into
a hashed record must be a function of the pipeline, its inputs, the seed and the recorded
effects only: never wall-clock time, host names, completion order or dict order. Wall-clock
facts live in :class:`RunHead` and the event log, outside the root hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ._canonical import canonical_bytes, digest
from ._merkle import merkle_root

__all__ = [
    "RUN_FORMAT",
    "STEP_FORMAT",
    "AgentRef",
    "Decision",
    "EFFECT_FORMAT",
    "EffectRecord",
    "ErrorInfo",
    "RunHead",
    "RunRecord",
    "RunStatus",
    "STATUS_RANK",
    "StepRecord",
    "StepStatus",
    "RunOutcome",
    "effect_record_bytes",
    "step_leaf",
    "step_record_bytes",
    "steps_root",
]

STEP_FORMAT: Final = "orch.step/1"
EFFECT_FORMAT: Final = "orch.effect/1"
RUN_FORMAT: Final = "orch.run/1"

StepStatus = Literal["ok", "failed", "skipped", "cancelled", "waiting"]
RunOutcome = Literal["ok", "failed", "cancelled", "waiting"]
"""How a run that reached its end ended: the status its run record holds. ``waiting``: a step
asked a person a question (``ctx.ask``) and the run stopped until an answer resumes it."""
RunStatus = Literal["running", "ok", "failed", "cancelled", "waiting", "interrupted", "superseded"]
"""A run's lifecycle status, one at a time: ``running`` while its process works on it (or
until another process finds it gone), an outcome once it ended, ``interrupted`` once a
resume took over from a process that died, ``superseded`` once a resume of its lineage
finished ok (``superseded_by`` names that run)."""

STATUS_RANK: Final[dict[str, int]] = {
    "running": 0,
    "interrupted": 1,
    "ok": 2,
    "failed": 2,
    "cancelled": 2,
    "waiting": 2,
    "superseded": 3,
}
"""How far along its lifecycle a run with each status is: a head whose status ranks below
its ledger's latest fell behind it (a process died between the two writes)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class AgentRef(BaseModel):
    """Which agent ran a step: enough to tell whether the code or config changed."""

    model_config = _FROZEN
    name: str
    version: str
    config_hash: str


class ErrorInfo(BaseModel):
    """A failure as recorded: exception type and message (no traceback: it names paths)."""

    model_config = _FROZEN
    type: str
    message: str


class Decision(BaseModel):
    """A routing choice with its evidence, stored as an artifact and referenced by its step."""

    model_config = _FROZEN
    router: str
    """Name of the router or agent that decided."""
    router_version: str
    candidates: list[str]
    """Every option that was considered, in the router's order."""
    scores: dict[str, Any] = Field(default_factory=dict)
    """Score (or score breakdown) per candidate."""
    chosen: list[str]
    """The chosen option(s)."""
    reason: str
    """Why the chosen option won, in words."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Parameters in force (thresholds, temperatures, k ...)."""
    state_version: str | None = None
    """Key of the learned-state artifact read, for routers that learn."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Anything else that explains the choice (σ, pheromones, reasoning text ...)."""


class EffectRecord(BaseModel):
    """One call to the outside world (a model or a tool) made by a step, as recorded.

    ``request`` is the key of the canonical request: its hash. Replay serves ``response`` to
    the step that makes the same request at the same (step id, index), and reports a
    divergence when the request differs. Latency is wall-clock time and lives in the event
    log; tokens and cost are functions of the response and belong here.
    """

    model_config = _FROZEN
    format: Literal["orch.effect/1"] = EFFECT_FORMAT
    step_id: str
    index: int
    """Position among the step's effects: 0, 1, 2 ... in the order the step made them."""
    kind: str
    """What was called: ``model``, ``tool`` ..."""
    target: str
    """Which one: a model id, a tool name."""
    request: str
    """Key of the canonical request artifact."""
    response: str | None = None
    """Key of the response artifact (None when the call failed)."""
    status: Literal["ok", "failed"]
    error: ErrorInfo | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    """Token counts and the like, as the provider reported them."""
    cost_usd: float | None = None


class StepRecord(BaseModel):
    """What one step did. Its hash is a leaf of the run's Merkle tree."""

    model_config = _FROZEN
    format: Literal["orch.step/1"] = STEP_FORMAT
    step_id: str
    node: str
    """Pipeline node the step belongs to (for a child step: its top-level ancestor's node)."""
    parent: str | None = None
    agent: AgentRef
    input: str | None = None
    """Key of the input artifact (None when the step never got its input)."""
    output: str | None = None
    effects: list[str] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    """Step ids of child calls, in call-index order."""
    status: StepStatus
    error: ErrorInfo | None = None
    reason: str | None = None
    """Why a step was skipped or cancelled."""
    logical_time: int
    """Causal depth: 0 for a step with no producers, else 1 + the deepest producer's."""


class RunRecord(BaseModel):
    """The hashed summary of a run; ``root_hash`` is the key of its canonical bytes."""

    model_config = _FROZEN
    format: Literal["orch.run/1"] = RUN_FORMAT
    pipeline: str
    spec_hash: str
    """Key of the pipeline spec artifact."""
    inputs: dict[str, str]
    """Pipeline input name -> key of its value."""
    seed: int
    steps: list[tuple[str, str]]
    """(step id, step record key), sorted by step id."""
    steps_root: str
    """Merkle root over :func:`step_leaf` of ``steps``, in order."""
    outputs: dict[str, str]
    """Pipeline output name -> key of its value."""
    status: RunOutcome
    error: ErrorInfo | None = None
    plugins: dict[str, str] = Field(default_factory=dict)
    """Distribution name -> version of every plugin package the pipeline used."""

    def root_hash(self) -> str:
        """The run's root hash: the key of this record's canonical bytes."""
        return digest(canonical_bytes(self))


class RunHead(BaseModel):
    """Mutable per-run metadata, replaced as the run progresses. Outside the root hash."""

    model_config = _FROZEN
    run_id: str
    pipeline: str
    spec_hash: str
    seed: int
    status: RunStatus
    root_hash: str | None = None
    started_at: float
    """Wall-clock seconds since the epoch (metadata only)."""
    finished_at: float | None = None
    host: str = ""
    orch_version: str = ""
    event_count: int = 0
    event_head: str | None = None
    """Hash of the last event written when the head was last replaced."""
    lineage: str | None = None
    """The first run of the chain of resumes this run belongs to (its own id for a run that
    resumes nothing): the name of the lease that lets one process at a time work on the
    chain. None in heads written before lineages existed."""
    resumed_from: str | None = None
    """The run this one resumed."""
    resumed_by: list[str] = Field(default_factory=list)
    """Runs that resumed this one, in the order they started."""
    superseded_by: str | None = None
    """The resume that finished ok in this run's place (status ``superseded``)."""
    thread: str | None = None
    """The conversation thread this run is a turn of (``arun(..., thread=T)``), or None."""
    turn: int | None = None
    """Which turn of ``thread`` it is: 1, 2, 3 ... (a resume of a turn keeps its number)."""
    hash: str | None = None
    """Key of the canonical bytes of this head without this field (detects edits)."""

    @staticmethod
    def _seal_body_of(full: dict[str, Any]) -> dict[str, Any]:
        """What a head's ``hash`` covers, from its JSON-mode dump: every field but ``hash``,
        less the fields added after heads were first sealed while they hold their default, so
        that every head written before them keeps its seal."""
        return {
            k: v
            for k, v in full.items()
            if k != "hash" and not (k in _LATER_HEAD_FIELDS and v == _LATER_HEAD_FIELDS[k])
        }

    def _seal_body(self) -> dict[str, Any]:
        return self._seal_body_of(self.model_dump(mode="json"))

    def sealed(self) -> RunHead:
        """Return a copy whose ``hash`` covers every other field."""
        return self.model_copy(update={"hash": digest(canonical_bytes(self._seal_body()))})

    def seal_ok(self) -> bool:
        """True when ``hash`` matches the other fields."""
        return self.hash == digest(canonical_bytes(self._seal_body()))

    def to_bytes(self) -> bytes:
        """The sealed head as stored: canonical JSON with its ``hash``. (What
        ``canonical_bytes(self.sealed().model_dump(mode="json"))`` gives, from one dump: a
        run writes two heads, and this was a tenth of a short run's fixed cost.)"""
        full = self.model_dump(mode="json")
        full["hash"] = digest(canonical_bytes(self._seal_body_of(full)))
        return canonical_bytes(full)

    def stored_forms(self) -> tuple[bytes, ...]:
        """The bytes this head may be stored as: with every field (as written now), or as a
        writer of an earlier generation wrote it, without the fields added since that are at
        their default (see :data:`_HEAD_GENERATIONS`)."""
        full = self.model_dump(mode="json")
        forms = [canonical_bytes(full)]
        for since in range(len(_HEAD_GENERATIONS) - 1, -1, -1):
            later = {name for gen in _HEAD_GENERATIONS[since:] for name in gen}
            forms.append(
                canonical_bytes(
                    {
                        k: v
                        for k, v in full.items()
                        if not (k in later and v == _LATER_HEAD_FIELDS[k])
                    }
                )
            )
        return tuple(forms)


_HEAD_GENERATIONS: tuple[tuple[str, ...], ...] = (
    ("lineage", "resumed_from", "resumed_by", "superseded_by"),
    ("thread", "turn"),
)
"""Fields added to run heads after the first ones were written, by the release that added
them: a head written by each earlier release is still read and verified as it was stored."""

_LATER_HEAD_FIELDS: dict[str, Any] = {
    "lineage": None,
    "resumed_from": None,
    "resumed_by": [],
    "superseded_by": None,
    "thread": None,
    "turn": None,
}
assert {n for gen in _HEAD_GENERATIONS for n in gen} == set(_LATER_HEAD_FIELDS)


_SORTED = orjson.OPT_SORT_KEYS


def step_record_bytes(
    *,
    step_id: str,
    node: str,
    parent: str | None,
    agent: Mapping[str, str],
    input: str | None,
    output: str | None,
    effects: list[str],
    decisions: list[str],
    children: list[str],
    status: StepStatus,
    error: ErrorInfo | None,
    reason: str | None,
    logical_time: int,
) -> bytes:
    """The canonical bytes of the :class:`StepRecord` with these fields, without building
    the model: the engine writes one per step, and validating a model each time costs more
    than the rest of a no-op step. Every field is given (no defaults to forget), the values
    are plain JSON, and a test pins the result to ``canonical_bytes(StepRecord(...))``."""
    return orjson.dumps(
        {
            "format": STEP_FORMAT,
            "step_id": step_id,
            "node": node,
            "parent": parent,
            "agent": agent,
            "input": input,
            "output": output,
            "effects": effects,
            "decisions": decisions,
            "children": children,
            "status": status,
            "error": None if error is None else {"type": error.type, "message": error.message},
            "reason": reason,
            "logical_time": logical_time,
        },
        option=_SORTED,
    )


def effect_record_bytes(
    *,
    step_id: str,
    index: int,
    kind: str,
    target: str,
    request: str,
    response: str | None,
    status: Literal["ok", "failed"],
    error: ErrorInfo | None,
    usage: Mapping[str, int],
    cost_usd: float | None,
) -> bytes:
    """The canonical bytes of the :class:`EffectRecord` with these fields (see
    :func:`step_record_bytes`). ``cost_usd`` must be finite: the caller checks it, since
    orjson would write a NaN as null."""
    return orjson.dumps(
        {
            "format": EFFECT_FORMAT,
            "step_id": step_id,
            "index": index,
            "kind": kind,
            "target": target,
            "request": request,
            "response": response,
            "status": status,
            "error": None if error is None else {"type": error.type, "message": error.message},
            "usage": dict(usage),
            "cost_usd": cost_usd,
        },
        option=_SORTED,
    )


def step_leaf(step_id: str, record_key: str) -> bytes:
    """Leaf bytes binding a step id to its record key (so a record cannot change places).

    Equal to ``canonical_bytes([step_id, record_key])``; two strings need no canonical walk.
    """
    if type(step_id) is not str or type(record_key) is not str:
        return canonical_bytes([step_id, record_key])  # raises the standard error
    return orjson.dumps([step_id, record_key])


def steps_root(steps: Sequence[tuple[str, str]]) -> str:
    """Merkle root over ``(step id, record key)`` pairs in the order given."""
    return merkle_root(step_leaf(s, k) for s, k in steps)  # leaves hashed as made, not kept
