"""The artifact store seam: immutable content-addressed blobs plus per-run logs.

A store holds these kinds of thing:

* **artifacts**: immutable blobs under ``sha256:<hex>`` of their bytes. ``put`` is idempotent
  and never overwrites; every ``get`` re-hashes what it read and raises
  :class:`~traces.errors.IntegrityError` on a mismatch, so corruption is never returned.
* **event logs**: one append-only log of JSON lines per run.
* **run heads**: one small mutable document per run (its metadata and, once finished, its
  root hash), replaced atomically, like a git ref.
* **claims**: small named documents changed only by compare-and-swap (:meth:`swap_claim`),
  which processes use to agree who works on what (a batch input's lease, see
  :mod:`orch._lease`). They are coordination, never part of a record. A backend that cannot
  swap atomically leaves ``supports_claims`` False.
* **the ledger**: one append-only sequence of opaque entries per store (byte strings without a
  newline), each at a dense index 0, 1, 2 ... that every thread and process agrees on, plus
  **checkpoint notes** keyed by tree size. The store only keeps the bytes in order; what an
  entry means (its schema, the Merkle tree over the entries, the signed checkpoints) is built
  on top. The API never changes or removes an entry. A backend that cannot append atomically
  leaves ``supports_ledger`` False.

Backends implement a handful of primitives (``_read_blob``, ``_write_blob`` ...); hashing and
verification live here so that no backend can get them wrong. A backend must never mutate an
artifact once written, and must never make a half-written blob visible under its key.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ._canonical import HASH_PREFIX, canonical_bytes, check_key, digest
from .errors import ArtifactNotFoundError, IntegrityError, InvalidRunIdError, RunNotFoundError

if TYPE_CHECKING:
    from ._runindex import RunIndex

__all__ = ["LEDGER_ENTRY_LIMIT", "ArtifactStore", "MemoryStore", "check_run_id", "claim_change"]

# Run ids become directory names and row keys: no separators, no leading dot, bounded length.
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: The largest ledger entry or checkpoint note a store accepts, in bytes. Entries are small
#: records (a run's seal, a status change); bulk belongs in an artifact the entry names.
LEDGER_ENTRY_LIMIT = 1 << 20


def check_run_id(run_id: object) -> str:
    """Return ``run_id`` unchanged, or raise :class:`InvalidRunIdError`."""
    if not isinstance(run_id, str) or _RUN_ID_RE.match(run_id) is None:
        raise InvalidRunIdError(run_id)
    return run_id


def claim_change(
    name: str, expected: bytes | None, new: bytes | None
) -> tuple[str, tuple[str | bytes, ...]] | None:
    """Which conditional write :meth:`ArtifactStore.swap_claim` is, for a backend that maps
    each to one statement: ``("take", (name, new))`` (insert if absent), ``("release", (name,
    expected))`` (delete if it holds ``expected``), ``("replace", (new, name, expected))``
    (update if it holds ``expected``); None for nothing to nothing, which writes nothing."""
    check_run_id(name)
    if expected is None:
        return None if new is None else ("take", (name, new))
    if new is None:
        return ("release", (name, expected))
    return ("replace", (new, name, expected))


def _check_ledger_bytes(what: str, data: object, *, one_line: bool) -> bytes:
    """``data`` when it may be stored as a ledger entry (``one_line``) or checkpoint note."""
    if not isinstance(data, bytes):
        raise TypeError(
            f"a {what} must be bytes, not {type(data).__name__}; fix: encode it first "
            "(e.g. canonical_bytes(value))"
        )
    if not data:
        raise ValueError(f"a {what} must not be empty; fix: give at least one byte")
    if len(data) > LEDGER_ENTRY_LIMIT:
        raise ValueError(
            f"a {what} of {len(data)} bytes is over the limit of {LEDGER_ENTRY_LIMIT}; fix: "
            "store the bulk as an artifact (put) and record its key"
        )
    newline = data.find(b"\n") if one_line else -1
    if newline >= 0:
        raise ValueError(
            f"a {what} must not hold a newline (byte 10, found at offset {newline}); fix: "
            "encode the entry as one line, e.g. canonical JSON"
        )
    return bytes(data)


def _check_count(name: str, value: object) -> int:
    """``value`` when it is an int >= 0 (an index or a tree size), else a clear error."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value}")
    return value


