"""Errors raised by the audit-record layer.

Every message names the thing at fault and the fix. The tree::

    TraceError
    ├── CanonicalEncodingError   a value has no canonical form (NaN, set, bytes, unknown object)
    ├── StoreError
    │   ├── ArtifactNotFoundError    no artifact under that key
    │   ├── IntegrityError           stored bytes do not hash to their key
    │   ├── InvalidKeyError          a key that is not ``sha256:<64 hex>``
    │   ├── InvalidRunIdError        a run id that is not safe as a file or row name
    │   └── StoreLocationError       a store location that cannot be opened
    └── RunNotFoundError         no run with that id in the store
"""

from __future__ import annotations

__all__ = [
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


class RunNotFoundError(TraceError, LookupError):
    """No run with the given id (or id prefix) exists in the store."""
