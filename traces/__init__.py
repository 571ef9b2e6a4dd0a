"""traces: the audit record of orch runs.

Canonical encoding and hashing, content-addressed artifact stores, step and run records with
Merkle roots, hash-chained event logs, the store-wide audit ledger (an RFC 9162 Merkle log
with C2SP signed checkpoints), signing keys, and verification. This package imports nothing
from ``orch``, ``agents`` or ``routers``: a record can be checked without the engine.
"""

from __future__ import annotations

from .canonical import (
    HASH_PREFIX,
    Encoded,
    canonical_bytes,
    canonical_json,
    digest,
    hash_value,
    is_key,
    to_canonical,
)
from .dirstore import DirectoryStore
from .errors import (
    ArtifactNotFoundError,
    CanonicalEncodingError,
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
from .eventlog import EventLog
from .keys import KeyRing, parse_trusted
from .ledger import Ledger, ledger_of
from .merkle import merkle_root
from .note import Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint
from .open import default_store_location, open_store, require_writable
from .overlay import OverlayStore
from .records import (
    AgentRef,
    Decision,
    EffectRecord,
    ErrorInfo,
    RunHead,
    RunRecord,
    StepRecord,
    steps_root,
)
from .sqlitestore import SQLiteStore
from .store import ArtifactStore, MemoryStore, check_run_id
from .tlog import MerkleTree, verify_consistency, verify_inclusion
from .verify import Problem, VerifyReport, verify_run, verify_store

__all__ = [
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
