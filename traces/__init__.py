"""traces: the audit record of orch runs.

Canonical encoding and hashing, content-addressed artifact stores, step and run records with
Merkle roots, hash-chained event logs, and verification. This package imports nothing from
``orch``, ``agents`` or ``routers``: a record can be checked without the engine.
"""

from __future__ import annotations

from .canonical import (
    HASH_PREFIX,
    canonical_bytes,
    canonical_json,
    digest,
    hash_value,
    is_key,
    to_canonical,
)
from .errors import (
    ArtifactNotFoundError,
    CanonicalEncodingError,
    IntegrityError,
    InvalidKeyError,
    RunNotFoundError,
    StoreError,
    StoreLocationError,
    TraceError,
)
from .eventlog import EventLog
from .merkle import merkle_root
from .records import AgentRef, Decision, ErrorInfo, RunHead, RunRecord, StepRecord, steps_root
from .store import ArtifactStore, MemoryStore

__all__ = [
    # encoding and hashing
    "HASH_PREFIX",
    "canonical_bytes",
    "canonical_json",
    "digest",
    "hash_value",
    "is_key",
    "merkle_root",
    "to_canonical",
    # stores
    "ArtifactStore",
    "MemoryStore",
    # records
    "AgentRef",
    "Decision",
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
    "RunNotFoundError",
    "StoreError",
    "StoreLocationError",
    "TraceError",
]
