"""The directory store: artifacts as files, one folder per run. The embedded default.

Layout under the store root::

    packs/<writer>.pack     artifacts, appended by one writer each (see traces._packs)
    packs/<writer>.idx      a sealed pack's index
    objects/ab/cdef...      artifacts as single files (stores written before packs: read only)
    runs/<run id>/head.json the run head, replaced atomically
    runs/<run id>/events.jsonl  the event log, one JSON line per event, append-only
    ledger/entries.log      the store's ledger, one entry per line, append-only (see below)
    ledger/entries.idx      where each entry ends (8 bytes each): a cache of the lines
    ledger/.lock            locked (flock) by appenders to the ledger
    ledger/checkpoints/<size>.note  a checkpoint note per tree size, replaced atomically
    index/              the runs index: a journal of heads written, a sidecar SQLite file
                        (derived data, see traces._dirindex)
    tmp/                    temporary files, renamed into place (same file system)

An artifact is one record appended to this writer's pack (:mod:`traces._packs`): one ``write``
call, where a file per artifact cost a creation, a write and a rename. A reader finds a key in
any writer's pack, or as a single file under ``objects/`` (how stores were written before
packs; such stores keep being read as they are, nothing is migrated). Every write of a whole
file (heads, claims, checkpoints) goes to ``tmp/`` first and is renamed into place, so a
reader (or a crash) never sees half of it. Event lines are appended with a single
``write`` on an unbuffered ``O_APPEND`` descriptor, so a crash can tear at most the last line,
which verification reports as a torn tail. With ``fsync=True`` each write is also flushed to
the disk before it is visible, which survives power loss as well as a killed process, at a
cost in speed.

Many keys asked at once (``get_many``: a run's records, for replay and resume) are read
together where this store knows them in a pack: neighbouring records in one read.

The ledger's entries are appended under an exclusive lock of ``ledger/.lock``, so every
process agrees on each entry's index; a torn last line (a writer killed mid-write, never
acknowledged) is ignored by readers and cut off by the next appender, see :mod:`traces._dirledger`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._canonical import HASH_PREFIX, is_key
from ._dirindex import DirectoryRunIndex, HeadJournal
from ._dirledger import LedgerFile, fsync_dir
from ._packs import Location, PackSet
from ._store import ArtifactStore, check_run_id
from .errors import StoreLocationError, StoreNotFoundError

if TYPE_CHECKING:
    from ._runindex import RunIndex

__all__ = ["DirectoryStore"]

_HEX = frozenset("0123456789abcdef")
# Open event-log handles kept per store; a long batch must not exhaust file descriptors.
_MAX_OPEN_LOGS = 64

# Checkpoint file names: a tree size in canonical decimal, then .note.
_CHECKPOINT_RE = re.compile(r"^(0|[1-9][0-9]*)\.note$")


class DirectoryStore(ArtifactStore):
    """A store in a directory on the local file system (created when missing)."""

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = False, create: bool = True
    ) -> None:
        """Open the store at ``path``; with ``create=False`` a missing store (or an empty
        directory) raises :class:`~traces.errors.StoreNotFoundError` and nothing is made.
        A store this process may not write opens for reading, with ``read_only`` True."""
        root = Path(path).expanduser()
        self.root = root
        self.location = str(root)
        self.fsync = fsync
        if root.exists() and not root.is_dir():
            raise StoreLocationError(
                f"store location {self.location} is a file, not a directory; fix: give a "
                "directory path (or a name ending in .db for a SQLite store)"
            )
        if root.is_dir() and any(root.iterdir()) and not (root / "objects").is_dir():
            # Refuse to scatter objects/ and runs/ into somebody's home or project folder.
            raise StoreLocationError(
                f"{self.location} is a non-empty directory that is not an orch store (it has "
                "no objects/ folder); fix: give an empty or new directory, e.g. "
                f"{root / '.orch'}"
            )
        if not create and not (root / "objects").is_dir():
            raise StoreNotFoundError(self.location)  # a reader leaves no store behind a typo
        subdirs = [root / sub for sub in ("objects", "packs", "runs", "tmp")]
        # An auditor's copy or an archive mounted read-only is still readable: note it, and
        # leave writing to fail with StoreReadOnlyError where a writer checks (never mkdir).
        self.read_only = root.is_dir() and not all(
            os.access(d if d.is_dir() else root, os.W_OK) for d in subdirs
        )
        try:
            for sub in subdirs if not self.read_only else ():
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreLocationError(
                f"cannot create store directory {self.location}: {exc.strerror}; fix: choose "
                "a writable location with --store or ORCH_STORE"
            ) from exc
        self._objects = root / "objects"
        self._runs = root / "runs"
        self._tmp = root / "tmp"
        self._logs: OrderedDict[str, BinaryIO] = OrderedDict()
        self._lock = threading.Lock()
        self._ledger = LedgerFile(root / "ledger")
        self._packs = PackSet(root / "packs", self._tmp, fsync=fsync)
        self._journal = HeadJournal(root / "index", fsync=fsync)
        self._index: DirectoryRunIndex | None = None

    # -- paths -------------------------------------------------------------------------------

    def _blob_path(self, key: str) -> Path:
        hexd = key[len(HASH_PREFIX) :]
        return self._objects / hexd[:2] / hexd[2:]

    def _run_dir(self, run_id: str) -> Path:
        return self._runs / check_run_id(run_id)

    # -- writing whole files atomically ------------------------------------------------------

    def _write_atomic(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=".w-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            fsync_dir(target.parent)

    # -- artifacts ---------------------------------------------------------------------------

    # Where a key is looked for: the packs this set has read (memory), a single file (a store
    # written before packs), then the packs again after reading what other writers added.

    def _read_blob(self, key: str) -> bytes | None:
        digest = bytes.fromhex(key[len(HASH_PREFIX) :])
        packs = self._packs
        where = packs.find(digest) if packs.knows(digest) else None
        if where is None:
            try:
                return self._blob_path(key).read_bytes()
            except FileNotFoundError:
                where = packs.find(digest)
        return None if where is None else packs.read(digest, where)

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        # get() for each key, with the keys this set knows in a pack read together. A key it
        # does not know (a single file, a pack not read yet, a malformed or missing key) goes
        # to get() as it comes, after the keys before it are settled: so each key is looked
        # for where get() would look at that point, and the first key at fault raises.
        located = self._packs.located
        out: list[bytes] = []
        found: dict[str, bytes] = {}
        batch: dict[str, tuple[bytes, Location]] = {}
        pending: list[str] = []
        for key in keys:
            if is_key(key):
                if key in found or key in batch:
                    pending.append(key)
                    continue
                digest = bytes.fromhex(key[len(HASH_PREFIX) :])
                where = located(digest)
                if where is not None:
                    batch[key] = (digest, where)
                    pending.append(key)
                    continue
            self._settle(batch, pending, found, out)
            data = found[key] = self.get(key)
            out.append(data)
        self._settle(batch, pending, found, out)
        return out

    def _settle(
        self,
        batch: dict[str, tuple[bytes, Location]],
        pending: list[str],
        found: dict[str, bytes],
        out: list[bytes],
    ) -> None:
        """Read ``batch`` in one pass, then append each of ``pending`` to ``out`` in order: its
        bytes when they hash to its key, else what get() returns or raises for it."""
        sha256 = hashlib.sha256
        for (key, _), data in zip(
            batch.items(), self._packs.read_many(list(batch.values())), strict=True
        ):
            if data is not None and HASH_PREFIX + sha256(data).hexdigest() == key:
                found[key] = data
        batch.clear()
        for key in pending:
            data = found.get(key)
            if data is None:
                data = found[key] = self.get(key)  # a torn or damaged record: get() names it
            out.append(data)
        pending.clear()

    def _write_blob(self, key: str, data: bytes) -> None:
        # Content addressing makes a copy in another writer's pack harmless: same bytes.
        self._packs.append(bytes.fromhex(key[len(HASH_PREFIX) :]), data)

    def _put_needed(self, key: str) -> bool:
        # Memory only: a put must not read the disk to learn that another writer has it.
        return not self._packs.knows(bytes.fromhex(key[len(HASH_PREFIX) :]))

    def _has_blob(self, key: str) -> bool:
        digest = bytes.fromhex(key[len(HASH_PREFIX) :])
        if self._packs.knows(digest) or self._blob_path(key).is_file():
            return True
        return self._packs.find(digest) is not None

    def _iter_keys(self) -> Iterator[str]:
        seen: set[str] = set()
        if self._objects.is_dir():
            for shard in self._objects.iterdir():
                if len(shard.name) != 2 or not shard.is_dir():
                    continue
                for f in shard.iterdir():
                    key = HASH_PREFIX + shard.name + f.name
                    if is_key(key) and set(f.name) <= _HEX:
                        seen.add(key)
        seen.update(HASH_PREFIX + d.hex() for d in self._packs.digests())
        return iter(seen)

    # -- event logs --------------------------------------------------------------------------

    def _log(self, run_id: str) -> BinaryIO:
        log = self._logs.get(run_id)
        if log is not None:
            self._logs.move_to_end(run_id)
            return log
        run_dir = self._run_dir(run_id)
        run_dir.mkdir(exist_ok=True)
        log = open(run_dir / "events.jsonl", "ab", buffering=0)  # noqa: SIM115 - kept open
        self._logs[run_id] = log
        if len(self._logs) > _MAX_OPEN_LOGS:
            _, oldest = self._logs.popitem(last=False)
            oldest.close()
        return log

    def append_event(self, run_id: str, line: bytes) -> None:
        with self._lock:
            log = self._log(run_id)
            # One write call per line: with O_APPEND a crash tears at most this line.
            log.write(line + b"\n")
            if self.fsync:
                os.fsync(log.fileno())

    def read_events(self, run_id: str) -> list[bytes]:
        try:
            data = (self._run_dir(run_id) / "events.jsonl").read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline that ends the last complete line
        return lines

    # -- run heads ---------------------------------------------------------------------------

    def write_run_head(self, run_id: str, data: bytes) -> None:
        run_dir = self._run_dir(run_id)
        run_dir.mkdir(exist_ok=True)
        self._write_atomic(run_dir / "head.json", data)
        self._journal.note(run_id)  # after the rename: a reader that sees it sees the head

    def run_index(self) -> RunIndex:
        """The index under ``index/`` (see :mod:`traces._dirindex`)."""
        with self._lock:
            if self._index is None:
                self._index = DirectoryRunIndex(self)
            return self._index

    def read_run_head(self, run_id: str) -> bytes | None:
        try:
            return (self._run_dir(run_id) / "head.json").read_bytes()
        except FileNotFoundError:
            return None

    def run_ids(self) -> list[str]:
        return sorted(p.parent.name for p in self._runs.glob("*/head.json"))

    # -- claims: read-compare-write under an exclusive lock of claims/.lock --------------------

    supports_claims = True

    def _claim_path(self, name: str) -> Path:
        return self.root / "claims" / check_run_id(name)

    def read_claim(self, name: str) -> bytes | None:
        try:
            return self._claim_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        path = self._claim_path(name)
        path.parent.mkdir(exist_ok=True)
        # flock serialises processes (on this machine, and on NFS v4 clients); the thread lock
        # serialises this process's threads, which share one open file description.
        with self._lock, open(path.parent / ".lock", "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.read_claim(name) != expected:
                    return False
                if new is None:
                    path.unlink(missing_ok=True)
                else:
                    self._write_atomic(path, bytes(new))
                return True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- the ledger: ledger/entries.log (see traces._dirledger) and ledger/checkpoints/ ------------

    supports_ledger = True

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        return self._ledger.append(entry, at, fsync=self.fsync)

    def _ledger_size(self) -> int:
        return self._ledger.size()

    def _ledger_read(self, start: int, stop: int | None) -> list[bytes]:
        return self._ledger.read(start, stop)

    def _checkpoint_path(self, size: int) -> Path:
        return self._ledger.folder / "checkpoints" / f"{size}.note"

    def _write_checkpoint(self, size: int, note: bytes) -> None:
        path = self._checkpoint_path(size)
        for folder in (path.parent.parent, path.parent):
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                if self.fsync:
                    fsync_dir(folder.parent)
        self._write_atomic(path, note)

    def _read_checkpoint(self, size: int) -> bytes | None:
        try:
            return self._checkpoint_path(size).read_bytes()
        except FileNotFoundError:
            return None

    def _checkpoint_sizes(self) -> list[int]:
        try:
            names = os.listdir(self._ledger.folder / "checkpoints")
        except FileNotFoundError:
            return []
        return [int(m.group(1)) for m in map(_CHECKPOINT_RE.match, names) if m is not None]

    def close(self) -> None:
        self._packs.close()
        self._ledger.close()
        self._journal.close()
        with self._lock:
            index, self._index = self._index, None
            if index is not None:
                index.close()
            while self._logs:
                _, log = self._logs.popitem()
                log.close()

    # -- test hooks: corrupt data in place, as a disk or an attacker would ---------------------

    def _tamper(self, key: str, data: bytes) -> None:
        if not self._packs.rewrite(bytes.fromhex(key[len(HASH_PREFIX) :]), data):
            self._blob_path(key).write_bytes(data)

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        self.close()
        path = self._run_dir(run_id) / "events.jsonl"
        lines = path.read_bytes().split(b"\n")
        lines[index] = line
        path.write_bytes(b"\n".join(lines))

    def _tamper_ledger(self, index: int, entry: bytes) -> None:
        lines = self._ledger.path.read_bytes().split(b"\n")  # the last is the torn tail or b""
        if not 0 <= index < len(lines) - 1:
            raise IndexError(f"the ledger has no entry {index}")
        lines[index] = entry
        self._ledger.path.write_bytes(b"\n".join(lines))  # in place, as an editor might
        self._ledger.forget()

    def _tamper_truncate_ledger(self, size: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            lines = self._ledger.path.read_bytes().split(b"\n")[:-1]
            os.truncate(self._ledger.path, sum(len(line) + 1 for line in lines[:size]))
        self._ledger.forget()

    def _tamper_delete_blob(self, key: str) -> None:
        self._packs.rewrite(bytes.fromhex(key[len(HASH_PREFIX) :]), None)
        self._blob_path(key).unlink(missing_ok=True)

    def _tamper_delete_head(self, run_id: str) -> None:
        (self._run_dir(run_id) / "head.json").unlink(missing_ok=True)

    def _tamper_set_events(self, run_id: str, lines: list[bytes]) -> None:
        self.close()  # the open handle would go on appending to the old file's end
        run_dir = self._run_dir(run_id)
        run_dir.mkdir(exist_ok=True)
        (run_dir / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))

    def _tamper_delete_checkpoint(self, size: int) -> None:
        self._checkpoint_path(size).unlink(missing_ok=True)

    def _tamper_snapshot(self) -> object:
        """Every file under the root, by relative path, and every folder (empty ones too)."""
        files: dict[str, bytes] = {}
        folders: list[str] = []
        for folder, _, names in os.walk(self.root):
            rel = Path(folder).relative_to(self.root)
            folders.append(str(rel))
            for name in names:
                files[str(rel / name)] = (Path(folder) / name).read_bytes()
        return (folders, files)

    def _tamper_restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, tuple)
        folders, files = snapshot
        self.close()
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        for rel in folders:
            (self.root / rel).mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            (self.root / rel).write_bytes(data)
        self._packs.forget()
        self._ledger.forget()
