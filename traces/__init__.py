"""traces: the audit record of orch runs.

Canonical encoding and hashing, content-addressed artifact stores, step and run records with
Merkle roots, hash-chained event logs, the store-wide audit ledger (an RFC 9162 Merkle log
with C2SP signed checkpoints), signing keys, and verification. This package imports nothing
from ``orch``, ``agents`` or ``routers``: a record can be checked without the engine.

This module is the public face; the implementation modules are private (``traces._ledger``
...). Public modules beside it: :mod:`traces.errors` (every exception), :mod:`traces.conformance`
(the suite a third-party store runs), :mod:`traces.otel` (spans of recorded runs) and
:mod:`traces.pgstore` (the PostgreSQL store, the ``postgres`` extra).
"""

from __future__ import annotations

from ._bundle import export_bundle, open_bundle, verify_bundle
from ._canonical import (
    HASH_PREFIX,
    Encoded,
    canonical_bytes,
    canonical_json,
    digest,
    hash_value,
    is_key,
    to_canonical,
)
from ._diff import FieldChange, diff_runs, field_diff
from ._dirstore import DirectoryStore
from ._disclose import disclose, parse_decision_ref, seal_of, verify_disclosure
from ._eventlog import EventLog, chained_events, first_event, run_origin
from ._evidence import choose_checkpoint
from ._keys import KeyRing, parse_trusted
from ._ledger import Ledger, intact_events, ledger_of
from ._ledger_entries import (
    AdoptEntry,
    AnchorEntry,
    SealEntry,
    StartEntry,
    StatusEntry,
    parse_entry,
)
from ._merkle import merkle_root
from ._note import Checkpoint, Signer, Verifier, add_signatures, open_checkpoint, sign_checkpoint
from ._notices import collecting, notice
from ._open import default_store_location, mask_location, open_store, require_writable
from ._overlay import OverlayStore
from ._records import (
    STATUS_RANK,
    AgentRef,
    Decision,
    EffectRecord,
    ErrorInfo,
    RunHead,
    RunRecord,
    StepRecord,
    StepStatus,
    effect_record_bytes,
    step_record_bytes,
    steps_root,
)
from ._runindex import (
    IndexedRun,
    RunFilter,
    RunIndex,
    RunPage,
    indexed_run,
    list_runs,
    rebuild_index,
)
from ._runview import RunView, StepView, load_run_head, load_run_view
from ._sqlitestore import SQLiteStore
from ._store import ArtifactStore, MemoryStore, check_run_id
from ._tlog import MerkleTree, verify_consistency, verify_inclusion
from ._verify import Problem, VerifyReport, verify_run, verify_store
from ._verify_ledger import LedgerView
from .errors import (
    ArtifactNotFoundError,
    CanonicalEncodingError,
    EvidenceError,
    IntegrityError,
    InvalidKeyError,
    InvalidRunIdError,
    LedgerError,
    NoteError,
    ProofError,
    RunNotFoundError,
    SigningKeyError,
    StoreError,
    StoreLocationError,
    StoreNotFoundError,
    StoreReadOnlyError,
    TraceError,
)

__all__ = [
    # reading, comparing and proving runs (the CLI and other packages use these)
    "add_signatures",
    "AdoptEntry",
    "AnchorEntry",
    "FieldChange",
    "RunView",
    "STATUS_RANK",
    "SealEntry",
    "StartEntry",
    "StatusEntry",
    "StepStatus",
    "StepView",
    "chained_events",
    "choose_checkpoint",
    "collecting",
    "diff_runs",
    "disclose",
    "effect_record_bytes",
    "export_bundle",
    "field_diff",
    "first_event",
    "intact_events",
    "load_run_head",
    "load_run_view",
    # runs lists (traces._runindex)
    "IndexedRun",
    "RunFilter",
    "RunIndex",
    "RunPage",
    "indexed_run",
    "list_runs",
    "rebuild_index",
    "mask_location",
    "notice",
    "open_bundle",
    "parse_decision_ref",
    "parse_entry",
    "run_origin",
    "seal_of",
    "step_record_bytes",
    "verify_bundle",
    "verify_disclosure",
    # encoding and hashing
    "HASH_PREFIX",
    "Encoded",
    "canonical_bytes",
    "canonical_json",
    "digest",
    "hash_value",
    "is_key",
    "merkle_root",
    "to_canonical",
    # stores
    "ArtifactStore",
    "DirectoryStore",
    "MemoryStore",
    "OverlayStore",
    "SQLiteStore",
    "check_run_id",
    "default_store_location",
    "open_store",
    "require_writable",
    # the audit ledger, checkpoints and keys
    "Checkpoint",
    "KeyRing",
    "Ledger",
    "LedgerView",
    "MerkleTree",
    "Signer",
    "Verifier",
    "ledger_of",
    "open_checkpoint",
    "parse_trusted",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    # verification
    "Problem",
    "VerifyReport",
    "verify_run",
    "verify_store",
    # records
    "AgentRef",
    "Decision",
    "EffectRecord",
    "ErrorInfo",
    "EventLog",
    "RunHead",
    "RunRecord",
    "StepRecord",
    "steps_root",
    # errors
    "ArtifactNotFoundError",
    "CanonicalEncodingError",
    "EvidenceError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidRunIdError",
    "LedgerError",
    "NoteError",
    "ProofError",
    "RunNotFoundError",
    "SigningKeyError",
    "StoreError",
    "StoreLocationError",
    "StoreNotFoundError",
    "StoreReadOnlyError",
    "TraceError",
]
