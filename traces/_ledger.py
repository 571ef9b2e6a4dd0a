"""A store's audit ledger: one append-only Merkle log of what happened to its runs.

The engine appends an entry (:mod:`traces._ledger_entries`) when a run starts, ends, is taken
over by a resume or superseded by one; the tool broker anchors its audit chains in it. The
entries are the leaves of a Merkle tree hashed as in RFC 6962 / RFC 9162 (:mod:`traces._tlog`),
so a signed checkpoint of its size and root (:mod:`traces._note`) commits to every entry
before it, an inclusion proof shows that one entry is in it, and a consistency proof shows
that a later tree only grew from an earlier one.

:func:`ledger_of` gives the one :class:`Ledger` of a store object (it caches the leaf hashes
it has read, so a long-lived process reads each entry once). The storage itself is the
store's (``ledger_append``, ``ledger_read``, ``write_checkpoint`` ...); a store without it
(``supports_ledger`` False, a third-party backend) runs without a ledger, with one warning.

This module must never decide a run's outcome: it records what the engine says.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from ._eventlog import chained_events
from ._ledger_entries import AdoptEntry, GenesisEntry, LedgerEntry, entry_bytes, parse_entry
from ._note import Checkpoint, Signer, add_signatures, open_checkpoint, sign_checkpoint
from ._records import RunHead
from ._store import ArtifactStore
from ._tlog import CompactRange, MerkleTree, leaf_hash
from .errors import LedgerError, NoteError, ProofError

__all__ = [
    "ORIGIN_PREFIX",
    "RANGE_EXTENSION",
    "Ledger",
    "LedgerError",
    "checkpoint_range",
    "intact_events",
    "ledger_of",
]

log = logging.getLogger("traces.ledger")  # a public name: logging is configured by it

ORIGIN_PREFIX: Final = "orch/store/"
"""A store's checkpoints name its log ``orch/store/<store id>`` (the C2SP origin line)."""

RANGE_EXTENSION: Final = "orch-range"
"""The checkpoint extension line holding the tree's compact range (base64 of its subtree
roots, largest first): a later signer extends it without reading the whole ledger."""

_WARNED: set[str] = set()


def intact_events(lines: list[bytes]) -> tuple[int, str | None]:
    """How many of ``lines`` form an unbroken hash chain from the first, and the hash of the
    last of them: what a run's log holds that can be anchored (a torn or edited line ends
    it; verification names the cause)."""
    events = chained_events(lines)
    return len(events), (str(events[-1]["hash"]) if events else None)