class ArtifactStore(abc.ABC):
    """Base class of every store backend. Subclass it and implement the primitives."""

    #: Human-readable location used in messages (a path, URL or ``memory``).
    location: str = "?"
    #: True when this process may only read the store (no write permission, or opened so).
    read_only: bool = False

    # -- primitives a backend implements ---------------------------------------------------

    @abc.abstractmethod
    def _read_blob(self, key: str) -> bytes | None:
        """Return the stored bytes for ``key`` exactly as stored, or None if absent."""

    @abc.abstractmethod
    def _write_blob(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically if absent; do nothing if present."""

    @abc.abstractmethod
    def _has_blob(self, key: str) -> bool:
        """True when a blob is stored under ``key``."""

    @abc.abstractmethod
    def _iter_keys(self) -> Iterator[str]:
        """Every stored key, in any order."""

    @abc.abstractmethod
    def append_event(self, run_id: str, line: bytes) -> None:
        """Append one line (without trailing newline) to the run's event log."""

    @abc.abstractmethod
    def read_events(self, run_id: str) -> list[bytes]:
        """Every line of the run's event log, in append order (empty if none).

        A line torn by a crash mid-write is returned as it is; verification judges it.
        """

    @abc.abstractmethod
    def write_run_head(self, run_id: str, data: bytes) -> None:
        """Atomically replace the run's head document."""

    @abc.abstractmethod
    def read_run_head(self, run_id: str) -> bytes | None:
        """The run's head document, or None when the run is unknown."""

    @abc.abstractmethod
    def run_ids(self) -> list[str]:
        """Ids of every run with a head document, sorted."""

    def run_index(self) -> RunIndex | None:
        """The index of runs this backend keeps (:mod:`traces._runindex`), or None (this
        default): then a runs list reads every head per query."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing open
        """Release files or connections; the store is unusable afterwards."""

    def flush(self) -> None:  # noqa: B027 - optional hook, most backends write through
        """Make every write this object accepted as durable as the backend's settings make
        any write (committed, fsynced if asked), before returning. A backend that batches
        artifacts and event lines (SQLite, PostgreSQL) commits its batch here; run heads,
        claims, ledger entries and checkpoints never need it."""

    async def aflush(self) -> None:
        """:meth:`flush` for async code: the engine awaits it after recording an effect, so
        that a crash never makes the same call twice. A batching backend lets concurrent
        tasks add their writes first, so that one commit serves them all."""
        self.flush()

    # -- claims (optional: backends that swap atomically set supports_claims) -------------

    supports_claims: bool = False

    def read_claim(self, name: str) -> bytes | None:
        """The claim ``name``'s current document, or None when nobody holds it."""
        raise NotImplementedError(
            f"store {self.location} ({type(self).__name__}) keeps no claims; fix: implement "
            "read_claim and swap_claim and set supports_claims = True"
        )

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        """Atomically, across every process using the store: when claim ``name`` holds
        ``expected`` (None: no claim), make it ``new`` (None: remove it) and return True;
        otherwise change nothing and return False. Documents are compared byte for byte."""
        raise NotImplementedError(
            f"store {self.location} ({type(self).__name__}) keeps no claims; fix: implement "
            "read_claim and swap_claim and set supports_claims = True"
        )

    # -- the ledger (optional: backends that append atomically set supports_ledger) --------

    supports_ledger: bool = False
    #: False for a store whose runs are thrown away by design (an overlay a replay writes
    #: into without recording): a run there missing a ledger is no warning.
    ledger_expected: bool = True

    def ledger_append(self, entry: bytes, *, at: int | None = None) -> int | None:
        """Append ``entry`` to the store's ledger and return its index (0, 1, 2 ...).

        Indexes are dense and unique across every thread and process using the store; an
        entry becomes visible whole, never before the one at the index below it. With
        ``at=N`` this is a compare-and-append: the entry goes in only when the ledger holds
        exactly N entries (so at index N), and otherwise nothing is written and the result is
        None; racing processes use it to write an entry (entry 0, say) exactly once.

        ``entry``: 1 to :data:`LEDGER_ENTRY_LIMIT` bytes, none of them a newline.
        """
        self._require_ledger()
        data = _check_ledger_bytes("ledger entry", entry, one_line=True)
        if at is not None:
            _check_count("at", at)
        return self._ledger_append(data, at)

    def ledger_size(self) -> int:
        """How many entries the ledger holds."""
        self._require_ledger()
        return self._ledger_size()

    def ledger_read(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """The entries at indexes ``start`` to ``stop - 1`` in order (``stop`` None: to the
        end). A range past the end is cut at the end, as a slice is: compare the length."""
        self._require_ledger()
        _check_count("start", start)
        if stop is not None and _check_count("stop", stop) < start:
            raise ValueError(f"stop ({stop}) is below start ({start}); fix: give start <= stop")
        if stop == start:
            return []
        return self._ledger_read(start, stop)

    def write_checkpoint(self, size: int, note: bytes) -> None:
        """Store ``note`` (1 to :data:`LEDGER_ENTRY_LIMIT` bytes, any of them) as the checkpoint
        for tree size ``size``, atomically replacing the one stored for that size."""
        self._require_ledger()
        _check_count("checkpoint size", size)
        self._write_checkpoint(size, _check_ledger_bytes("checkpoint note", note, one_line=False))

    def read_checkpoint(self, size: int) -> bytes | None:
        """The checkpoint note stored for tree size ``size``, or None."""
        self._require_ledger()
        return self._read_checkpoint(_check_count("checkpoint size", size))

    def checkpoint_sizes(self) -> list[int]:
        """The tree sizes that have a checkpoint note, ascending."""
        self._require_ledger()
        return sorted(self._checkpoint_sizes())

    def _require_ledger(self) -> None:
        if not self.supports_ledger:
            raise NotImplementedError(
                f"store {self.location} ({type(self).__name__}) keeps no ledger; fix: implement "
                "_ledger_append, _ledger_size, _ledger_read, _write_checkpoint, "
                "_read_checkpoint and _checkpoint_sizes and set supports_ledger = True"
            )

    # The ledger's primitives: called with checked arguments, and only when supports_ledger.

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        """Append ``entry`` atomically (when ``at`` is None or the size); see ledger_append."""
        raise NotImplementedError("_ledger_append")

    def _ledger_size(self) -> int:
        raise NotImplementedError("_ledger_size")

    def _ledger_read(self, start: int, stop: int | None) -> list[bytes]:
        """Entries [start, stop) (``start < stop``), cut at the end; see ledger_read."""
        raise NotImplementedError("_ledger_read")

    def _write_checkpoint(self, size: int, note: bytes) -> None:
        raise NotImplementedError("_write_checkpoint")

    def _read_checkpoint(self, size: int) -> bytes | None:
        raise NotImplementedError("_read_checkpoint")

    def _checkpoint_sizes(self) -> list[int]:
        raise NotImplementedError("_checkpoint_sizes")

    # -- artifacts (concrete: hashing and verification live here) -------------------------

    def put(self, data: bytes) -> str:
        """Store raw bytes; return their key. Idempotent."""
        if not isinstance(data, bytes):
            raise TypeError(
                f"put() takes bytes, not {type(data).__name__}; fix: use put_value() for data"
            )
        key = digest(data)
        if self._put_needed(key):
            self._write_blob(key, data)
        return key

    def _put_needed(self, key: str) -> bool:
        """Whether ``put`` must write ``key``: not when it is stored. A backend for which
        writing a copy is harmless and asking is slow may answer from what it knows."""
        return not self._has_blob(key)

    def put_value(self, value: Any) -> str:
        """Store the canonical encoding of ``value``; return its key."""
        return self.put(canonical_bytes(value))

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``, verified against the key."""
        check_key(key)
        data = self._read_blob(key)
        if data is None:
            raise ArtifactNotFoundError(key, self.location)
        actual = digest(data)
        if actual != key:
            raise IntegrityError(key, actual, f"in store {self.location}")
        return data

    def get_value(self, key: str) -> Any:
        """Return the decoded JSON value under ``key``, verified."""
        return orjson.loads(self.get(key))

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        """The bytes under each of ``keys``, in order, each verified as :meth:`get` does (and
        raising as it does). For reading a run's records in one pass (replay, resume): a
        backend that keeps them together may override this to read them in one go."""
        return [self.get(key) for key in keys]

    def has(self, key: str) -> bool:
        """True when ``key`` is stored (no verification)."""
        return self._has_blob(check_key(key))

    def keys(self) -> Iterator[str]:
        """Every stored key, sorted."""
        return iter(sorted(self._iter_keys()))

    def read_raw(self, key: str) -> bytes | None:
        """The bytes under ``key`` without verification, for tools that report corruption."""
        return self._read_blob(check_key(key))

    # -- runs ------------------------------------------------------------------------------

    def resolve_run(self, run_id_or_prefix: str) -> str:
        """Return the full id of the run named exactly or by a unique prefix."""
        ids = self.run_ids()
        if run_id_or_prefix in ids:
            return run_id_or_prefix
        matches = [r for r in ids if r.startswith(run_id_or_prefix)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(
                f"no run {run_id_or_prefix!r} in store {self.location}; "
                "fix: list runs with 'orch runs' (and check --store / ORCH_STORE)"
            )
        raise RunNotFoundError(
            f"run prefix {run_id_or_prefix!r} is ambiguous in store {self.location} "
            f"({len(matches)} runs match); fix: give more characters of the run id"
        )

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryStore(ArtifactStore):
    """An in-process store: fast, for tests and benchmarks; gone when the process ends."""

    location = "memory"

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._events: dict[str, list[bytes]] = {}
        self._heads: dict[str, bytes] = {}
        self._claims: dict[str, bytes] = {}
        self._ledger: list[bytes] = []
        self._checkpoints: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        # The hot path of every step (three puts each): one dict operation, no primitives.
        if type(data) is not bytes:
            return super().put(data)  # raises the standard error
        key = HASH_PREFIX + hashlib.sha256(data).hexdigest()
        if key not in self._blobs:
            # Keep a copy of the bytes' own size: orjson's output sits in a block sized for
            # its 1 KiB start buffer, and keeping thousands of those fragments the heap
            # (measured: ~3 µs more per kept record than the copy costs).
            self._blobs.setdefault(key, bytes(memoryview(data)))
        return key

    def _read_blob(self, key: str) -> bytes | None:
        return self._blobs.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        # get() for each key in one loop: a key found whose bytes hash to it is returned as
        # get() would; any other (absent, malformed, damaged) takes get() for its error.
        blobs, sha256, out = self._blobs, hashlib.sha256, []
        for key in keys:
            data = blobs.get(key)
            if data is None or HASH_PREFIX + sha256(data).hexdigest() != key:
                data = self.get(key)
            out.append(data)
        return out

    def _write_blob(self, key: str, data: bytes) -> None:
        self._blobs.setdefault(key, data)

    def _has_blob(self, key: str) -> bool:
        return key in self._blobs

    def _iter_keys(self) -> Iterator[str]:
        return iter(list(self._blobs))

    def append_event(self, run_id: str, line: bytes) -> None:
        with self._lock:
            events = self._events.get(run_id)
            if events is None:
                events = self._events[check_run_id(run_id)] = []
            events.append(bytes(line))

    def read_events(self, run_id: str) -> list[bytes]:
        return list(self._events.get(check_run_id(run_id), ()))

    def write_run_head(self, run_id: str, data: bytes) -> None:
        self._heads[check_run_id(run_id)] = bytes(data)

    def read_run_head(self, run_id: str) -> bytes | None:
        return self._heads.get(check_run_id(run_id))

    def run_ids(self) -> list[str]:
        return sorted(self._heads)

    supports_claims = True

    def read_claim(self, name: str) -> bytes | None:
        return self._claims.get(check_run_id(name))

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        with self._lock:
            if self._claims.get(check_run_id(name)) != expected:
                return False
            if new is None:
                self._claims.pop(name, None)
            else:
                self._claims[name] = bytes(new)
            return True

    supports_ledger = True

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        with self._lock:
            index = len(self._ledger)
            if at is not None and at != index:
                return None
            self._ledger.append(entry)
            return index

    def _ledger_size(self) -> int:
        return len(self._ledger)

    def _ledger_read(self, start: int, stop: int | None) -> list[bytes]:
        return self._ledger[start:stop]

    def _write_checkpoint(self, size: int, note: bytes) -> None:
        self._checkpoints[size] = note

    def _read_checkpoint(self, size: int) -> bytes | None:
        return self._checkpoints.get(size)

    def _checkpoint_sizes(self) -> list[int]:
        return list(self._checkpoints)

    # -- test hooks: change data behind the API, as a disk or an attacker would ---------------
    # (the same hooks on every built-in backend; see traces.conformance.TamperableStore)

    def _tamper(self, key: str, data: bytes) -> None:
        self._blobs[key] = data

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        self._events[run_id][index] = line

    def _tamper_ledger(self, index: int, entry: bytes) -> None:
        self._ledger[index] = entry

    def _tamper_truncate_ledger(self, size: int) -> None:
        del self._ledger[size:]

    def _tamper_delete_blob(self, key: str) -> None:
        self._blobs.pop(key, None)

    def _tamper_delete_head(self, run_id: str) -> None:
        self._heads.pop(run_id, None)

    def _tamper_set_events(self, run_id: str, lines: list[bytes]) -> None:
        self._events[run_id] = list(lines)

    def _tamper_delete_checkpoint(self, size: int) -> None:
        self._checkpoints.pop(size, None)

    _STATE = ("_blobs", "_events", "_heads", "_claims", "_ledger", "_checkpoints")

    def _tamper_snapshot(self) -> object:
        with self._lock:
            return {name: copy.deepcopy(getattr(self, name)) for name in self._STATE}

    def _tamper_restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, dict)
        with self._lock:
            for name in self._STATE:
                setattr(self, name, copy.deepcopy(snapshot[name]))
