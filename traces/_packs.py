"""Pack files: how the directory store writes artifacts, one append-only file per writer.

A file per artifact costs a file creation, a write and a rename each: several per step of a
run, most of the directory store's time. Instead each writer (each :class:`PackSet`, one per
open store, so one per process or more) appends its artifacts to a pack of its own::

    packs/<pid>-<random>.pack   "orch-pack/1\\n", then records, append-only
    packs/<pid>-<random>.idx    the pack's index, written when the pack is sealed

A record is an 8-byte big-endian length ``L``, the 32-byte SHA-256 digest of the data (the
artifact's key), then the ``L`` bytes. Each record goes to the file in one ``write`` on an
``O_APPEND`` descriptor, so an artifact costs one system call (and one ``fsync`` when asked).
Only this writer appends to its pack, so a killed process leaves at most its last record torn,
with nothing after it: a reader stops at a record whose bytes are not all there, as it stops
at the end of the file. Readers in any process find a key through the in-memory index: the
records this writer appended, each sealed pack's index file (read once), and the records of
unsealed packs (other live writers, or writers that were killed), read from where they were
last read. An index is a cache: it ends with the SHA-256 of what it holds and is ignored (the
pack is read record by record instead) when that does not match, so a damaged index loses
nothing; each read checks the record's header against what the index says. Many records are
read together (:meth:`PackSet.read_many`, for replay and resume) in one ``pread`` per run of
neighbouring records of a pack, each record's header checked as a single read checks it. What
a pack holds is never verified here: a record whose bytes do not hash to its key is returned
as it is, and :meth:`~traces._store.ArtifactStore.get` refuses it, as it does a damaged loose
file.

This module must never change a record once written (test hooks aside, which rewrite a pack
as a disk or an attacker would), and never make a record visible before all its bytes are in
the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._dirledger import fsync_dir

__all__ = ["PACK_LIMIT", "Location", "PackSet"]

MAGIC = b"orch-pack/1\n"
INDEX_MAGIC = b"orch-pack-index/1\n"
_RECORD = struct.Struct(">Q32s")
"""A record's header: the data's length and its SHA-256 digest."""
_ENTRY = struct.Struct(">32sQQ")
"""An index entry: digest, offset of the data in the pack, length."""
_COVERED = struct.Struct(">Q")
PACK_LIMIT = 256 << 20
"""A pack is sealed and a new one begun once it is this large."""
_MAX_OPEN = 64
_GAP = 16 << 10
"""Records read together are read in one ``pread`` when at most this many bytes lie between
them: reading (and dropping) the bytes between costs less than another system call."""
_SPAN = 8 << 20
"""Nor is one ``pread`` of records read together made larger than this (unless one record
is): what is read at once is held in memory at once."""

Location = tuple[str, int, int]
"""Where an artifact's bytes are: (pack name, offset of the data, length)."""


