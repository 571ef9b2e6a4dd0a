"""The record schema: step records, run records, decisions, run heads.

Records are frozen pydantic models; a change is a new record with a new hash. What goes into
a hashed record must be a function of the pipeline, its inputs, the seed and the recorded
effects only: never wall-clock time, host names, completion order or dict order. Wall-clock
facts live in :class:`RunHead` and the event log, outside the root hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .canonical import canonical_bytes, digest
from .merkle import merkle_root

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
    "StepRecord",
    "StepStatus",
    "step_leaf",
    "steps_root",
]

STEP_FORMAT: Final = "orch.step/1"
EFFECT_FORMAT: Final = "orch.effect/1"
RUN_FORMAT: Final = "orch.run/1"

StepStatus = Literal["ok", "failed", "skipped", "cancelled"]
RunStatus = Literal["running", "ok", "failed"]

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
    status: Literal["ok", "failed"]
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
    hash: str | None = None
    """Key of the canonical bytes of this head without this field (detects edits)."""

    def sealed(self) -> RunHead:
        """Return a copy whose ``hash`` covers every other field."""
        body = self.model_dump(mode="json", exclude={"hash"})
        return self.model_copy(update={"hash": digest(canonical_bytes(body))})

    def seal_ok(self) -> bool:
        """True when ``hash`` matches the other fields."""
        body = self.model_dump(mode="json", exclude={"hash"})
        return self.hash == digest(canonical_bytes(body))


def step_leaf(step_id: str, record_key: str) -> bytes:
    """Leaf bytes binding a step id to its record key (so a record cannot change places).

    Equal to ``canonical_bytes([step_id, record_key])``; two strings need no canonical walk.
    """
    if type(step_id) is not str or type(record_key) is not str:
        return canonical_bytes([step_id, record_key])  # raises the standard error
    return orjson.dumps([step_id, record_key])


def steps_root(steps: Sequence[tuple[str, str]]) -> str:
    """Merkle root over ``(step id, record key)`` pairs in the order given."""
    return merkle_root([step_leaf(s, k) for s, k in steps])