class Ledger:
    """The audit ledger of one store (see the module docstring)."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._tree = MerkleTree()
        self._store_id: str | None = None

    @property
    def supported(self) -> bool:
        if self.store.supports_ledger:
            return True
        if self.store.ledger_expected and self.store.location not in _WARNED:
            _WARNED.add(self.store.location)
            log.warning(
                "store %s keeps no ledger, so its runs are not anchored in one: a deleted or "
                "rolled-back run cannot be told from one that never was",
                self.store.location,
            )
        return False

    # -- writing -------------------------------------------------------------------------------

    def ensure(self) -> str:
        """The store's id, creating the ledger (its genesis entry, and an ``adopt`` entry
        for each run made before it) when the store has none yet."""
        if self._store_id is not None:
            return self._store_id
        if self.store.ledger_size() == 0:
            genesis = GenesisEntry(store=secrets.token_hex(16))
            if self.store.ledger_append(entry_bytes(genesis), at=0) is not None:
                self._adopt_older_runs()
        return self.store_id()

    def _adopt_older_runs(self) -> None:
        # Only heads without a lineage predate the ledger: a run made since always has one,
        # and appends its own start entry (it may have written its head already, racing
        # with this genesis).
        for run_id in self.store.run_ids():
            raw = self.store.read_run_head(run_id)
            if raw is None:
                continue
            try:
                head = RunHead.model_validate_json(raw)
            except ValidationError:
                continue  # verification reports an unreadable head; nothing to anchor
            if head.lineage is not None:
                continue
            count, last = intact_events(self.store.read_events(run_id))
            self.append(
                AdoptEntry(
                    run=run_id,
                    status=head.status,
                    root_hash=head.root_hash,
                    events=count,
                    event_head=last,
                )
            )

    def append(self, entry: BaseModel) -> int:
        """Append ``entry`` (a model of :mod:`traces._ledger_entries`); return its index."""
        index = self.store.ledger_append(entry_bytes(entry))
        assert index is not None  # an unconditional append always has an index
        return index

    # -- reading -------------------------------------------------------------------------------

    def store_id(self) -> str:
        """The id in the genesis entry; raises :class:`LedgerError` without one."""
        if self._store_id is None:
            first = self.store.ledger_read(0, 1)
            if not first:
                raise LedgerError(
                    f"store {self.store.location} has no ledger yet; fix: it is created by "
                    "the first run recorded in the store"
                )
            try:
                entry = parse_entry(first[0])
            except ValueError as exc:
                raise LedgerError(
                    f"ledger entry #0 of store {self.store.location} is unreadable ({exc}); "
                    "fix: verify the store with 'orch verify --all'"
                ) from None
            if not isinstance(entry, GenesisEntry):
                raise LedgerError(
                    f"ledger entry #0 of store {self.store.location} is a {entry.type!r} "
                    "entry, not the genesis entry; fix: verify the store with 'orch verify --all'"
                )
            self._store_id = entry.store
        return self._store_id

    def origin(self) -> str:
        """The name of this store's log in its checkpoints."""
        return ORIGIN_PREFIX + self.store_id()

    def entries(self, start: int = 0, stop: int | None = None) -> list[tuple[int, bytes]]:
        """Stored entries ``[start, stop)`` with their indexes, as bytes (unparsed)."""
        return list(enumerate(self.store.ledger_read(start, stop), start))

    def parsed(self) -> list[tuple[int, LedgerEntry | str]]:
        """Every entry parsed, or the reason it cannot be, by index."""
        out: list[tuple[int, LedgerEntry | str]] = []
        for index, data in self.entries():
            try:
                out.append((index, parse_entry(data)))
            except ValueError as exc:
                out.append((index, _reason(exc)))
        return out

    def _naming(self, run_ids: set[str]) -> Iterator[tuple[int, bytes, LedgerEntry, str]]:
        """(index, bytes, entry, run) of each readable entry that names one of ``run_ids``."""
        for index, data in self.entries():
            try:
                entry = parse_entry(data)
            except ValueError:
                continue  # verification names it; it says nothing of any run
            run = getattr(entry, "run", None)
            if run in run_ids:
                yield index, data, entry, run

    def entries_of(self, run_ids: set[str]) -> dict[str, list[tuple[int, LedgerEntry]]]:
        """The parsed entries that name each of ``run_ids``, in order (one pass)."""
        found: dict[str, list[tuple[int, LedgerEntry]]] = {}
        for index, _, entry, run in self._naming(run_ids):
            found.setdefault(run, []).append((index, entry))
        return found

    def run_entries(self, run_id: str) -> list[tuple[int, bytes]]:
        """The entries that name run ``run_id`` (as bytes, with their indexes), in order."""
        return [(index, data) for index, data, _, _ in self._naming({run_id})]

    # -- checkpoints and proofs --------------------------------------------------------------

    def checkpoint(self, signers: Sequence[Signer], *, now: float | None = None) -> bytes:
        """Sign a checkpoint of the ledger as it stands now (its origin, size and root, and
        the time as an extension line), store it with the ledger, and return the note."""
        if not signers:
            raise LedgerError(
                "a checkpoint needs at least one signing key; fix: create one with "
                "'orch keys create NAME' and pass it"
            )
        self.ensure()
        edge = self._edge(signers)
        size = edge.size
        when = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
        checkpoint = Checkpoint(
            origin=self.origin(),
            size=size,
            root=edge.root(),
            extensions=(
                f"time {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                RANGE_EXTENSION + " " + base64.b64encode(edge.to_bytes()).decode(),
            ),
        )
        note = sign_checkpoint(checkpoint, signers)
        existing = self.store.read_checkpoint(size)
        if existing is not None:
            # The same tree signed again (another key, a later time): keep one note per size,
            # every signature on it, so that no earlier signer's word is lost.
            # An unreadable stored note is replaced; verification reports it.
            with contextlib.suppress(NoteError):
                if _same_tree(existing, checkpoint):
                    note = add_signatures(existing, signers)
        self.store.write_checkpoint(size, note)
        return note

    def _edge(self, signers: Sequence[Signer]) -> CompactRange:
        """The compact range of the ledger as it stands now. A process that has read the
        ledger extends its tree; one that has not starts from the latest checkpoint one of
        ``signers`` signed (its range, signed in it, checked against its root) and reads only
        the entries since; failing that, it reads every entry. The new checkpoint then
        extends what these keys signed before, whatever the store now holds below it."""
        if self._tree.size == 0:
            edge = self._signed_edge(signers)
            if edge is not None:
                for data in self.store.ledger_read(edge.size, None):
                    edge.append(leaf_hash(data))
                return edge
        tree = self.tree()
        return tree.compact_range(tree.size)

    def _signed_edge(self, signers: Sequence[Signer]) -> CompactRange | None:
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        try:
            checkpoint, opened = open_checkpoint(latest[1], [s.verifier() for s in signers])
            edge = checkpoint_range(checkpoint)
        except (NoteError, ProofError):
            return None  # unusable here: read the ledger instead (verification reports it)
        if not opened.verified or edge is None or checkpoint.origin != self.origin():
            return None
        if edge.root() != checkpoint.root or edge.size > self.store.ledger_size():
            return None
        return edge

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        """The stored checkpoint of the largest size, or None."""
        sizes = self.store.checkpoint_sizes()
        for size in reversed(sizes):
            note = self.store.read_checkpoint(size)
            if note is not None:
                return size, note
        return None

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The Merkle audit path of entry ``index`` in the tree of the first ``size`` entries."""
        return self.tree().inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The proof that the tree of ``new_size`` entries extends the one of ``old_size``."""
        return self.tree().consistency_proof(old_size, new_size)

    def consistency_since(self, old: Checkpoint, new_size: int) -> dict[str, Any]:
        """The proof that this ledger, at ``new_size`` entries, extends the checkpoint ``old``
        an auditor kept, as JSON (sizes, base64 roots and proof hashes); a
        :class:`LedgerError` naming the problem when it does not: a checkpoint of another
        store, or a ledger rolled back or rewritten since."""
        if old.origin != self.origin():
            raise LedgerError(
                f"the kept checkpoint is of {old.origin}, not of this store ({self.origin()}); "
                "fix: give a checkpoint of this store"
            )
        tree = self.tree()
        if old.size > min(new_size, tree.size) or tree.root(old.size) != old.root:
            raise LedgerError(
                f"the store's ledger is not an extension of the kept checkpoint of "
                f"{old.size} entries: it was rolled back or rewritten since (see 'orch verify "
                "--all --since'); fix: keep both checkpoints: they are the evidence"
            )
        b64 = base64.b64encode
        return {
            "old_size": old.size,
            "new_size": new_size,
            "old_root": b64(old.root).decode(),
            "new_root": b64(tree.root(new_size)).decode(),
            "proof": [b64(h).decode() for h in self.consistency_proof(old.size, new_size)],
        }

    def tree(self) -> MerkleTree:
        """The Merkle tree over every entry stored now (reads only entries appended since the
        last call). The tree is shared: do not append to it."""
        with self._lock:
            size = self.store.ledger_size()
            if size > self._tree.size:
                for data in self.store.ledger_read(self._tree.size, size):
                    self._tree.append(leaf_hash(data))
            return self._tree


