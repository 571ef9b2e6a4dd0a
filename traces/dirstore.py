"""The directory store: artifacts as files, one folder per run. The embedded default.

Layout under the store root::

    objects/ab/cdef...      artifact bytes; path = the key's 64 hex digits split 2 + 62
    runs/<run id>/head.json the run head, replaced atomically
    runs/<run id>/events.jsonl  the event log, one JSON line per event, append-only
    ledger/entries.log      the store's ledger, one entry per line, append-only (see below)
    ledger/.lock            locked (flock) by appenders to the ledger
    ledger/checkpoints/<size>.note  a checkpoint note per tree size, replaced atomically
    tmp/                    temporary files, renamed into place (same file system)

Every write of a whole file goes to ``tmp/`` first and is renamed into place, so a reader (or
a crash) never sees half an artifact under its key. Event lines are appended with a single
``write`` on an unbuffered ``O_APPEND`` descriptor, so a crash can tear at most the last line,
which verification reports as a torn tail. With ``fsync=True`` each write is also flushed to
the disk before it is visible, which survives power loss as well as a killed process, at a
cost in speed.

The ledger's entries are appended under an exclusive lock of ``ledger/.lock``, so every
process agrees on each entry's index; a torn last line (a writer killed mid-write, never
acknowledged) is ignored by readers and cut off by the next appender, see :class:`_LedgerFile`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .canonical import HASH_PREFIX, is_key
from .errors import StoreError, StoreLocationError, StoreNotFoundError
from .store import ArtifactStore, check_run_id

__all__ = ["DirectoryStore"]

_HEX = frozenset("0123456789abcdef")
# Open event-log handles kept per store; a long batch must not exhaust file descriptors.
_MAX_OPEN_LOGS = 64

# The ledger file is parsed in pieces of this size when a process catches up with it.
_CHUNK = 8 << 20
# Checkpoint file names: a tree size in canonical decimal, then .note.
_CHECKPOINT_RE = re.compile(r"^(0|[1-9][0-9]*)\.note$")


class _LedgerFile:
    """``ledger/entries.log``: the store's ledger, one entry per line.

    Appenders hold an exclusive ``flock`` of ``ledger/.lock`` (and a thread lock), so the
    appender knows the index it writes: the number of complete lines. Each store object caches
    where the complete lines it has seen start, and the file's identity, and reads only what
    other processes appended since (one int per entry; reads by index need no scan).

    A torn tail (bytes after the last newline) is an entry whose writer died or lost power
    mid-write, so it was never acknowledged: readers ignore it, and the next appender, under
    the lock, truncates the file back to the last newline before writing, so it can never
    merge with the next entry. Readers take a shared lock while they read what is new, so
    they never see a tail half cut and rewritten. The cache trusts that complete lines are
    not rewritten in place (the API never does); a catch-up or a read that finds a line
    boundary moved drops the cache and scans the file again, and the tamper hooks drop it too.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "entries.log"
        self._lock_path = folder / ".lock"
        self._lock = threading.Lock()
        self._file_id: tuple[int, int] | None = None  # (device, inode) the cache describes
        self._starts: list[int] = []  # byte offset where each complete line starts
        self._end = 0  # byte offset just past the newline of the last complete line
        self._folder_made = False

    def forget(self) -> None:
        """Drop the cache: the file was replaced, truncated or changed behind the API."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        self._file_id, self._starts, self._end, self._folder_made = None, [], 0, False

    def append(self, entry: bytes, at: int | None, *, fsync: bool) -> int | None:
        line = entry + b"\n"
        with self._lock:
            if not self._folder_made:
                if not self.folder.is_dir():
                    self.folder.mkdir(exist_ok=True)
                    if fsync:
                        DirectoryStore._fsync_dir(self.folder.parent)
                self._folder_made = True
            with open(self._lock_path, "ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file is closed
                try:
                    fd, created = os.open(self.path, os.O_RDWR | os.O_APPEND), False
                except FileNotFoundError:
                    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
                    fd, created = os.open(self.path, flags, 0o644), True
                try:
                    return self._append_locked(fd, line, at, fsync=fsync, created=created)
                finally:
                    os.close(fd)

    def _append_locked(
        self, fd: int, line: bytes, at: int | None, *, fsync: bool, created: bool
    ) -> int | None:
        if self._catch_up(fd):
            # A torn tail, never acknowledged: cut it off so that it cannot merge with `line`.
            os.ftruncate(fd, self._end)
        index = len(self._starts)
        if at is not None and at != index:
            return None
        try:
            view = memoryview(line)
            while view:  # a regular file takes it in one write, short of a full disk
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        except BaseException:
            # Take back a partly written line while the lock is held (a full disk, say).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._end)
            raise
        if created and fsync:
            DirectoryStore._fsync_dir(self.folder)
        self._starts.append(self._end)
        self._end += len(line)
        return index

    def _catch_up(self, fd: int) -> bool:
        """Index the complete lines appended since the cache was filled; True when a torn
        tail follows the last one. The caller holds a lock of the lock file."""
        st = os.fstat(fd)
        file_id = (st.st_dev, st.st_ino)
        # Another file (a restored copy, say), or a shorter one, is scanned from the start.
        stale = file_id != self._file_id or st.st_size < self._end
        if not stale and self._end and st.st_size > self._end:
            # So is one whose lines moved behind the cache (a line rewritten in place with
            # another length): the cached end is then seldom still a line boundary.
            stale = os.pread(fd, 1, self._end - 1) != b"\n"
        if stale:
            self._forget()
            self._file_id, self._folder_made = file_id, True
        offset = self._end
        while offset < st.st_size:
            chunk = os.pread(fd, min(_CHUNK, st.st_size - offset), offset)
            if not chunk:
                break
            pos = chunk.find(b"\n")
            while pos >= 0:
                self._starts.append(self._end)
                self._end = offset + pos + 1
                pos = chunk.find(b"\n", pos + 1)
            offset += len(chunk)
        return offset > self._end

    def _refresh(self, fd: int) -> None:
        """Bring the cache up to date with the file for a reader (no exclusive lock)."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == self._file_id and st.st_size == self._end:
            return  # nothing new: the common case costs one fstat
        try:
            lock = open(self._lock_path, "rb")  # noqa: SIM115 - closed below
        except OSError:  # no appender ever took it (or a read-only copy lost it)
            self._catch_up(fd)
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            self._catch_up(fd)

    def size(self) -> int:
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                self._forget()
                return 0
            try:
                self._refresh(fd)
                return len(self._starts)
            finally:
                os.close(fd)

    def read(self, start: int, stop: int | None) -> list[bytes]:
        with self._lock:
            for _ in range(2):
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    self._forget()
                    return []
                try:
                    self._refresh(fd)
                    count = len(self._starts)
                    last = count if stop is None else min(stop, count)
                    if start >= last:
                        return []
                    # From the newline before the first entry: both ends of the range are then
                    # checked to be line boundaries.
                    lo = self._starts[start] - 1 if start else 0
                    hi = self._starts[last] if last < count else self._end
                    data = os.pread(fd, hi - lo, lo)
                finally:
                    os.close(fd)
                body = data[1:] if start else data
                if (
                    len(data) == hi - lo
                    and (not start or data[:1] == b"\n")
                    and body.endswith(b"\n")
                    and body.count(b"\n") == last - start
                ):
                    return body[:-1].split(b"\n")
                self._forget()  # the lines moved behind the cache's back: scan again
            raise StoreError(
                f"the ledger file {self.path} changed while it was read (its lines moved); "
                "fix: read again, and verify the store: only the API may write this file"
            )


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
        subdirs = [root / sub for sub in ("objects", "runs", "tmp")]
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
        self._made_dirs: set[str] = set()
        self._ledger = _LedgerFile(root / "ledger")

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
            self._fsync_dir(target.parent)

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- artifacts ---------------------------------------------------------------------------

    def _read_blob(self, key: str) -> bytes | None:
        try:
            return self._blob_path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _write_blob(self, key: str, data: bytes) -> None:
        path = self._blob_path(key)
        shard = key[len(HASH_PREFIX) : len(HASH_PREFIX) + 2]
        if shard not in self._made_dirs:
            path.parent.mkdir(exist_ok=True)
            self._made_dirs.add(shard)
        # Content addressing makes racing writers harmless: both rename identical bytes.
        self._write_atomic(path, data)

    def _has_blob(self, key: str) -> bool:
        return self._blob_path(key).is_file()

    def _iter_keys(self) -> Iterator[str]:
        for shard in self._objects.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for f in shard.iterdir():
                key = HASH_PREFIX + shard.name + f.name
                if is_key(key) and set(f.name) <= _HEX:
                    yield key

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

    # -- the ledger: ledger/entries.log (see _LedgerFile) and ledger/checkpoints/ ------------

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
                    self._fsync_dir(folder.parent)
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
        with self._lock:
            while self._logs:
                _, log = self._logs.popitem()
                log.close()

    # -- test hooks: corrupt data in place, as a disk or an attacker would ---------------------

    def _tamper(self, key: str, data: bytes) -> None:
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
        self._made_dirs.clear()
        self._ledger.forget()
