"""The directory store: artifacts as files, one folder per run. The embedded default.

Layout under the store root::

    objects/ab/cdef...      artifact bytes; path = the key's 64 hex digits split 2 + 62
    runs/<run id>/head.json the run head, replaced atomically
    runs/<run id>/events.jsonl  the event log, one JSON line per event, append-only
    tmp/                    temporary files, renamed into place (same file system)

Every write of a whole file goes to ``tmp/`` first and is renamed into place, so a reader (or
a crash) never sees half an artifact under its key. Event lines are appended with a single
``write`` on an unbuffered ``O_APPEND`` descriptor, so a crash can tear at most the last line,
which verification reports as a torn tail. With ``fsync=True`` each write is also flushed to
the disk before it is visible, which survives power loss as well as a killed process, at a
cost in speed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .canonical import HASH_PREFIX, is_key
from .errors import StoreLocationError
from .store import ArtifactStore, check_run_id

__all__ = ["DirectoryStore"]

_HEX = frozenset("0123456789abcdef")
# Open event-log handles kept per store; a long batch must not exhaust file descriptors.
_MAX_OPEN_LOGS = 64


class DirectoryStore(ArtifactStore):
    """A store in a directory on the local file system (created when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
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
        try:
            for sub in ("objects", "runs", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
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
