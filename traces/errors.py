"""Errors raised by the audit-record layer.

Every message names the thing at fault and the fix. The tree::

    TraceError
    ├── CanonicalEncodingError   a value has no canonical form (NaN, set, bytes, unknown object)
    ├── StoreError
    │   ├── ArtifactNotFoundError    no artifact under that key
    │   ├── IntegrityError           stored bytes do not hash to their key
    │   ├── InvalidKeyError          a key that is not ``sha256:<64 hex>``
    │   ├── InvalidRunIdError        a run id that is not safe as a file or row name
    │   ├── StoreReadOnlyError       a write to a store this process may only read
    │   └── StoreLocationError       a store location that cannot be opened
    │       └── StoreNotFoundError   no store at the location, and none was to be created
    ├── RunNotFoundError         no run with that id in the store
    ├── ProofError               a Merkle proof that cannot be built or does not verify
    ├── NoteError                a malformed or unverifiable signed note or checkpoint
    ├── SigningKeyError          a signing key that cannot be created, found or read
    └── EvidenceError            an evidence bundle or disclosure that cannot be made, or a file
                                 that is not one
"""

from __future__ import annotations

__all__ = [
    "ArtifactNotFoundError",
    "CanonicalEncodingError",
    "EvidenceError",
    "LedgerError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidRunIdError",
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


class TraceError(Exception):
    """Base of every error raised by :mod:`traces`."""


class CanonicalEncodingError(TraceError, TypeError):
    """A value cannot be encoded canonically; the message gives its path and the fix."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"cannot encode value at {path}: {problem}; fix: {fix}")


class StoreError(TraceError):
    """Base of artifact-store errors."""


class ArtifactNotFoundError(StoreError, KeyError):
    """No artifact is stored under the key."""

    def __init__(self, key: str, store: str) -> None:
        self.key = key
        super().__init__(f"artifact {key} not found in store {store}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class IntegrityError(StoreError):
    """Stored bytes do not hash to the key they are stored under."""

    def __init__(self, key: str, actual: str, where: str) -> None:
        self.key = key
        self.actual = actual
        self.where = where
        super().__init__(f"artifact {key} is corrupt: its bytes hash to {actual} ({where})")


class InvalidKeyError(StoreError, ValueError):
    """A key that is not of the form ``sha256:<64 lowercase hex digits>``."""

    def __init__(self, key: object) -> None:
        super().__init__(
            f"invalid artifact key {key!r}; fix: use a key returned by put(), "
            "of the form 'sha256:' followed by 64 lowercase hex digits"
        )


class InvalidRunIdError(StoreError, ValueError):
    """A run id that is empty, too long, or holds characters other than letters, digits, ``._-``."""

    def __init__(self, run_id: object) -> None:
        super().__init__(
            f"invalid run id {run_id!r}; fix: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


class StoreLocationError(StoreError):
    """A store location (path or URL) that cannot be opened."""


class StoreNotFoundError(StoreLocationError):
    """No store exists at the location, and the caller asked not to create one (a command
    that only reads must not leave an empty store behind a mistyped ``--store``)."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(
            f"no store at {location}; fix: check --store / ORCH_STORE (orch run creates one)"
        )


class StoreReadOnlyError(StoreError):
    """The store exists but this process may only read it, and something tried to write."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"store {location} is read-only ({reason}); fix: run as a user who may write it, "
            "or record into another store with --store / ORCH_STORE"
        )


class RunNotFoundError(TraceError, LookupError):
    """No run with the given id (or id prefix) exists in the store."""


class ProofError(TraceError):
    """A Merkle inclusion or consistency proof that cannot be built or does not verify."""


class NoteError(TraceError):
    """A signed note or tlog checkpoint that is malformed or whose signature does not verify."""


class SigningKeyError(TraceError):
    """A signing key that cannot be created, found or read (keyring, PEM file, vkey)."""


class LedgerError(TraceError):
    """A ledger that cannot be read as one (no genesis entry, an unreadable entry), or that
    does not extend a checkpoint kept earlier."""


class EvidenceError(TraceError):
    """An evidence bundle (``.orchpack``) or disclosure proof (``.orchproof``) that cannot be
    made from a store (no ledger entry, no seal, no checkpoint covering the run), or a file
    given to verify that is not one at all (a tampered one is a finding, not this error)."""
