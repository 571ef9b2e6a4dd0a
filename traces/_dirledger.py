"""The ledger file of a directory store: ``ledger/entries.log``, one entry per line.

Appenders from every thread and process of the machine take turns under an exclusive
``flock`` of ``ledger/.lock``, so each knows the index it writes; readers cache where the
lines they have seen start and read only what was appended since. A torn last line (a writer
killed or a power loss mid-write, so never acknowledged) is ignored by readers and cut off by
the next appender. ``ledger/entries.idx`` holds where each line ends (8 bytes each, written
under the same lock after the line), so that a new process learns the ledger's size and finds
an entry without scanning the whole file; it is a cache, checked against the lines and
rebuilt from them when it disagrees. This module must never change or remove a complete line.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
from array import array
from pathlib import Path

from .errors import StoreError

__all__ = ["LedgerFile", "fsync_dir"]

# The ledger file is parsed in pieces of this size when a process catches up with it.
_CHUNK = 8 << 20
# One index record: where a line ends (just past its newline), unsigned 64-bit big-endian.
_RECORD = 8


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a new or renamed file in it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LITTLE = array("Q", [1]).tobytes()[0] == 1


def _end_at(fd: int, record: int) -> int | None:
    raw = os.pread(fd, _RECORD, record * _RECORD)
    return int.from_bytes(raw, "big") if len(raw) == _RECORD else None


class LedgerFile:
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
        self._index_path = folder / "entries.idx"
        self._lock_path = folder / ".lock"
        self._trust_index = True  # False once the index disagreed with the lines
        self._lock = threading.Lock()
        self._file_id: tuple[int, int] | None = None  # (device, inode) the cache describes
        self._starts: list[int] = []  # byte offset where each complete line starts
        self._end = 0  # byte offset just past the newline of the last complete line
        self._folder_made = False
        # The appender's open files, kept between appends (three opens an entry cost more
        # than the entry): path -> (fd, (device, inode)), opened again once the file was
        # unlinked (replaced behind the API). Reopened in a
        # forked child: its parent's lock file description would be shared with it.
        self._open: dict[Path, tuple[int, tuple[int, int]]] = {}
        self._open_pid = os.getpid()

    def forget(self) -> None:
        """Drop the cache, and the index on disk: the file was replaced, truncated or changed
        behind the API (the test hooks call it)."""
        with self._lock:
            self._forget()
            self._close_files()
            with contextlib.suppress(OSError):
                self._index_path.unlink()

    def close(self) -> None:
        """Close the files kept open between appends."""
        with self._lock:
            self._close_files()

    def _close_files(self) -> None:
        for fd, _ in self._open.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open.clear()

    def _file(self, path: Path, flags: int) -> tuple[int, bool]:
        """An open descriptor of ``path`` (made when missing), and whether it was made now:
        the one kept from an earlier append when ``path`` is still that file."""
        if self._open_pid != os.getpid():
            self._open.clear()  # the parent's descriptors: never use (or close) them here
            self._open_pid = os.getpid()
        kept = self._open.get(path)
        if kept is not None:
            # Still linked: still the file at ``path`` (the API and its test hooks replace a
            # file by deleting or renaming over it, which unlinks the old one).
            if os.fstat(kept[0]).st_nlink > 0:
                return kept[0], False
            del self._open[path]
            with contextlib.suppress(OSError):
                os.close(kept[0])
        try:
            fd, made = os.open(path, flags), False
        except FileNotFoundError:
            fd, made = os.open(path, flags | os.O_CREAT, 0o644), True
        now = os.fstat(fd)
        self._open[path] = (fd, (now.st_dev, now.st_ino))
        return fd, made

    def _forget(self) -> None:
        self._file_id, self._starts, self._end, self._folder_made = None, [], 0, False

    def append(self, entry: bytes, at: int | None, *, fsync: bool) -> int | None:
        line = entry + b"\n"
        with self._lock:
            if not self._folder_made:
                if not self.folder.is_dir():
                    self.folder.mkdir(exist_ok=True)
                    if fsync:
                        fsync_dir(self.folder.parent)
                self._folder_made = True
            lock, _ = self._file(self._lock_path, os.O_WRONLY | os.O_APPEND)
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                fd, created = self._file(self.path, os.O_RDWR | os.O_APPEND)
                return self._append_locked(fd, line, at, fsync=fsync, created=created)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
            fsync_dir(self.folder)
        self._starts.append(self._end)
        self._end += len(line)
        self._write_index(fsync=fsync)
        return index

    def _write_index(self, *, fsync: bool) -> None:
        """Bring ``entries.idx`` up to the cache (the caller holds the exclusive lock). An
        index that is not a prefix of the lines (torn, stale, edited) is rewritten whole."""
        count = len(self._starts)

        def end_of(i: int) -> int:
            return self._starts[i + 1] if i + 1 < count else self._end

        try:
            fd, _ = self._file(self._index_path, os.O_RDWR)
        except OSError:
            return  # the index is only a cache: a store without it still works
        # The descriptor stays open for the next append (_file).
        size = os.fstat(fd).st_size
        have = size // _RECORD
        if size % _RECORD or have > count or (have and _end_at(fd, have - 1) != end_of(have - 1)):
            have = 0
            os.ftruncate(fd, 0)
        if have < count:
            records = array("Q", (end_of(i) for i in range(have, count)))
            if _LITTLE:
                records.byteswap()
            os.pwrite(fd, records.tobytes(), have * _RECORD)
            if fsync:
                os.fsync(fd)

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
            if self._trust_index:
                self._load_index(fd, st.st_size)
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

    def _load_index(self, fd: int, size: int) -> None:
        """Fill the cache from ``entries.idx``, as far as it agrees with the lines: its ends
        must rise, stay within the file and each fall just past a newline (the last one read
        back; a read checks every range it returns). The rest is scanned as usual."""
        try:
            with open(self._index_path, "rb") as f:
                raw = f.read()
        except OSError:
            return
        records = array("Q")
        records.frombytes(raw[: len(raw) - len(raw) % _RECORD])
        if _LITTLE:
            records.byteswap()
        ends = records.tolist()
        while ends and ends[-1] > size:
            ends.pop()  # records of lines cut off since (a torn tail, a truncation)
        if not ends:
            return
        # A spread of ends, the last among them, must rise and fall just past a newline: an
        # index left stale by an edit of the lines is then seldom taken, and a read that
        # finds a range that is not whole lines drops the cache and this index for good.
        step = max(1, len(ends) // 16)
        sample = [*ends[::step], ends[-1]]
        if sample[0] <= 0 or any(b < a for a, b in itertools.pairwise(sample)):
            return
        for end in set(sample):
            if os.pread(fd, 1, end - 1) != b"\n":
                return
        self._starts = [0, *ends[:-1]]
        self._end = ends[-1]

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
                self._trust_index = False  # and from the lines themselves
            raise StoreError(
                f"the ledger file {self.path} changed while it was read (its lines moved); "
                "fix: read again, and verify the store: only the API may write this file"
            )
