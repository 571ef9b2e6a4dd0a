"""traces: the audit record of orch runs.

Canonical encoding and hashing, content-addressed artifact stores, step and run records with
Merkle roots, hash-chained event logs, and verification. This package imports nothing from
``orch``, ``agents`` or ``routers``: a record can be checked without the engine.
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
    RunNotFoundError,
    StoreError,
    StoreLocationError,
    TraceError,
)
from .eventlog import EventLog
from .merkle import merkle_root
from .open import default_store_location, open_store
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
    "SQLiteStore",
    "check_run_id",
    "default_store_location",
    "open_store",
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
    "RunNotFoundError",
    "StoreError",
    "StoreLocationError",
    "TraceError",
]
