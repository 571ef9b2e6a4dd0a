"""The entries of a store's audit ledger: what the engine states about runs, once, in order.

Each entry is one leaf of the store's Merkle log (:mod:`traces._ledger`): the canonical JSON
of one of the models below (orjson, sorted keys, every field present). Entries say what
happened to a run at the moments that decide what an auditor may rely on:

* ``genesis`` (entry 0, once): the store's random id, which names its log (the checkpoint
  origin ``orch/store/<id>``);
* ``adopt``: a run the ledger never saw start, anchored as it stood when found: one made
  before the store had a ledger (adopted when the ledger was created), or one whose process
  died between writing its head and appending its start (adopted by the resume that takes
  it over), so that deleting it later shows;
* ``start``: a run began (its pipeline, spec, seed, the hash of its first event, its lineage
  and the run it resumes);
* ``seal``: a run ended: its outcome, root hash, Merkle root over its steps, and the length
  and last hash of its event log, so that no event can be dropped or added afterwards;
* ``status``: another process changed a run's lifecycle status: ``interrupted`` when a
  resume took over from a process that died (anchoring the log as it found it), and
  ``superseded`` when a resume of its lineage finished ok in its place;
* ``anchor``: the head of another hash chain (the tool broker's audit log of a tenant), so
  that the chain cannot be rolled back or forked without the ledger showing it.

This module holds schemas only: it must never read a store or a clock.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ._canonical import canonical_bytes
from ._records import RunOutcome

__all__ = [
    "LEDGER_FORMAT",
    "AdoptEntry",
    "AnchorEntry",
    "GenesisEntry",
    "LedgerEntry",
    "SealEntry",
    "StartEntry",
    "StatusEntry",
    "entry_bytes",
    "parse_entry",
]

LEDGER_FORMAT: Final = "orch.ledger/1"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class GenesisEntry(BaseModel):
    """Entry 0 of every ledger: the store's identity."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["genesis"] = "genesis"
    store: str
    """32 lowercase hex digits, random, drawn when the ledger was created."""


class AdoptEntry(BaseModel):
    """A run the ledger never saw start, as it stood when found (see the module docstring)."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["adopt"] = "adopt"
    run: str
    status: str
    root_hash: str | None
    events: int
    """How many intact events its log held."""
    event_head: str | None
    """The hash of the last of them."""


class StartEntry(BaseModel):
    """A run began."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["start"] = "start"
    run: str
    pipeline: str
    spec: str
    """Key of the pipeline spec."""
    seed: int
    start_event: str
    """Hash of the run's first event (``run_start``), which holds its inputs and origin."""
    lineage: str
    """The first run of its chain of resumes (itself when it resumes nothing)."""
    resumed_from: str | None


class SealEntry(BaseModel):
    """A run ended, in its own process."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["seal"] = "seal"
    run: str
    status: RunOutcome
    root_hash: str
    """Key of the run record."""
    steps_root: str
    """The run record's Merkle root over its step records (for disclosure proofs of one
    step, which then need not reveal the run record)."""
    steps: int
    """How many step records the run record lists: the size of the tree under
    ``steps_root`` (an audit path does not bind it on its own)."""
    events: int
    event_head: str


class StatusEntry(BaseModel):
    """Another process changed the run's lifecycle status."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["status"] = "status"
    run: str
    status: Literal["interrupted", "superseded"]
    by: str
    """The run (a resume) whose process made the change."""
    events: int | None
    """For ``interrupted``: how many intact events the run's log held when it was taken over
    (None for ``superseded``, which changes nothing in the log)."""
    event_head: str | None


class AnchorEntry(BaseModel):
    """The head of another hash chain at one point of it."""

    model_config = _FROZEN
    format: Literal["orch.ledger/1"] = LEDGER_FORMAT
    type: Literal["anchor"] = "anchor"
    source: str
    """Which chain: ``tool-audit`` for the tool broker's audit log."""
    subject: str
    """Which chain of that source (a tenant)."""
    seq: int
    """Position of the anchored element in its chain."""
    hash: str
    """Its hash."""
    run: str | None
    """The run it happened in, if any."""


LedgerEntry = Annotated[
    GenesisEntry | AdoptEntry | StartEntry | SealEntry | StatusEntry | AnchorEntry,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[LedgerEntry] = TypeAdapter(LedgerEntry)


def entry_bytes(entry: BaseModel) -> bytes:
    """The canonical bytes of an entry: what the ledger stores and its leaf hashes."""
    return canonical_bytes(entry)


def parse_entry(data: bytes) -> LedgerEntry:
    """Parse stored entry bytes; raises ``ValueError`` (pydantic's ValidationError or a
    canonical-form mismatch) when they are not an entry written by :func:`entry_bytes`."""
    entry = _ADAPTER.validate_json(data)
    if entry_bytes(entry) != data:
        raise ValueError("not in canonical form")
    return entry