def checkpoint_range(checkpoint: Checkpoint) -> CompactRange | None:
    """The compact range a checkpoint states in its ``orch-range`` extension line, if any."""
    for line in checkpoint.extensions:
        name, _, value = line.partition(" ")
        if name == RANGE_EXTENSION:
            try:
                data = base64.b64decode(value, validate=True)
            except ValueError:
                raise ProofError(f"the {RANGE_EXTENSION} line is not base64") from None
            return CompactRange.from_bytes(checkpoint.size, data)
    return None


def _same_tree(note: bytes, checkpoint: Checkpoint) -> bool:
    text = note.split(b"\n\n", 1)[0] + b"\n"
    try:
        found = Checkpoint.parse(text)
    except NoteError:
        return False
    return (found.origin, found.size, found.root) == (
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
    )


def _reason(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"not a ledger entry: {where}: {first['msg']}"
    return str(exc)


_LEDGERS: weakref.WeakKeyDictionary[ArtifactStore, Ledger] = weakref.WeakKeyDictionary()
_LEDGERS_LOCK = threading.Lock()


def ledger_of(store: ArtifactStore) -> Ledger:
    """The ledger of ``store`` (one object per store object, kept while the store lives)."""
    with _LEDGERS_LOCK:
        found = _LEDGERS.get(store)
        if found is None:
            found = _LEDGERS[store] = Ledger(store)
        return found