class _Writer:
    """The pack this set appends to: created on the first artifact, sealed on close."""

    def __init__(self, folder: Path, fsync: bool) -> None:
        self.name = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.path = folder / f"{self.name}.pack"
        self.fsync = fsync
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.size = 0
        self.entries: list[tuple[bytes, int, int]] = []
        self._write(MAGIC)
        if fsync:
            fsync_dir(folder)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a regular file takes it all at once unless the disk is full
                written = os.write(self.fd, view)
                view = view[written:]
        except BaseException:
            # Cut what this record left (a full disk): the next record starts where it did.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        if self.fsync:
            os.fsync(self.fd)

    def append(self, digest: bytes, data: bytes) -> int:
        """Append one record; return the offset of its data."""
        offset = self.size + _RECORD.size
        self._write(_RECORD.pack(len(data), digest) + data)
        self.entries.append((digest, offset, len(data)))
        return offset

    def seal(self, tmp: Path) -> None:
        """Write the pack's index (atomically: a reader sees all of it or none) and close."""
        body = INDEX_MAGIC + _COVERED.pack(self.size)
        body += b"".join(_ENTRY.pack(*e) for e in self.entries)
        index = body + hashlib.sha256(body).digest()
        fd, tmp_path = tempfile.mkstemp(dir=tmp, prefix=".idx-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(index)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp_path, self.path.with_suffix(".idx"))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            raise
        finally:
            os.close(self.fd)

    def drop(self) -> None:
        """Close without sealing (the file was replaced under it: test hooks)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


class PackSet:
    """The packs of one directory store: appending this writer's artifacts, finding anyone's."""

    def __init__(self, folder: Path, tmp: Path, *, fsync: bool) -> None:
        self.folder = folder
        self._tmp = tmp
        self._fsync = fsync
        self._lock = threading.Lock()
        self._index: dict[bytes, Location] = {}
        self._scanned: dict[str, int] = {}
        """Unsealed packs of other writers -> how far they have been read."""
        self._sealed: set[str] = set()
        """Packs whose index file was read: nothing more to read from them."""
        self._writer: _Writer | None = None
        self._fds: OrderedDict[str, int] = OrderedDict()

    # -- writing ------------------------------------------------------------------------------

    def knows(self, digest: bytes) -> bool:
        """Whether this set has seen ``digest`` (no disk access: what ``put`` asks before it
        appends; a copy in a pack it has not read yet is harmless, bytes are bytes)."""
        return digest in self._index

    def append(self, digest: bytes, data: bytes) -> None:
        with self._lock:
            if digest in self._index:
                return
            writer = self._writer
            if writer is None or writer.size >= PACK_LIMIT:
                if writer is not None:
                    writer.seal(self._tmp)
                    self._sealed.add(writer.name)
                writer = self._writer = _Writer(self.folder, self._fsync)
            offset = writer.append(digest, data)
            self._index[digest] = (writer.name, offset, len(data))

    # -- reading ------------------------------------------------------------------------------

    def find(self, digest: bytes) -> Location | None:
        """Where ``digest``'s bytes are, reading what other writers added since last asked."""
        found = self._index.get(digest)
        if found is None:
            with self._lock:
                self._refresh()
            found = self._index.get(digest)
        return found

    def read(self, digest: bytes, where: Location) -> bytes | None:
        """The data of ``digest``'s record at ``where``; None when the record there is not
        that one (a damaged pack or index: the artifact is then missing, never misread)."""
        name, offset, length = where
        with self._lock:
            fd = self._fd(name)
            if fd is None:
                return None
            raw = os.pread(fd, _RECORD.size + length, offset - _RECORD.size)
        if len(raw) != _RECORD.size + length or _RECORD.unpack_from(raw) != (length, digest):
            return None
        return raw[_RECORD.size :]

    def located(self, digest: bytes) -> Location | None:
        """Where ``digest``'s bytes are as far as this set has read (no disk access)."""
        return self._index.get(digest)

    def read_many(self, wanted: Sequence[tuple[bytes, Location]]) -> list[bytes | None]:
        """The data of each ``(digest, where)`` record as :meth:`read` would return it, in
        order. A pack's records are read by offset, neighbours (at most :data:`_GAP` apart,
        at most :data:`_SPAN` in all) in one ``pread`` of the range that covers them."""
        out: list[bytes | None] = [None] * len(wanted)
        by_pack: dict[str, list[tuple[int, int, int, bytes]]] = {}
        for i, (digest, (name, offset, length)) in enumerate(wanted):
            if offset < len(MAGIC) + _RECORD.size:
                continue  # inside the pack's magic, no record: left to get() to refuse
            records = by_pack.get(name)
            if records is None:
                records = by_pack[name] = []
            records.append((offset - _RECORD.size, length, i, digest))
        # Under the lock, as read(): a descriptor closed to make room must not be read from.
        with self._lock:
            for name, records in by_pack.items():
                fd = self._fd(name)
                if fd is not None:
                    records.sort()
                    self._read_sorted(fd, records, out)
        return out

    @staticmethod
    def _read_sorted(
        fd: int, records: list[tuple[int, int, int, bytes]], out: list[bytes | None]
    ) -> None:
        """Read records (header offset, length, place in ``out``, digest) of one pack,
        sorted by offset, into ``out``; a record whose header is not there stays None."""
        # One loop, not a generator of ranges: this runs per record of a replay.
        head_size, unpack_from = _RECORD.size, _RECORD.unpack_from
        first, count = 0, len(records)
        while first < count:
            start, length = records[first][0], records[first][1]
            end, last = start + head_size + length, first + 1
            while last < count:
                at, length = records[last][0], records[last][1]
                stop = at + head_size + length
                if at - end > _GAP or stop - start > _SPAN:
                    break
                end = max(end, stop)
                last += 1
            try:
                raw = os.pread(fd, end - start, start)
            except OSError:
                raw = b""  # (a failing disk) each record's own read raises it, in its turn
            for at, length, i, digest in records[first:last]:
                data = at - start + head_size
                if data + length <= len(raw) and unpack_from(raw, data - head_size) == (
                    length,
                    digest,
                ):
                    out[i] = raw[data : data + length]
            first = last

    def digests(self) -> Iterator[bytes]:
        """Every digest in every pack."""
        with self._lock:
            self._refresh()
            return iter(list(self._index))

    def _fd(self, name: str) -> int | None:
        fd = self._fds.get(name)
        if fd is not None:
            self._fds.move_to_end(name)
            return fd
        try:
            fd = os.open(self.folder / f"{name}.pack", os.O_RDONLY)
        except FileNotFoundError:
            return None
        self._fds[name] = fd
        if len(self._fds) > _MAX_OPEN:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def _refresh(self) -> None:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        indexed = {n[:-4] for n in names if n.endswith(".idx")}
        own = self._writer.name if self._writer is not None else None
        for file in sorted(names):
            if not file.endswith(".pack"):
                continue
            name = file[:-5]
            if name in self._sealed or name == own:
                continue
            if name in indexed and self._load_index(name):
                self._sealed.add(name)
                self._scanned.pop(name, None)
            else:
                self._scan(name)

    def _load_index(self, name: str) -> bool:
        """Read a sealed pack's index; False when it is unreadable or covers more than the
        pack holds (the pack is then read record by record instead)."""
        try:
            raw = (self.folder / f"{name}.idx").read_bytes()
            size = os.stat(self.folder / f"{name}.pack").st_size
        except FileNotFoundError:
            return False
        head = len(INDEX_MAGIC) + _COVERED.size
        body, check = raw[:-32], raw[-32:]
        if (
            not body.startswith(INDEX_MAGIC)
            or (len(body) - head) % _ENTRY.size
            or hashlib.sha256(body).digest() != check
        ):
            return False
        (covered,) = _COVERED.unpack_from(body, len(INDEX_MAGIC))
        fd = self._fd(name)
        if covered > size or fd is None or os.pread(fd, len(MAGIC), 0) != MAGIC:
            return False
        for digest, offset, length in _ENTRY.iter_unpack(memoryview(body)[head:]):
            self._index.setdefault(digest, (name, offset, length))
        return True

    def _scan(self, name: str) -> None:
        """Index the records of an unsealed pack from where it was last read, up to the first
        one whose bytes are not all there yet (being written, or torn by a kill)."""
        fd = self._fd(name)
        if fd is None:
            return
        at = self._scanned.get(name)
        size = os.fstat(fd).st_size
        if at is None:
            if os.pread(fd, len(MAGIC), 0) != MAGIC:
                self._scanned[name] = size  # not a pack of this format: never read from it
                return
            at = len(MAGIC)
        while at + _RECORD.size <= size:
            length, digest = _RECORD.unpack(os.pread(fd, _RECORD.size, at))
            end = at + _RECORD.size + length
            if end > size:
                break
            self._index.setdefault(digest, (name, at + _RECORD.size, length))
            at = end
        self._scanned[name] = at

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Seal this writer's pack and close every file."""
        with self._lock:
            if self._writer is not None:
                self._writer.seal(self._tmp)
                self._sealed.add(self._writer.name)
                self._writer = None
            while self._fds:
                os.close(self._fds.popitem()[1])

    def forget(self) -> None:
        """Drop everything read and the writer's open file (the files changed under this set:
        test hooks); the next lookup reads the packs again."""
        with self._lock:
            if self._writer is not None:
                self._writer.drop()
                self._writer = None
            while self._fds:
                os.close(self._fds.popitem()[1])
            self._index.clear()
            self._scanned.clear()
            self._sealed.clear()

    # -- test hooks: change a pack in place, as a disk or an attacker would ---------------------

    def rewrite(self, digest: bytes, data: bytes | None) -> bool:
        """Replace the bytes of ``digest``'s record in its pack with ``data`` (None: remove
        the record); False when no pack holds it. The pack's index goes (it no longer fits)."""
        where = self.find(digest)
        if where is None:
            return False
        self.close()  # seal this writer: its pack may be the one rewritten
        name = where[0]
        path = self.folder / f"{name}.pack"
        raw = path.read_bytes()
        out = [MAGIC]
        at = len(MAGIC)
        while at + _RECORD.size <= len(raw):
            length, found = _RECORD.unpack_from(raw, at)
            body = raw[at + _RECORD.size : at + _RECORD.size + length]
            at += _RECORD.size + length
            if found == digest:
                if data is None:
                    continue
                body = data
            out.append(_RECORD.pack(len(body), found) + body)
        path.write_bytes(b"".join(out))
        (self.folder / f"{name}.idx").unlink(missing_ok=True)
        self.forget()
        return True
